"""Batched optimisers: N independent L-BFGS (or Adam) runs as one vectorised computation.

The engine runs N gradient-inversion attacks at once: the dummy data of attack i is row i of a
tensor ``x`` of shape (N, D) and one batched *closure* returns every attack's loss (N,) and its
gradient with respect to its own row (N, D). ``torch.optim.LBFGS`` on that tensor would couple
the attacks (one curvature history built from dot products over all N*D numbers, one step size,
one set of termination tests), so it is not N independent runs. The classes here are.

Closure contract (all classes here)
    ``closure(x) -> (loss, grad)`` where ``x`` is an (N, D) tensor (the optimiser's own
    iterate, or a trial point during a line search), ``loss`` is (N,) and ``grad`` is (N, D),
    same dtype and device. Row i of both may depend on row i of ``x`` only. The closure must
    not modify ``x`` in place; it is called with autograd enabled (typically it does
    ``xr = x.detach().requires_grad_()`` and ``torch.autograd.grad``); what it returns is
    detached. The optimiser updates the tensor it was built with in place (``opt.x`` shares
    its storage), so the caller sees every step.

L-BFGS (:class:`BatchedLBFGS`)
    One ``step(closure)`` is, for every attack separately, exactly one iteration of
    ``torch.optim.LBFGS(params, lr, max_iter=1, history_size=m, line_search_fn=None)``
    (torch 2.13 ``torch/optim/lbfgs.py``, itself after Schmidt's minFunc), i.e. Nocedal &
    Wright, *Numerical Optimization* (2nd ed.), Algorithm 7.4 (two-loop recursion) with the
    initial Hessian scaling gamma = s.y / y.y (their Eq. 7.20) and a fixed step:

    1. evaluate f(x), g(x) once; if max|g| <= tolerance_grad: stop (no state change);
    2. on the attack's first iteration d = -g; otherwise form y = g - g_prev, s = t_prev d_prev,
       keep the pair (dropping the oldest beyond m) only if y.s > 1e-10, set H_diag = y.s / y.y,
       and d = -H g by the two-loop recursion over the kept pairs;
    3. t = min(1, 1/||g||_1) * lr on the first iteration, else t = lr;
    4. if g.d > -tolerance_change: stop without moving (the new d, t and g are still kept,
       as torch does); else x <- x + t d.

    Per-attack independence: every quantity above is per row: curvature pairs live in
    (m, N, D) buffers (slot-major, so one history slot of all attacks is one contiguous
    (N, D) block) with per-attack counts ``L`` (N,) and write pointers; the two-loop recursion
    loops over history *slots* (at most ``max L`` of them) and does batched row-wise dot
    products, an attack's entry in a slot it does not own being masked with ``torch.where``
    (coefficient exactly 0, so it adds exactly nothing). When attacks disagree on the write
    pointer (one rejected a pair or stood still while others did not), the minority's buffers
    are rotated once so that slot k holds everyone's k-th newest pair; that keeps the loop
    free of gathers. That is the eager recursion (``two_loop="torch"``, any device); on a
    CPU the default runs each attack's recursion as one compiled loop instead
    (:mod:`wdlg_core.two_loop`, which reads each attack's slots directly by its own write
    pointer and needs no rotation), the same arithmetic at about half the memory traffic.
    Step sizes, H_diag, the curvature test and the termination tests are
    (N,) tensors: an attack that meets a termination test simply does not move that step.
    The arithmetic is the same as torch's up to rounding (row-wise ``vecdot``/``addcmul``
    instead of BLAS ``dot``/``add(alpha=)``): the tests find 1e-16..1e-10 after 50 steps in
    float64 for the eager recursion. The compiled one sums dot products in vectorised partial
    sums; it agrees to 1e-10 over 25 steps, but over 50 steps Rosenbrock's valley can turn
    that rounding into a termination test met one step earlier (x then differs by 5e-6).

    ``line_search="armijo"`` is *our own* batched backtracking search, not torch's
    strong-Wolfe one: starting from the same t, all pending attacks are evaluated together at
    x + t d; an attack whose trial point is finite and satisfies sufficient decrease
    f(x + t d) <= f(x) + c1 t g.d keeps that point (its loss and gradient are reused as the
    next step's starting evaluation, so a step costs one batched evaluation per round); the
    others multiply t by ``shrink`` (0.5) and are evaluated again, for at most ``max_ls``
    rounds (a non-finite trial point just counts as a failed round). An attack with no
    acceptable point stays where it is and forgets its history (its next step is a
    steepest-descent step with the first-iteration step size); if none of its trial points
    even had a finite loss and gradient, it is flagged diverged (see below) at its current,
    finite point. The loss is therefore non-increasing for every attack.

    Under the line search an attack that meets one of torch's termination tests stops for good
    (``opt.converged``; torch ends its inner loop on them, DLG's code then calls ``step``
    again): max|g| <= tolerance_grad at its iterate; g.d > -tolerance_change; after an accepted
    step |f_new - f| < tolerance_change or max|t d| <= tolerance_change; and a search that fails
    from a steepest-descent start (empty history), which the next step would repeat exactly. A
    stopped attack keeps its point and loss (``step`` returns that loss) and is never evaluated
    again: with ``row_closure=True`` the closure is called as ``closure(x, rows)`` with the
    (N,) bool mask of the attacks it must evaluate (the others' rows of its output are
    ignored), so the batch compacts and the line search never spins on a converged attack.

Diverged attacks
    When an attack's loss or gradient is NaN/inf at the point the optimiser evaluates as its
    iterate, the attack is frozen at its last point with a finite evaluation (``opt.x`` row
    restored, ``opt.loss`` is that point's loss), flagged in ``opt.diverged`` (N,) and never
    moved again. Its rows are replaced by zeros (``torch.where``) before any batched
    arithmetic and all reductions are row-wise, so NaN never reaches another attack; the
    others follow the same path as without it (bit for bit whenever torch reduces a row in
    the same order for both batch sizes, as it does on CPU for D below its parallel grain).

Adam (:class:`BatchedAdam`) is elementwise, i.e. already independent per attack; it follows
``torch.optim.Adam`` (default betas/eps, no weight decay, single-tensor CPU path) and adds the
same divergence freezing. The step count is shared (all live attacks step together; frozen
attacks never step again), so the bias corrections equal those of N separate Adams.

The same L-BFGS algorithm for a single problem, written as a plain loop over Python lists
(mirroring torch's code), is the tests' oracle (``tests/reference_lbfgs.py``): tests compare
it with torch and with the batched class attack by attack.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .two_loop import KERNEL_DTYPES, numba_available, two_loop_cpu

#: valid ``line_search`` values of the L-BFGS classes
LINE_SEARCHES = (None, "armijo")
#: names accepted by :func:`make_optimizer`
OPTIMIZERS = ("adam", "lbfgs")
#: valid ``two_loop`` values of :class:`BatchedLBFGS`
TWO_LOOPS = ("auto", "numba", "torch")
#: torch.optim.LBFGS keeps a curvature pair only when y.s exceeds this
CURVATURE_EPS = 1e-10

Closure = Callable[[Tensor], tuple[Tensor, Tensor]]


def _rowdot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot product of two (N, D) tensors -> (N,)."""
    return torch.linalg.vecdot(a, b)


