"""Batched optimisers (wdlg_core.optim): equal to torch / to the single-problem reference,
attack by attack; independent of the batch; divergence frozen without leaking."""
import math

import pytest
import torch

from reference_lbfgs import LBFGSReference
from wdlg_core.optim import BatchedAdam, BatchedLBFGS, make_optimizer

D = 6  # numbers per problem
STEPS = 50


def rosenbrock(k):
    """Rosenbrock function on the first k coordinates (the others do not matter):
    x (D,) -> (loss, analytic gradient (D,))."""
    def f(x):
        z = x[:k]
        r = z[1:] - z[:-1] ** 2
        u = 1 - z[:-1]
        grad = torch.zeros_like(x)
        grad[:k - 1] = -400 * r * z[:-1] - 2 * u
        grad[1:k] += 200 * r
        return (100 * r ** 2 + u ** 2).sum(), grad
    return f


def quadratic(cond, seed, dim=D):
    """0.5 x'Ax - b'x with A SPD of condition number ``cond``: x -> (loss, Ax - b)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.logspace(0, math.log10(cond), dim, dtype=torch.float64)) @ q.T
    b = torch.randn(dim, generator=g, dtype=torch.float64)

    def f(x):
        ax = a @ x
        return 0.5 * x @ ax - b @ x, ax - b
    return f


def batch_closure(fs):
    """Closure for BatchedLBFGS/BatchedAdam: row i evaluated with fs[i] on its own."""
    def closure(x):
        out = [f(x[i]) for i, f in enumerate(fs)]
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])
    return closure


def mixed_problems():
    """Quadratics of increasing conditioning and Rosenbrock in 2, 4 and 6 dimensions."""
    return [quadratic(1.0, 1), quadratic(1e2, 2), quadratic(1e4, 3),
            rosenbrock(2), rosenbrock(4), rosenbrock(6)]


def start_points(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(n, D, generator=g, dtype=torch.float64)


def run_batched(fs, x0, steps=STEPS, **kw):
    x = x0.clone()
    opt = BatchedLBFGS(x, **kw)
    closure = batch_closure(fs)
    losses, moved = [], []
    for _ in range(steps):
        losses.append(opt.step(closure).clone())
        moved.append(opt.moved.clone())
    return opt, torch.stack(losses), torch.stack(moved)


def run_reference(f, x0, steps=STEPS, **kw):
    ref = LBFGSReference(x0.clone(), **kw)
    for _ in range(steps):
        ref.step(f)
    return ref


@pytest.mark.parametrize("problem, lr, history_size, tols, exit", [
    (quadratic(1.0, 1), 1.0, 100, {}, "grad"),  # exact after 2 steps: max|g| <= tolerance_grad
    (quadratic(1e2, 2), 1.0, 100, {"tolerance_grad": 1e-5}, "grad"),
    (quadratic(1e2, 2), 1.0, 3, {}, "change"),  # g.d > -tolerance_change: stands still
    (quadratic(10.0, 4), 1.0, 3, {"tolerance_change": 1e-4}, "change"),
    (quadratic(1e4, 3), 1.0, 3, {}, None),  # history ring wraps many times
    (quadratic(1e4, 3), 1.0, 100, {}, "change"),
    (rosenbrock(2), 0.5, 100, {}, "change"),
    (rosenbrock(6), 1.0, 3, {}, None),
    (rosenbrock(4), 0.5, 100, {}, None),
])
def test_reference_equals_torch_lbfgs(problem, lr, history_size, tols, exit):
    x0 = start_points(1, seed=7)[0]
    p = x0.clone().requires_grad_()
    opt = torch.optim.LBFGS([p], lr=lr, max_iter=1, history_size=history_size, **tols)
    ref = LBFGSReference(x0.clone(), lr=lr, history_size=history_size, **tols)

    def closure():
        loss, p.grad = problem(p.detach())
        return loss

    for _ in range(STEPS):
        torch_loss = opt.step(closure)
        ref_loss = ref.step(problem)
        torch.testing.assert_close(ref_loss, torch_loss.detach(), rtol=0, atol=1e-13)
        torch.testing.assert_close(ref.x, p.detach(), rtol=0, atol=1e-13)
        assert ref.n_iter == opt.state[p].get("n_iter", 0)
    # which termination test stopped the run (both agree on n_iter and x at every step)
    assert ref.moved == (exit is None)
    assert (ref.n_iter < STEPS) == (exit == "grad")


def assert_each_attack_matches_reference(opt, fs, x0, steps, kw):
    """Attack i of the batched ``opt`` ends where LBFGSReference on fs[i] alone ends (to 1e-8),
    with the same iteration and evaluation counts; returns the references."""
    refs = [run_reference(f, x0[i], steps=steps, **kw) for i, f in enumerate(fs)]
    for i, ref in enumerate(refs):
        torch.testing.assert_close(opt.x[i], ref.x, rtol=1e-8, atol=1e-8)
        assert float(opt.loss[i]) == pytest.approx(ref.loss, rel=1e-8, abs=1e-8)
        assert int(opt.n_iter[i]) == ref.n_iter
        assert int(opt.func_evals[i]) == ref.func_evals
        assert bool(opt.moved[i]) == ref.moved
    return refs


@pytest.mark.parametrize("tolerance_grad", [1e-7, 1e-4])
@pytest.mark.parametrize("history_size", [4, 100])
@pytest.mark.parametrize("line_search", [None, "armijo"])
def test_batched_equals_reference_per_attack(history_size, line_search, tolerance_grad):
    fs = mixed_problems()
    x0 = start_points(len(fs))
    kw = dict(lr=0.5, history_size=history_size, line_search=line_search,
              tolerance_grad=tolerance_grad)
    opt, _, moved = run_batched(fs, x0, two_loop="torch", **kw)  # the eager recursion
    # not bit-exact: row-wise vecdot vs BLAS dot and addcmul vs add(alpha=) round
    # differently, and 50 L-BFGS steps amplify that to ~1e-10 here
    assert_each_attack_matches_reference(opt, fs, x0, STEPS, kw)
    # attacks stop moving (tolerance exits) at different steps, and the histories had to be
    # realigned because attacks kept different numbers of curvature pairs
    last_move = [int(moved[:, i].nonzero().max()) for i in range(len(fs))]
    assert min(last_move) < STEPS - 1
    assert len(set(last_move)) > 1
    if tolerance_grad == 1e-4:  # some stop on max|g| <= tolerance_grad (n_iter frozen)
        assert (opt.n_iter < STEPS).any()
    assert opt.n_realigned > 0
    assert not opt.diverged.any()


@pytest.mark.parametrize("tolerance_grad", [1e-7, 1e-4])
@pytest.mark.parametrize("history_size", [4, 100])
@pytest.mark.parametrize("line_search", [None, "armijo"])
def test_numba_two_loop_equals_reference_per_attack(history_size, line_search, tolerance_grad):
    # The compiled recursion (the CPU default) sums its dot products in vectorised partial
    # sums, so it rounds unlike BLAS dot. Over 50 steps Rosenbrock's valley amplifies that:
    # with m = 4 and a fixed step one run meets tolerance_change a step before the other
    # (x differs by 5e-6 from step 29 on). Over 25 steps every attack agrees to 1e-10; the
    # direction itself is compared with the eager one in tests/test_two_loop.py.
    fs = mixed_problems()
    x0 = start_points(len(fs))
    kw = dict(lr=0.5, history_size=history_size, line_search=line_search, tolerance_grad=tolerance_grad)
    opt, _, _ = run_batched(fs, x0, steps=25, two_loop="numba", **kw)
    assert opt.two_loop == "numba"
    assert opt._ptr.unique().numel() > 1  # attacks write different slots: each reads its own
    refs = assert_each_attack_matches_reference(opt, fs, x0, 25, kw)
    assert opt.history_len.tolist() == [len(ref.old_dirs) for ref in refs]
    assert not opt.diverged.any()


@pytest.mark.parametrize("line_search", [None, "armijo"])
def test_attack_independent_of_batch(line_search):
    fs = mixed_problems()
    x0 = start_points(len(fs), seed=3)
    kw = dict(lr=0.5, history_size=5, line_search=line_search)
    together, losses, _ = run_batched(fs, x0, **kw)
    for i in range(len(fs)):
        alone, losses_alone, _ = run_batched([fs[i]], x0[i:i + 1], **kw)
        assert torch.equal(alone.x[0], together.x[i])  # bit for bit
        assert torch.equal(losses_alone[:, 0], losses[:, i])
        assert alone.func_evals[0] == together.func_evals[i]


def poisoned(f, after):
    """``f``, but NaN from its ``after``-th evaluation on (a diverging attack)."""
    calls = [0]

    def g(x):
        calls[0] += 1
        loss, grad = f(x)
        if calls[0] > after:
            return loss * float("nan"), grad * float("nan")
        return loss, grad
    return g


@pytest.mark.parametrize("line_search", [None, "armijo"])
def test_divergence_frozen_and_isolated(line_search):
    fs = mixed_problems()
    x0 = start_points(len(fs), seed=5)
    kw = dict(lr=0.5, history_size=4, line_search=line_search)
    clean, clean_losses, _ = run_batched(fs, x0, **kw)

    bad = 2
    fs_bad = list(fs)
    fs_bad.insert(bad, poisoned(quadratic(1e2, 9), after=12))
    x0_bad = torch.cat([x0[:bad], start_points(1, seed=9), x0[bad:]])
    opt, losses, _ = run_batched(fs_bad, x0_bad, **kw)

    assert opt.diverged.tolist() == [i == bad for i in range(len(fs_bad))]
    keep = [i for i in range(len(fs_bad)) if i != bad]
    assert torch.equal(opt.x[keep], clean.x)  # bit for bit
    assert torch.equal(losses[:, keep], clean_losses)
    assert torch.equal(opt.func_evals[keep], clean.func_evals)
    assert torch.isfinite(opt.x).all()
    # the diverged attack sits at its last iterate with a finite evaluation, as the reference
    ref = run_reference(poisoned(quadratic(1e2, 9), after=12), x0_bad[bad], **kw)
    assert ref.diverged
    torch.testing.assert_close(opt.x[bad], ref.x, rtol=0, atol=1e-12)
    assert opt.func_evals[bad] == ref.func_evals
    if line_search is None:  # one evaluation per step: the 13th was the last used one
        assert ref.func_evals == 13
    assert math.isfinite(float(opt.loss[bad]))


def test_armijo_monotone_and_converges_on_rosenbrock():
    fs = [rosenbrock(2), rosenbrock(4), rosenbrock(6), quadratic(1e3, 1)]
    x0 = torch.tensor([-1.2, 1.0] * 3, dtype=torch.float64).repeat(len(fs), 1)
    opt, losses, _ = run_batched(fs, x0, steps=80, lr=1.0, line_search="armijo")
    assert (losses[1:] <= losses[:-1]).all()
    for i in range(3):
        k = 2 * (i + 1)
        assert float(opt.loss[i]) < 1e-9
        torch.testing.assert_close(opt.x[i, :k], torch.ones(k, dtype=torch.float64),
                                   rtol=0, atol=1e-4)
    # the fixed step (same lr) is not monotone on these problems
    _, fixed_losses, _ = run_batched(fs, x0, steps=80, lr=1.0)
    assert (fixed_losses[1:] > fixed_losses[:-1]).any()


def test_adam_equals_torch_per_attack():
    fs = mixed_problems()
    x0 = start_points(len(fs), seed=11)
    x = x0.clone()
    opt = BatchedAdam(x, lr=0.05)
    closure = batch_closure(fs)
    params = [x0[i].clone().requires_grad_() for i in range(len(fs))]
    torch_opts = [torch.optim.Adam([p], lr=0.05) for p in params]
    for _ in range(STEPS):
        opt.step(closure)
        for f, p, o in zip(fs, params, torch_opts):
            _, p.grad = f(p.detach())
            o.step()
    torch.testing.assert_close(x, torch.stack([p.detach() for p in params]), rtol=0, atol=1e-14)
    assert opt.func_evals.tolist() == [STEPS] * len(fs)


def test_adam_divergence_frozen_and_isolated():
    fs = mixed_problems()
    x0 = start_points(len(fs), seed=13)
    clean = x0.clone()
    opt_clean = BatchedAdam(clean, lr=0.05)
    bad_x = torch.cat([x0, start_points(1, seed=14)])
    opt = BatchedAdam(bad_x, lr=0.05)
    c_clean = batch_closure(fs)
    c_bad = batch_closure(fs + [poisoned(quadratic(10.0, 2), after=7)])
    snapshots = []
    for _ in range(20):
        snapshots.append(bad_x[-1].clone())
        opt_clean.step(c_clean)
        opt.step(c_bad)
    assert opt.diverged.tolist() == [False] * len(fs) + [True]
    assert torch.equal(bad_x[:-1], clean)
    assert torch.equal(bad_x[-1], snapshots[6])  # the 7th (last finite) evaluation's point
    assert opt.func_evals[-1] == 8


def test_float32_runs_and_decreases():
    fs = mixed_problems()
    x0 = start_points(len(fs)).float()
    fs32 = [lambda x, f=f: tuple(v.float() for v in f(x.double())) for f in fs]
    opt, losses, _ = run_batched(fs32, x0, steps=30, lr=0.5, history_size=10,
                                 line_search="armijo")
    assert opt.x.dtype == torch.float32
    assert (losses[-1] < losses[0]).all()


def test_make_optimizer_and_bad_input():
    x = torch.zeros(3, 4)
    assert isinstance(make_optimizer("lbfgs", x, 1.0, history_size=5), BatchedLBFGS)
    assert isinstance(make_optimizer("adam", x, 0.1), BatchedAdam)
    with pytest.raises(ValueError, match="valid choices: adam, lbfgs"):
        make_optimizer("sgd", x, 0.1)
    with pytest.raises(ValueError, match="armijo"):
        BatchedLBFGS(x, line_search="wolfe")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        BatchedLBFGS(torch.zeros(4))
    with pytest.raises(ValueError, match="lr"):
        BatchedAdam(x, lr=0.0)
    with pytest.raises(ValueError, match="valid choices: auto, numba, torch"):
        BatchedLBFGS(x, two_loop="fortran")
    assert BatchedLBFGS(x).two_loop == "numba"  # the CPU default (numba is a dependency)
    opt = BatchedLBFGS(x)
    with pytest.raises(ValueError, match="expected"):
        opt.step(lambda z: (z.sum(), z))


def test_converged_attacks_stop_and_leave_the_evaluations():
    """Under the line search an attack that meets a termination test stops for good: with
    ``row_closure`` the closure is never asked for its row again, the attack keeps its point
    and loss, and each attack still equals the single-problem reference (which stops too)."""
    fs = mixed_problems()
    x0 = start_points(len(fs), seed=11)
    asked = []

    def closure(x, rows):
        asked.append(rows.clone())
        sub = batch_closure([f if bool(r) else (lambda z: (z.sum() * 0, z * 0)) for f, r in zip(fs, rows)])
        return sub(x)

    kw = dict(lr=1.0, history_size=10, line_search="armijo")
    opt = BatchedLBFGS(x0.clone(), row_closure=True, **kw)
    converged_at, losses = {}, []
    for step in range(80):
        n_before = len(asked)
        losses.append(opt.step(closure).clone())
        for i in opt.converged.nonzero().flatten().tolist():
            converged_at.setdefault(i, (step, len(asked)))
        for i, (_, first_call) in converged_at.items():  # never evaluated after the step it stopped in
            assert not any(bool(rows[i]) for rows in asked[max(first_call, n_before):])
    assert len(converged_at) >= 3  # the quadratics (at least) converge within 80 steps
    losses = torch.stack(losses)
    for i, (step, _) in converged_at.items():  # a stopped attack reports its last loss
        assert torch.equal(losses[step + 1:, i], opt.loss[i].expand(80 - step - 1))
    for i, f in enumerate(fs):
        ref = run_reference(f, x0[i], steps=80, **kw)
        torch.testing.assert_close(opt.x[i], ref.x, rtol=0, atol=1e-10)
        assert bool(opt.converged[i]) == ref.converged and int(opt.func_evals[i]) == ref.func_evals
    # stop_converged=False: the old behaviour, every attack is tried again at every step (the
    # cost of that on real attacks is in benchmarks/converged_attacks.py)
    old = BatchedLBFGS(x0.clone(), stop_converged=False, **kw)
    for _ in range(80):
        old.step(batch_closure(fs))
    assert not old.converged.any()
