"""The L-BFGS two-loop recursion for N attacks on a CPU: one compiled loop per attack.

:class:`wdlg_core.optim.BatchedLBFGS` keeps m curvature pairs (s, y) per attack in two
(m, N, D) buffers: 315 MB at N = 128, D = 3072, m = 100 (torch's default), far more than the
CPU caches. Its eager PyTorch recursion walks the history slot by slot over all N attacks
(four batched ops per slot and loop), so the whole history streams in from memory twice per
step, once per loop, and each op also reads and writes the (N, D) work vector.

Here the recursion of each attack runs from start to end in one thread. The attack's own
history is 2 * m * D numbers (2.4 MB): the first loop reads it from memory, the second finds
most of it still in the caches, and the work vector (D numbers) stays in the first-level
cache. Measured at N = 128, D = 3072, m = 100 on the 2-core CPU this project targets: 21-26 ms
per recursion against 33-50 ms for the eager one, where one plain read of the history takes
10-12 ms (see ``benchmarks/attack_throughput.py``).

Threads: the loop is compiled by numba with ``nogil``, and each of ``torch.get_num_threads()``
Python threads runs it on a contiguous share of the attacks. Those threads block while they
wait. numba's own ``parallel=True`` would use its threading layer, OpenMP here: a second
OpenMP runtime next to torch's, whose idle threads spin. Two notebooks running side by side
on 2 cores (as ``wdlg run`` does) then took 67 ms per L-BFGS step each, against 8.3-8.8 ms
with this design (and 12 ms with the eager recursion).

Arithmetic: Nocedal & Wright, *Numerical Optimization* (2nd ed.), Algorithm 7.4, as in torch
2.13 ``torch.optim.LBFGS`` and :meth:`wdlg_core.optim.BatchedLBFGS._direction_torch`: the same
operations in the same order per attack, except that a dot product is summed in vectorised
partial sums (``fastmath={"reassoc"}``), so results agree to rounding (the tests compare the
two in float64). An attack's result depends only on its own rows, whatever N is.

numba compiles the kernel on first use (about 3 s, once per dtype) and caches it on disk
(``__pycache__`` next to this file, or numba's user cache directory when that is read-only),
so later processes load it in well under a second.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import torch
from torch import Tensor

#: dtypes the compiled kernel handles (others take the eager recursion)
KERNEL_DTYPES = (torch.float32, torch.float64)

_kernel = None  # the compiled kernel, built on first use
_pool = None  # ((process id, threads), ThreadPoolExecutor) running the other shares of attacks


def numba_available() -> bool:
    """True when numba can be imported (it is a dependency of this package)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _build_kernel():
    import numba

    def two_loop(S, Y, ro, ptr, lens, h_diag, g, out, first, stop):  # pragma: no cover - compiled
        m, _, dim = S.shape
        for n in range(first, stop):  # attacks [first, stop) of the batch
            q = out[n]
            for j in range(dim):
                q[j] = -g[n, j]
            L = lens[n]
            al = np.empty(L, dtype=S.dtype)
            for k in range(L):  # newest to oldest
                slot = (ptr[n] - 1 - k) % m
                s, y = S[slot, n], Y[slot, n]
                acc = S.dtype.type(0)
                for j in range(dim):
                    acc += s[j] * q[j]
                a = acc * ro[slot, n]
                al[k] = a
                for j in range(dim):
                    q[j] -= a * y[j]
            h = h_diag[n]
            for j in range(dim):
                q[j] *= h
            for k in range(L - 1, -1, -1):  # oldest to newest
                slot = (ptr[n] - 1 - k) % m
                s, y = S[slot, n], Y[slot, n]
                acc = S.dtype.type(0)
                for j in range(dim):
                    acc += y[j] * q[j]
                c = al[k] - acc * ro[slot, n]
                for j in range(dim):
                    q[j] += c * s[j]

    options = dict(nogil=True, fastmath={"reassoc"})
    try:
        return numba.njit(cache=True, **options)(two_loop)
    except RuntimeError:  # no writable cache location: compile in every process instead
        return numba.njit(**options)(two_loop)