def _resolve_two_loop(two_loop: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """``"auto"`` -> ``"numba"`` for float32/64 on a CPU with numba installed, else ``"torch"``;
    checks the others."""
    if two_loop not in TWO_LOOPS:
        raise ValueError(f"unknown two_loop {two_loop!r}; valid choices: {', '.join(TWO_LOOPS)}")
    on_cpu = device.type == "cpu"
    if two_loop == "auto":
        return "numba" if on_cpu and dtype in KERNEL_DTYPES and numba_available() else "torch"
    if two_loop == "numba":
        if not on_cpu:
            raise ValueError(f"two_loop='numba' runs on the CPU only, x is on {device}; use 'torch' or 'auto'")
        if dtype not in KERNEL_DTYPES:
            raise ValueError(f"two_loop='numba' needs float32 or float64, x is {dtype}; use 'torch' or 'auto'")
        if not numba_available():
            raise ImportError("two_loop='numba' needs numba: pip install numba (or use two_loop='torch')")
    return two_loop


def _check_line_search(line_search, max_ls, c1, shrink):
    if line_search not in LINE_SEARCHES:
        raise ValueError(f"unknown line_search {line_search!r}; valid choices: None, 'armijo'")
    if max_ls < 1:
        raise ValueError(f"max_ls must be >= 1, got {max_ls}")
    if not 0.0 < c1 < 1.0:
        raise ValueError(f"c1 must be in (0, 1), got {c1}")
    if not 0.0 < shrink < 1.0:
        raise ValueError(f"shrink must be in (0, 1), got {shrink}")


class _BatchedBase:
    """Shared bookkeeping: the iterate, divergence freezing, evaluation counts."""

    def __init__(self, x: Tensor, lr: float):
        if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
            raise ValueError("x must be a floating-point tensor of shape (N, D) "
                             "(N attacks, each flattened to D numbers)")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.x = x.detach()  # (N, D), shares storage with the caller's tensor
        self.lr = float(lr)
        n = x.shape[0]
        dev = x.device
        #: (N,) bool: attack produced a non-finite loss/gradient and is frozen
        self.diverged = torch.zeros(n, dtype=torch.bool, device=dev)
        #: (N,) int64: closure evaluations whose result the attack used
        self.func_evals = torch.zeros(n, dtype=torch.int64, device=dev)
        #: number of batched closure calls
        self.n_closure_calls = 0
        #: (N,) loss at the last finite evaluation of the attack's iterate (NaN if none)
        self.loss = torch.full((n,), float("nan"), dtype=x.dtype, device=dev)
        self._x_ok = self.x.clone()  # (N, D) last iterate with a finite evaluation

    def objective_changed(self) -> None:
        """Tell the optimiser that the closure's function changed (the dual critic was updated).

        The next step then evaluates its start point again instead of reusing an evaluation
        cached under the old function, so that a line search compares values of one function.
        A no-op for optimisers that cache nothing.
        """
        self._cache = None

    @property
    def x_finite(self) -> Tensor:
        """(N, D): each attack's last iterate whose evaluation was finite (a copy)."""
        return self._x_ok.clone()

    @property
    def active(self) -> Tensor:
        """(N,) bool: attacks still being optimised (not diverged)."""
        return ~self.diverged

    def _evaluate(self, closure: Closure, x: Tensor, used: Tensor):
        """Call the closure at ``x`` (N, D); count it for the attacks in ``used`` (N,) bool.

        Returns (loss (N,), grad (N, D), finite (N,) bool).
        """
        with torch.enable_grad():
            out = closure(x, used) if getattr(self, "row_closure", False) else closure(x)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise ValueError("closure(x) must return (loss (N,), grad (N, D))")
        loss, grad = out[0].detach(), out[1].detach()
        if loss.shape != x.shape[:1] or grad.shape != x.shape:
            raise ValueError(f"closure returned loss {tuple(loss.shape)} and grad "
                             f"{tuple(grad.shape)}; expected {tuple(x.shape[:1])} and "
                             f"{tuple(x.shape)}")
        self.n_closure_calls += 1
        self.func_evals += used
        finite = torch.isfinite(loss) & torch.isfinite(grad).all(dim=1)
        return loss.to(x.dtype), grad.to(x.dtype), finite

    def _accept_evaluation(self, loss: Tensor, finite: Tensor) -> Tensor:
        """Freeze attacks whose evaluation at their iterate is not finite.

        Returns ok (N,) bool: active attacks with a finite evaluation (their iterate and loss
        are recorded as the last finite ones).
        """
        bad = self.active & ~finite
        if bool(bad.any()):
            self.x[bad] = self._x_ok[bad]
            self.diverged |= bad
        ok = self.active & finite
        self._x_ok = torch.where(ok[:, None], self.x, self._x_ok)
        self.loss = torch.where(ok, loss, self.loss)
        return ok


class BatchedLBFGS(_BatchedBase):
    """N independent L-BFGS runs (torch.optim.LBFGS with max_iter=1, per attack) on x (N, D).

    Args:
        x: (N, D) float32/float64 iterate, updated in place (N attacks, D numbers each).
        lr: fixed step length (torch's ``lr``); the first iteration uses
            ``min(1, 1/||g||_1) * lr``.
        history_size: number m of curvature pairs kept per attack (torch's default 100).
        tolerance_grad: an attack with max|g| <= tolerance_grad does not move (torch 2.13
            default 1e-7).
        tolerance_change: an attack whose directional derivative g.d > -tolerance_change
            does not move (default 1e-9).
        line_search: ``None`` (torch's fixed step) or ``"armijo"`` (our batched
            backtracking, see the module docstring).
        max_ls, c1, shrink: Armijo rounds per step, sufficient-decrease constant and
            backtracking factor (ignored when ``line_search`` is None).
        stop_converged: with the line search, end an attack for good when it meets a
            termination test (see the module docstring; False: it is tried again every step,
            as before version 0.4.0, for benchmarks).
        row_closure: call the closure as ``closure(x, rows)`` with the (N,) bool mask of the
            attacks to evaluate (stopped and diverged ones are left out; see the module
            docstring); False: ``closure(x)``, every row.
        two_loop: how the two-loop recursion runs: ``"numba"`` (one compiled loop per
            attack, :mod:`wdlg_core.two_loop`; CPU, float32/64 only), ``"torch"`` (eager
            batched ops over history slots; any device and dtype) or ``"auto"`` (numba where
            it applies and is installed, else torch). Both give the same directions up to rounding.

    Attributes (all (N,) tensors unless stated): ``x``, ``diverged``, ``converged``, ``active``,
    ``func_evals`` (closure evaluations used by each attack), ``n_closure_calls`` (int,
    batched calls), ``n_iter`` (torch's per-attack iteration counter), ``moved`` (whether
    the attack moved in the last step), ``loss`` (loss of the last finite evaluation of the
    iterate), ``history_len`` (curvature pairs kept).

    Cost: two (m, N, D) buffers, i.e. 2*m*N*D numbers (N=128, D=3072, m=100, float32:
    315 MB). The eager recursion reads them from memory twice per step (once per loop); the
    numba one about once (each attack's second loop finds its pairs in the caches). Either
    way the optimiser's own cost grows linearly with the pairs kept and is memory-bound once
    the history is full.

    Raises:
        ValueError: bad ``x`` shape/dtype, lr <= 0, history_size < 1, unknown line_search or
            two_loop, ``two_loop="numba"`` for a tensor not on the CPU or not float32/64.
        ImportError: ``two_loop="numba"`` without numba installed.

    Source: torch 2.13 ``torch.optim.LBFGS.step``; Nocedal & Wright Algorithm 7.4.
    """

    def __init__(self, x: Tensor, lr: float = 1.0, history_size: int = 100,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 line_search: str | None = None, max_ls: int = 10, c1: float = 1e-4,
                 shrink: float = 0.5, two_loop: str = "auto", row_closure: bool = False,
                 stop_converged: bool = True):
        super().__init__(x, lr)
        self.row_closure = bool(row_closure)
        self.stop_converged = bool(stop_converged) and line_search is not None
        if history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {history_size}")
        _check_line_search(line_search, max_ls, c1, shrink)
        self.two_loop = _resolve_two_loop(two_loop, self.x.device, self.x.dtype)
        self.m = int(history_size)
        self.tolerance_grad = float(tolerance_grad)
        self.tolerance_change = float(tolerance_change)
        self.line_search = line_search
        self.max_ls, self.c1, self.shrink = int(max_ls), float(c1), float(shrink)
        n, dim = self.x.shape
        xl, dev = self.x, self.x.device
        long = dict(dtype=torch.int64, device=dev)
        self._S = xl.new_zeros(self.m, n, dim)  # (m, N, D) steps s
        self._Y = xl.new_zeros(self.m, n, dim)  # (m, N, D) gradient changes y
        self._ro = xl.new_zeros(self.m, n)  # (m, N) 1 / (y.s)
        self.history_len = torch.zeros(n, **long)  # (N,) pairs kept
        self._ptr = torch.zeros(n, **long)  # (N,) next slot to write
        self.n_iter = torch.zeros(n, **long)
        self._H = xl.new_ones(n)  # (N,) H_diag
        self._d = xl.new_zeros(n, dim)  # (N, D) last direction
        self._t = xl.new_zeros(n)  # (N,) last step length
        self._g_prev = xl.new_zeros(n, dim)  # (N, D)
        self.moved = torch.zeros(n, dtype=torch.bool, device=dev)
        #: (N,) bool: attack met a termination test under the line search and stopped for good
        self.converged = torch.zeros(n, dtype=torch.bool, device=dev)
        self.n_realigned = 0  # attack histories rotated to a common write pointer (diagnostic)
        self._cache = None  # Armijo: (loss, grad) already evaluated at the current x

    @property
    def active(self) -> Tensor:
        """(N,) bool: attacks still being optimised (neither diverged nor converged)."""
        return ~self.diverged & ~self.converged

    # ---------------------------------------------------------------- history
    def _store_pairs(self, acc: Tensor, s: Tensor, y: Tensor, ys: Tensor):
        """Append (s, y) for the attacks in ``acc`` (N,) bool, overwriting the oldest if full."""
        rows = acc.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        slots = self._ptr[rows]
        if rows.numel() == acc.numel() and bool((slots == slots[0]).all()):
            p = int(slots[0])  # everyone writes the same slot: contiguous copies
            self._S[p].copy_(s)
            self._Y[p].copy_(y)
            self._ro[p].copy_(1.0 / ys)
        else:
            self._S[slots, rows] = s[rows]
            self._Y[slots, rows] = y[rows]
            self._ro[slots, rows] = 1.0 / ys[rows]
        self._ptr[rows] = (slots + 1) % self.m
        self.history_len[rows] = (self.history_len[rows] + 1).clamp_(max=self.m)

    def _align(self, rows_mask: Tensor) -> int:
        """Rotate the buffers of the attacks in ``rows_mask`` to one common write pointer.

        Afterwards slot (p - 1 - k) % m holds the k-th newest pair of each of these attacks.
        Returns p.
        """
        rows = rows_mask.nonzero().squeeze(1)
        if rows.numel() == 0:
            return 0
        ptr = self._ptr[rows]
        p = int(ptr[0]) if bool((ptr == ptr[0]).all()) else int(torch.mode(ptr).values)
        move = rows[(ptr != p) & (self.history_len[rows] > 0)]
        if move.numel() > 0:
            self.n_realigned += move.numel()
            shift = p - self._ptr[move]  # (k,)
            src = (torch.arange(self.m, device=move.device)[:, None] - shift[None, :]) % self.m
            self._S[:, move] = self._S[src, move[None, :]]  # (m, k, D)
            self._Y[:, move] = self._Y[src, move[None, :]]
            self._ro[:, move] = self._ro[src, move[None, :]]
        self._ptr[rows] = p
        return p

    def _direction(self, g: Tensor, rows_mask: Tensor) -> Tensor:
        """d = -H g by the two-loop recursion for the attacks in ``rows_mask``; (N, D).

        Rows outside ``rows_mask`` get -H_diag * g (their result is discarded by the caller).
        """
        if self.two_loop == "numba":
            lens = torch.where(rows_mask, self.history_len, 0)
            if not bool(lens.any()):  # no pairs (first step): d = -H_diag g, nothing to compile
                return g.neg().mul_(self._H[:, None])
            return two_loop_cpu(self._S, self._Y, self._ro, self._ptr, lens, self._H, g)
        return self._direction_torch(g, rows_mask)

    def _direction_torch(self, g: Tensor, rows_mask: Tensor) -> Tensor:
        """:meth:`_direction` as eager batched ops, slot by slot over all attacks (any device).

        History terms of rows outside ``rows_mask`` are masked out.
        """
        q = g.neg()  # (N, D)
        lens = torch.where(rows_mask, self.history_len, 0)
        kmax = int(lens.max()) if lens.numel() else 0
        if kmax == 0:
            return q.mul_(self._H[:, None])
        p = self._align(rows_mask & (self.history_len > 0))
        ages = torch.arange(kmax, device=g.device)
        slots = ((p - 1 - ages) % self.m).tolist()  # newest first
        valid = ages[:, None] < lens[None, :]  # (kmax, N)
        ro = torch.where(valid, self._ro[slots], 0)  # (kmax, N)
        al = [None] * kmax
        for k in range(kmax):  # newest to oldest
            a = torch.where(valid[k], _rowdot(self._S[slots[k]], q) * ro[k], 0)  # (N,)
            q.addcmul_(self._Y[slots[k]], a[:, None], value=-1)
            al[k] = a
        r = q.mul_(self._H[:, None])
        for k in range(kmax - 1, -1, -1):  # oldest to newest
            be = torch.where(valid[k], _rowdot(self._Y[slots[k]], r) * ro[k], 0)
            r.addcmul_(self._S[slots[k]], (al[k] - be)[:, None])
        return r

    # ---------------------------------------------------------------- step
    @torch.no_grad()
    def step(self, closure: Closure) -> Tensor:
        """One L-BFGS iteration for every live attack; returns the loss (N,) at the start point.

        Frozen (diverged) attacks are evaluated with the others (their rows are ignored) and
        never move. See the module docstring for the algorithm and the closure contract.
        """
        active = self.active
        if self._cache is not None:
            loss, g = self._cache  # Armijo: the accepted point is already evaluated
            self._cache = None
            ok = active.clone()
        else:
            loss, g, finite = self._evaluate(closure, self.x, active)
            ok = self._accept_evaluation(loss, finite)
        loss = torch.where(active, loss, self.loss)  # stopped attacks report their last loss
        g = torch.where(ok[:, None], g, 0)  # (N, D) no NaN beyond this point

        opt_cond = g.abs().amax(dim=1) <= self.tolerance_grad
        go = ok & ~opt_cond  # attacks doing an iteration
        self.n_iter += go
        first = go & (self.n_iter == 1)

        # curvature pair from the previous iteration
        later = go & ~first
        if bool(later.any()):
            y = g - self._g_prev  # (N, D)
            s = self._d * self._t[:, None]  # (N, D)
            ys = _rowdot(y, s)  # (N,)
            acc = later & (ys > CURVATURE_EPS)
            if bool(acc.any()):
                yy = _rowdot(y, y)
                self._H = torch.where(acc, ys / torch.where(acc, yy, 1), self._H)
                self._store_pairs(acc, s, y, ys)
        self.history_len[first] = 0
        self._H[first] = 1

        d = self._direction(g, go)  # (N, D)
        inv_l1 = 1.0 / g.abs().sum(dim=1)
        t = torch.where(first & (inv_l1 < 1), inv_l1 * self.lr, self.lr).to(g.dtype)
        gtd = _rowdot(g, d)
        self._d = torch.where(go[:, None], d, self._d)
        self._t = torch.where(go, t, self._t)
        self._g_prev = torch.where(go[:, None], g, self._g_prev)
        move = go & ~(gtd > -self.tolerance_change)

        if self.line_search is None:
            self.x.copy_(torch.where(move[:, None], self.x + t[:, None] * d, self.x))
            self.moved = move
        else:
            self._armijo(closure, loss, g, d, t, gtd, move, first)
            if self.stop_converged:  # torch's tests that end an attack: optimal, no descent direction
                self.converged |= (ok & opt_cond) | (go & ~move)
        return loss

    def _armijo(self, closure, f0, g0, d, t, gtd, pending, first):
        """Batched backtracking from x along d (all (N, ...)); updates x, t, history, cache."""
        x0 = self.x.clone()
        x_new, f_new, g_new = x0.clone(), f0.clone(), g0
        t = t.clone()
        tried, pending = pending, pending.clone()
        seen_finite = torch.zeros_like(pending)
        for _ in range(self.max_ls):
            if not bool(pending.any()):
                break
            xt = torch.where(pending[:, None], x0 + t[:, None] * d, x_new)
            ft, gt, finite = self._evaluate(closure, xt, pending)
            seen_finite |= pending & finite
            good = pending & finite & (ft <= f0 + self.c1 * t * gtd)
            x_new = torch.where(good[:, None], xt, x_new)
            f_new = torch.where(good, ft, f_new)
            g_new = torch.where(good[:, None], gt, g_new)
            self._t = torch.where(good, t, self._t)
            pending = pending & ~good
            t = torch.where(pending, t * self.shrink, t)
        # no acceptable point: stay, forget the history (next step is steepest descent);
        # no finite trial point at all: the attack has diverged (frozen where it is)
        self.n_iter[pending] = 0
        self.history_len[pending] = 0
        self.diverged |= pending & ~seen_finite
        self.moved = tried & ~pending
        self.x.copy_(x_new)
        self._x_ok = torch.where(self.active[:, None], x_new, self._x_ok)
        self.loss = torch.where(self.active, f_new, self.loss)
        self._cache = (f_new, torch.where(self.active[:, None], g_new, 0))
        # attacks that end here: torch's lack-of-progress tests after an accepted step, and a
        # failed search from a steepest-descent start (the next step would repeat it exactly)
        if self.stop_converged:
            tiny = self.moved & (((f_new - f0).abs() < self.tolerance_change)
                                 | ((self._t[:, None] * d).abs().amax(dim=1) <= self.tolerance_change))
            self.converged |= tiny | (pending & seen_finite & first)


class BatchedAdam(_BatchedBase):
    """N independent Adam runs on x (N, D), equal to ``torch.optim.Adam`` per attack.

    Args:
        x: (N, D) float iterate, updated in place.
        lr: step size (torch's default 1e-3).
        betas, eps: as in torch.optim.Adam (defaults (0.9, 0.999), 1e-8).
        signed: step on sign(g) instead of g (Inverting Gradients' "signed gradients":
            their closure replaces the gradient by its sign before ``torch.optim.Adam``
            steps; entries with g = 0 stay 0).

    ``lr`` is a plain attribute read at every step, so a schedule (the engine's step decay,
    ``AttackConfig.lr_at``) sets it before each step, as ``torch.optim.lr_scheduler`` sets the
    param group's lr.

    Follows torch 2.13 ``_single_tensor_adam`` (no weight decay / amsgrad): m <- lerp(m, g,
    1 - beta1), v <- beta2 v + (1 - beta2) g^2, x <- x - lr / (1 - beta1^k) *
    m / (sqrt(v) / sqrt(1 - beta2^k) + eps). The step count k is shared by all attacks
    (they step together; a diverged attack is frozen for good, so this equals per-attack
    counts). Attributes as in :class:`BatchedLBFGS` (``x``, ``diverged``, ``active``,
    ``func_evals``, ``n_closure_calls``, ``loss``, ``n_steps``).

    Raises:
        ValueError: bad ``x`` shape/dtype or lr <= 0.
    """

    def __init__(self, x: Tensor, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, signed: bool = False):
        super().__init__(x, lr)
        self.signed = bool(signed)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        self._m = torch.zeros_like(self.x)  # (N, D) first moment
        self._v = torch.zeros_like(self.x)  # (N, D) second moment
        self.n_steps = 0

    @torch.no_grad()
    def step(self, closure: Closure) -> Tensor:
        """One Adam step for every live attack; returns the loss (N,) at the start point."""
        loss, g, finite = self._evaluate(closure, self.x, self.active)
        ok = self._accept_evaluation(loss, finite)[:, None]  # (N, 1)
        g = torch.where(ok, g, 0)
        if self.signed:
            g = g.sign()
        self.n_steps += 1
        k = self.n_steps
        m = self._m.lerp(g, 1 - self.beta1)
        v = self._v.mul(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        step_size = self.lr / (1 - self.beta1 ** k)
        denom = (v.sqrt() / (1 - self.beta2 ** k) ** 0.5).add_(self.eps)
        # (not addcdiv's value=: a step beyond float32's range must give inf, caught as divergence, not raise)
        x_new = self.x - (m / denom) * step_size
        self._m = torch.where(ok, m, self._m)
        self._v = torch.where(ok, v, self._v)
        self.x.copy_(torch.where(ok, x_new, self.x))
        return loss


def make_optimizer(name: str, x: Tensor, lr: float, **kw):
    """Batched optimiser by name: ``"lbfgs"`` -> :class:`BatchedLBFGS`, ``"adam"`` ->
    :class:`BatchedAdam`, built on ``x`` (N, D) with step size ``lr``; ``kw`` goes to the class.

    Raises:
        ValueError: unknown name (the message lists the valid choices).
    """
    if name == "lbfgs":
        return BatchedLBFGS(x, lr=lr, **kw)
    if name == "adam":
        return BatchedAdam(x, lr=lr, **kw)
    raise ValueError(f"unknown optimizer {name!r}; valid choices: {', '.join(OPTIMIZERS)}")
