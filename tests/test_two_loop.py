"""The compiled two-loop recursion (wdlg_core.two_loop) against the eager one of
BatchedLBFGS and against a plain per-attack loop."""
import pytest
import torch

from wdlg_core.optim import BatchedLBFGS, _resolve_two_loop
from wdlg_core.two_loop import two_loop_cpu


def plain_two_loop(S, Y, ro, ptr, lens, h_diag, g):
    """Nocedal & Wright Algorithm 7.4 attack by attack, with Python lists of pairs."""
    m = S.shape[0]
    out = torch.empty_like(g)
    for n in range(g.shape[0]):
        slots = [(int(ptr[n]) - 1 - k) % m for k in range(int(lens[n]))]  # newest first
        q, al = -g[n].clone(), []
        for sl in slots:
            al.append(S[sl, n].dot(q) * ro[sl, n])
            q -= al[-1] * Y[sl, n]
        q *= h_diag[n]
        for sl, a in reversed(list(zip(slots, al))):
            q += (a - Y[sl, n].dot(q) * ro[sl, n]) * S[sl, n]
        out[n] = q
    return out


def random_history(m, n, dim, dtype, seed=0):
    """Curvature pairs with y = A s (A SPD, so y.s > 0), wrapped write pointers and
    per-attack lengths from 0 to m."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    a = a @ a.T / dim + torch.eye(dim, dtype=torch.float64)
    S = torch.randn(m, n, dim, generator=gen, dtype=torch.float64)
    Y = S @ a
    ro = 1.0 / (S * Y).sum(-1)
    ptr = torch.randint(0, m, (n,), generator=gen)
    lens = torch.randint(0, m + 1, (n,), generator=gen)
    lens[:3] = torch.tensor([0, m, 1])
    h_diag = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    g = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return [t.to(dtype) if t.is_floating_point() else t for t in (S, Y, ro, ptr, lens, h_diag, g)]


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("m, n, dim", [(5, 9, 33), (12, 4, 3072)])
def test_kernel_equals_plain_loop(m, n, dim, dtype, rtol):
    args = random_history(m, n, dim, dtype)
    d = two_loop_cpu(*args)
    ref = plain_two_loop(*[t.double() if t.is_floating_point() else t for t in args])
    assert d.dtype == dtype and d.shape == (n, dim)
    torch.testing.assert_close(d.double(), ref, rtol=rtol, atol=rtol * ref.abs().max().item())
    g, h_diag = args[6], args[5]
    torch.testing.assert_close(d[0], -h_diag[0] * g[0])  # no pairs: d = -H_diag g


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_kernel_equals_eager_recursion_of_batched_lbfgs(dtype, rtol):
    m, n, dim = 7, 10, 50
    S, Y, ro, ptr, lens, h_diag, g = random_history(m, n, dim, dtype, seed=1)
    opt = BatchedLBFGS(torch.zeros(n, dim, dtype=dtype), history_size=m, two_loop="torch")
    opt._S, opt._Y, opt._ro = S.clone(), Y.clone(), ro.clone()
    opt._ptr, opt.history_len, opt._H = ptr.clone(), lens.clone(), h_diag.clone()
    rows = torch.arange(n) % 3 != 2  # some attacks are not doing an iteration
    eager = opt._direction_torch(g, rows)  # rotates the minority's buffers first
    assert opt.n_realigned > 0
    compiled = BatchedLBFGS(torch.zeros(n, dim, dtype=dtype), history_size=m, two_loop="numba")
    compiled._S, compiled._Y, compiled._ro = S, Y, ro
    compiled._ptr, compiled.history_len, compiled._H = ptr, lens, h_diag
    d = compiled._direction(g, rows)
    assert compiled.n_realigned == 0  # each attack's slots are read by its own write pointer
    torch.testing.assert_close(d[rows], eager[rows], rtol=rtol, atol=rtol * eager.abs().max().item())
    assert torch.equal(d[~rows], -g[~rows] * h_diag[~rows, None])  # not iterating: -H_diag g


def test_kernel_is_independent_of_the_other_attacks_and_of_the_threads():
    S, Y, ro, ptr, lens, h_diag, g = random_history(6, 8, 40, torch.float32, seed=2)
    together = two_loop_cpu(S, Y, ro, ptr, lens, h_diag, g)
    threads = torch.get_num_threads()
    try:
        for t in (1, 3, 8, 16):  # the attacks split into min(t, N) shares, one per thread
            torch.set_num_threads(t)
            assert torch.equal(two_loop_cpu(S, Y, ro, ptr, lens, h_diag, g), together)
    finally:
        torch.set_num_threads(threads)
    for i in range(8):
        alone = two_loop_cpu(S[:, i:i + 1], Y[:, i:i + 1], ro[:, i:i + 1], ptr[i:i + 1], lens[i:i + 1],
                             h_diag[i:i + 1], g[i:i + 1])
        assert torch.equal(alone[0], together[i])  # bit for bit


def test_no_attacks():
    S, Y, ro, ptr, lens, h_diag, g = random_history(3, 4, 5, torch.float32)
    d = two_loop_cpu(S[:, :0], Y[:, :0], ro[:, :0], ptr[:0], lens[:0], h_diag[:0], g[:0])
    assert d.shape == (0, 5)


def test_bad_input():
    S, Y, ro, ptr, lens, h_diag, g = random_history(3, 4, 5, torch.float32)
    with pytest.raises(ValueError, match="float32 or float64"):
        two_loop_cpu(*[t.half() if t.is_floating_point() else t for t in (S, Y, ro, ptr, lens, h_diag, g)])
    with pytest.raises(ValueError, match="integer"):
        two_loop_cpu(S, Y, ro, ptr.float(), lens, h_diag, g)
    with pytest.raises(ValueError, match="g must be torch.float32 of shape"):
        two_loop_cpu(S, Y, ro, ptr, lens, h_diag, g.double())
    with pytest.raises(ValueError, match="ro must be"):
        two_loop_cpu(S, Y, ro[:2], ptr, lens, h_diag, g)
    with pytest.raises(ValueError, match="ptr and lens"):
        two_loop_cpu(S, Y, ro, ptr[:2], lens, h_diag, g)
    with pytest.raises(ValueError, match="valid choices: auto, numba, torch"):
        _resolve_two_loop("blas", torch.device("cpu"))
    with pytest.raises(ValueError, match="CPU only"):
        _resolve_two_loop("numba", torch.device("cuda"))
    assert _resolve_two_loop("auto", torch.device("cuda")) == "torch"
    with pytest.raises(ValueError, match="float32 or float64"):
        _resolve_two_loop("numba", torch.device("cpu"), torch.bfloat16)
    assert _resolve_two_loop("auto", torch.device("cpu"), torch.bfloat16) == "torch"
    assert BatchedLBFGS(torch.zeros(2, 3, dtype=torch.bfloat16)).two_loop == "torch"
    assert _resolve_two_loop("torch", torch.device("cpu")) == "torch"