def _workers(threads: int) -> ThreadPoolExecutor:
    """The pool of ``threads - 1`` Python threads that run the other shares (one per process)."""
    global _pool
    key = (os.getpid(), threads)
    if _pool is None or _pool[0] != key:
        if _pool is not None and _pool[0][0] == key[0]:
            _pool[1].shutdown(wait=False)  # the thread count changed
        _pool = (key, ThreadPoolExecutor(threads - 1, thread_name_prefix="wdlg-two-loop"))
    return _pool[1]


def two_loop_cpu(S: Tensor, Y: Tensor, ro: Tensor, ptr: Tensor, lens: Tensor,
                 h_diag: Tensor, g: Tensor) -> Tensor:
    """d = -H g for every attack, by the two-loop recursion over its own curvature pairs.

    Args:
        S, Y: (m, N, D) steps s and gradient changes y; slot ``(ptr[n] - 1 - k) % m`` of
            attack n holds its k-th newest pair, for k < lens[n].
        ro: (m, N) 1 / (y.s) of each pair.
        ptr: (N,) int64, the attack's next slot to write.
        lens: (N,) int64, pairs to use (0 gives d = -h_diag * g).
        h_diag: (N,) initial Hessian scaling gamma = s.y / y.y of the newest pair.
        g: (N, D) gradients.

    All CPU tensors of one floating dtype (float32 or float64), except the integer ``ptr``
    and ``lens``. The attacks are split into ``torch.get_num_threads()`` contiguous shares, one
    per thread.

    Returns:
        (N, D) search directions -H g, a new tensor.

    Raises:
        ValueError: a tensor not on the CPU, a dtype other than float32/float64 (integers for
            ``ptr`` and ``lens``), or mismatched dtypes or shapes.
        ImportError: numba is not installed (``pip install numba``).
    """
    global _kernel
    if S.dim() != 3 or S.dtype not in KERNEL_DTYPES:
        raise ValueError(f"S must be a (m, N, D) float32 or float64 tensor, got {S.dtype} {tuple(S.shape)}")
    m, n, dim = S.shape
    want = {"Y": (Y, (m, n, dim)), "ro": (ro, (m, n)), "h_diag": (h_diag, (n,)), "g": (g, (n, dim))}
    for name, (t, shape) in want.items():
        if tuple(t.shape) != shape or t.dtype != S.dtype:
            raise ValueError(f"{name} must be {S.dtype} of shape {shape}, got {t.dtype} {tuple(t.shape)}")
    if tuple(ptr.shape) != (n,) or tuple(lens.shape) != (n,):
        raise ValueError(f"ptr and lens must have shape ({n},)")
    if ptr.is_floating_point() or lens.is_floating_point():
        raise ValueError("ptr and lens must be integer tensors")
    if any(t.device.type != "cpu" for t in (S, Y, ro, ptr, lens, h_diag, g)):
        raise ValueError("two_loop_cpu runs on CPU tensors only; use the torch recursion on a GPU")
    if _kernel is None:
        _kernel = _build_kernel()
    out = torch.empty(g.shape, dtype=g.dtype)  # C-contiguous whatever g's strides
    ptr, lens = ptr.to(torch.int64), lens.to(torch.int64)
    arrays = [t.detach().contiguous().numpy() for t in (S, Y, ro, ptr, lens, h_diag, g, out)]
    threads = torch.get_num_threads()
    shares = max(1, min(threads, n))
    bounds = [n * i // shares for i in range(shares + 1)]
    pool = _workers(threads) if shares > 1 else None
    others = [pool.submit(_kernel, *arrays, a, b) for a, b in zip(bounds[1:-1], bounds[2:])] if pool else []
    try:
        _kernel(*arrays, bounds[0], bounds[1])  # this thread takes the first share
    finally:
        wait(others)  # never return (or raise) while a worker still reads the buffers
    for f in others:
        f.result()  # re-raise a worker's exception
    return out
