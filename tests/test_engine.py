"""The batched engine equals the one-attack reference, attack by attack."""
import numpy as np
import pytest
import torch

from reference_attack import reference_attack
from wdlg_core.config import AttackConfig
from wdlg_core.data import load_images
from wdlg_core.engine import chunk_size, run_attacks, run_batch
from wdlg_core.models import build_model


@pytest.fixture(scope="module")
def digits():
    images, labels = load_images("mnist", 4)
    return images, labels


def _batch(images, labels, b=1):
    n = images.shape[0] // b
    return images[: n * b].reshape(n, b, *images.shape[1:]), labels[: n * b].reshape(n, b)


def _reference(images, labels, config, model="lenet"):
    opts = config.to_dict()
    m, o, it, s = opts.pop("method"), opts.pop("optimizer"), opts.pop("iterations"), opts.pop("seed")
    return reference_attack(images, labels, method=m, optimizer=o, iterations=it, seed=s, model=model,
                            num_classes=10, **opts)


# Batched kernels round differently from one-attack kernels (about 1e-7 relative per float32
# evaluation, see test_one_evaluation_is_batch_independent) and gradient inversion amplifies
# rounding like any chaotic optimisation (Adam's normalised steps and the sign-like sorted /
# dual estimators fastest). So the comparison runs in float64, where rounding is 1e-16 and
# stays far below the tolerance over these horizons.
@pytest.mark.parametrize("method,optimizer,estimator,iters,tol", [
    ("dlg", "adam", "dirac", 30, 1e-7),
    ("idlg", "adam", "dirac", 30, 1e-7),
    ("wdlg", "adam", "dirac", 30, 1e-7),
    ("wdlg", "adam", "dual", 30, 1e-7),
    ("wdlg", "adam", "sorted", 30, 1e-7),
    ("dlg", "lbfgs", "dirac", 30, 1e-7),
    ("idlg", "lbfgs", "dirac", 30, 1e-7),
    ("wdlg", "lbfgs", "dirac", 30, 1e-7),
    ("dlg", "lbfgs-armijo", "dirac", 30, 1e-7),
    ("wdlg", "lbfgs-armijo", "dirac", 30, 1e-7),
    # the dual critic's linear loss, re-fitted every iteration, amplifies rounding (the two
    # paths' 1e-16 differences reach about 1e-6 after 30 iterations on one of these digits)
    ("wdlg", "lbfgs-armijo", "dual", 30, 1e-5),
    ("wdlg", "lbfgs-armijo", "dirac_whole", 30, 1e-7),
])
def test_batched_equals_one_at_a_time(digits, method, optimizer, estimator, iters, tol):
    images, labels = digits
    optimizer, _, line_search = optimizer.partition("-")
    configs = [AttackConfig(method=method, optimizer=optimizer, lr=0.1, iterations=iters, seed=s,
                            estimator=estimator, snapshots=(0, 3), line_search=line_search or "none")
               for s in range(4)]
    model = build_model("lenet", (1, 28, 28), 10, seed=0).double()
    x, y = _batch(images.double(), labels)
    batched = run_batch(model, x, y, configs)
    for i, cfg in enumerate(configs):
        ref = _reference(images[i:i + 1].double(), labels[i:i + 1], cfg, model=model)
        got = batched[i]
        assert np.allclose(got.reconstruction, ref.reconstruction, atol=tol)
        assert np.allclose(got.losses, ref.losses, rtol=50 * tol, atol=1e-7)
        assert np.allclose(got.mses, ref.mses, rtol=50 * tol, atol=1e-7)
        assert np.array_equal(got.iterations, ref.iterations)
        assert np.array_equal(got.labels, ref.labels)
        assert sorted(got.snapshots) == sorted(ref.snapshots) == [0, 3]
        assert np.allclose(got.snapshots[3], ref.snapshots[3], atol=tol)
        assert got.diverged == ref.diverged
        assert got.function_evals == ref.function_evals


def test_one_evaluation_is_batch_independent(digits):
    """Attack i's loss and dummy gradient inside a batch equal those of attack i alone."""
    from wdlg_core import losses
    from wdlg_core.matching import MatchingObjective

    images, labels = digits
    model = build_model("lenet", (1, 28, 28), 10, seed=0)
    gen = torch.Generator().manual_seed(0)
    true = [torch.randn(4, *p.shape, generator=gen) * 0.01 for p in model.parameters()]
    x = torch.rand(4, 1, 1, 28, 28, generator=gen)
    y = labels[:, None]

    def evaluate(rows):
        obj = MatchingObjective(model, [t[rows] for t in true], losses.batched_euclidean)
        xr = x[rows].clone().requires_grad_()
        v = obj(xr, y[rows])
        return v.detach(), torch.autograd.grad(v.sum(), xr)[0]

    v4, g4 = evaluate(slice(0, 4))
    v1, g1 = evaluate(slice(2, 3))
    assert torch.allclose(v4[2], v1[0], rtol=1e-6)
    assert torch.allclose(g4[2], g1[0], rtol=1e-5, atol=1e-6 * g1.abs().max())


def test_an_attack_does_not_depend_on_its_batch(digits):
    images, labels = digits
    model = build_model("lenet", (1, 28, 28), 10, seed=0).double()
    configs = [AttackConfig(method="wdlg", optimizer="lbfgs", lr=0.1, iterations=50, seed=s) for s in range(4)]
    x, y = _batch(images.double(), labels)
    together = run_batch(model, x, y, configs)
    alone = run_batch(model, x[2:3], y[2:3], configs[2:3])[0]
    assert np.allclose(together[2].reconstruction, alone.reconstruction, atol=1e-8)
    assert np.allclose(together[2].losses, alone.losses, rtol=1e-8)


def test_a_diverging_attack_is_frozen_and_the_others_are_undisturbed(digits):
    images, labels = digits
    # float64: the diverged attack leaves the batch, and a batch of 3 rounds differently from
    # one of 4 (1e-7 in float32, amplified by the attack); in float64 that is 1e-16
    model = build_model("lenet", (1, 28, 28), 10, seed=0).double()
    configs = [AttackConfig(method="idlg", optimizer="lbfgs", lr=0.1, iterations=10, seed=s) for s in range(4)]
    x, y = _batch(images.double(), labels)
    calls = {"n": 0}

    def poison_second(grads):  # the second attack's shared gradient overflowed
        calls["n"] += 1
        return [g * float("inf") for g in grads] if calls["n"] == 2 else grads

    poisoned = run_batch(model, x, y, configs, defense=poison_second)
    clean = run_batch(model, x, y, configs)
    assert poisoned[1].diverged and not poisoned[1].success
    assert np.isfinite(poisoned[1].reconstruction).all()
    for i in (0, 2, 3):
        assert not poisoned[i].diverged
        assert np.allclose(poisoned[i].reconstruction, clean[i].reconstruction, atol=1e-10, rtol=0)
        assert np.allclose(poisoned[i].losses, clean[i].losses, rtol=1e-12)


def test_mid_run_divergence_matches_the_reference():
    """CNN6 has no saturating activation: a huge Adam step overflows the dummy, the next loss is
    not finite, and both paths stop there and report the last dummy whose loss was finite."""
    images, labels = load_images("cifar10", 2)
    model = build_model("cnn6", (3, 32, 32), 10, seed=0)
    configs = [AttackConfig(method="dlg", optimizer="adam", lr=1e30, iterations=10, seed=s) for s in range(2)]
    x, y = _batch(images, labels)
    got = run_batch(model, x, y, configs)
    for i, cfg in enumerate(configs):
        ref = _reference(images[i:i + 1], labels[i:i + 1], cfg, model=model)
        assert got[i].diverged and ref.diverged and not got[i].success
        assert np.array_equal(got[i].iterations, ref.iterations) and 1 < len(got[i].iterations) < 10
        assert not np.isfinite(got[i].losses[-1]) and not np.isfinite(ref.losses[-1])
        assert got[i].function_evals == ref.function_evals
        assert np.isfinite(got[i].reconstruction).all()
        assert np.allclose(got[i].reconstruction, ref.reconstruction, atol=1e-5)


def test_batch_of_four_images_is_a_batch_member():
    images, labels = load_images("cifar10", 8)
    keep = [0, 1, 4, 6, 2, 3, 5, 7]
    x, y = _batch(images[keep].double(), labels[keep], b=4)            # (2, 4, 3, 32, 32)
    model = build_model("lenet", (3, 32, 32), 10, seed=0).double()
    configs = [AttackConfig(method="idlg", optimizer="adam", lr=0.1, iterations=20, seed=s) for s in range(2)]
    res = run_batch(model, x, y, configs)
    ref = _reference(x[0], y[0], configs[0], model=model)
    assert res[0].reconstruction.shape == (4, 3, 32, 32)
    assert np.allclose(res[0].reconstruction, ref.reconstruction, atol=1e-7)
    assert res[0].label_accuracy == ref.label_accuracy == 1.0


def test_chunking_does_not_change_results(digits):
    images, labels = digits
    model = build_model("lenet", (1, 28, 28), 10, seed=0)
    configs = [AttackConfig(method="dlg", optimizer="adam", lr=0.1, iterations=5, seed=s) for s in range(4)]
    x, y = _batch(images, labels)
    seen = []
    chunked = run_attacks(model, x, y, configs, max_chunk=3, on_result=lambda i, r: seen.append(i))
    whole = run_attacks(model, x, y, configs)
    assert seen == [0, 1, 2, 3]
    assert [r.meta["engine"]["chunk"] for r in chunked] == [3] * 4
    for a, b in zip(chunked, whole):
        assert np.allclose(a.reconstruction, b.reconstruction, atol=1e-5)
    assert chunk_size(1000, per_attack=10, budget=35) == 3 and chunk_size(5, 10, 10 ** 9) == 5


def test_configs_must_agree_beyond_the_seed(digits):
    images, labels = digits
    model = build_model("lenet", (1, 28, 28), 10, seed=0)
    x, y = _batch(images[:2], labels[:2])
    with pytest.raises(ValueError, match="except the seed"):
        run_batch(model, x, y, [AttackConfig(method="dlg"), AttackConfig(method="wdlg")])


def test_an_adam_step_beyond_float32_is_a_divergence_not_an_error(digits):
    # lr 4e37 / (1 - beta1) overflows float32: the attack is marked diverged, the batch goes on
    images, labels = digits
    model = build_model("lenet", (1, 28, 28), 10, seed=0)
    x, y = _batch(images[:2], labels[:2])
    huge = run_batch(model, x, y, [AttackConfig(method="dlg", optimizer="adam", lr=4e37, iterations=3, seed=s)
                                   for s in range(2)])
    assert all(r.diverged and not r.success and np.isfinite(r.reconstruction).all() for r in huge)


@pytest.mark.parametrize("lr", [float("inf"), float("nan"), 0.0, -1.0])
def test_a_learning_rate_must_be_finite_and_positive(lr):
    with pytest.raises(ValueError, match="finite number > 0"):
        AttackConfig(method="dlg", lr=lr)
