"""Defences of the shared gradient: each transform does what its docstring says (fixed seeds),
epsilon agrees with opacus, bad parameters raise, the store keys defended cases apart, and the
engine gives a defended attack the same noise alone and in a batch."""
import math

import numpy as np
import pytest
import torch

from wdlg_core.defenses import (DPSGD, Compose, GaussianNoise, LaplaceNoise, Prune, Quantize, defense_from_dict,
                                dp_epsilon, global_norm, make_defense, noise_seed, sequential)
from wdlg_core.experiments import Job, images_fingerprint, run_jobs
from wdlg_core.profiles import get_profile
from wdlg_core.store import Case, ResultStore, record_key


def _grads(seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(s, generator=g) for s in ((12, 3, 5, 5), (12,), (10, 768), (10,))]


def test_gaussian_noise_statistics_and_determinism():
    zeros = [torch.zeros(200_000)]
    out = GaussianNoise(2.0)(zeros, seed=0)[0]
    assert abs(float(out.mean())) < 0.02 and float(out.std()) == pytest.approx(2.0, rel=0.01)
    assert torch.equal(out, GaussianNoise(2.0)(zeros, seed=0)[0])
    assert not torch.equal(out, GaussianNoise(2.0)(zeros, seed=1)[0])
    grads = _grads()
    before = [g.clone() for g in grads]
    defended = GaussianNoise(0.5).bind(7)(grads)
    assert all(torch.equal(a, b) for a, b in zip(grads, before))  # input untouched
    assert [d.shape for d in defended] == [g.shape for g in grads]
    assert torch.equal(GaussianNoise(0.0)(grads)[2], grads[2])


def test_laplace_noise_statistics():
    out = LaplaceNoise(1.5)([torch.zeros(200_000)], seed=3)[0]
    assert abs(float(out.mean())) < 0.02
    assert float(out.std()) == pytest.approx(1.5 * math.sqrt(2), rel=0.02)
    assert float(out.abs().mean()) == pytest.approx(1.5, rel=0.02)  # E|X| = b


def test_dpsgd_clips_to_norm_and_adds_noise_of_std_z_c():
    grads = _grads(scale=3.0)
    norm = float(global_norm(grads))
    assert norm > 10
    clipped = DPSGD(clip=1.0, noise_multiplier=0.0)(grads)
    assert float(global_norm(clipped)) == pytest.approx(1.0, rel=1e-5)
    assert float(torch.cosine_similarity(torch.cat([g.flatten() for g in clipped]),
                                         torch.cat([g.flatten() for g in grads]), dim=0)) == pytest.approx(1.0, abs=1e-6)
    small = [g / norm * 0.5 for g in grads]  # inside the ball: unchanged
    assert all(torch.allclose(a, b) for a, b in zip(DPSGD(1.0, 0.0)(small), small))
    d = DPSGD(clip=2.0, noise_multiplier=1.5)
    noise = torch.cat([(a - b).flatten() for a, b in zip(d(grads, seed=1), d.clipped(grads))])
    assert float(noise.std()) == pytest.approx(3.0, rel=0.05) and abs(float(noise.mean())) < 0.1


def test_prune_zeroes_exactly_the_smallest_fraction():
    grads = _grads()
    for p in (0.0, 0.3, 0.9):
        for g, out in zip(grads, Prune(p)(grads)):
            k = int(math.floor(p * g.numel()))
            assert int((out == 0).sum()) == k
            kept = out != 0
            assert torch.equal(out[kept], g[kept])
            if k and kept.any():
                assert float(g[~kept].abs().max()) <= float(g[kept].abs().min())


def test_quantize_levels_and_error():
    grads = _grads()
    for g, q in zip(grads, Quantize("int8")(grads)):
        scale = float(g.abs().max()) / 127
        assert len(torch.unique(q)) <= 255
        assert float((q - g).abs().max()) <= scale / 2 + 1e-6
    g16 = Quantize("fp16")(grads)
    assert all(torch.equal(a, b.half().float()) for a, b in zip(g16, grads))


def test_compose_and_round_trip_through_dict():
    c = make_defense("compose", steps=[{"name": "prune", "ratio": 0.5}, GaussianNoise(0.1)])
    d = c.to_dict()
    assert d == {"name": "compose", "steps": [{"name": "prune", "ratio": 0.5}, {"name": "gaussian", "sigma": 0.1}]}
    again = defense_from_dict(d)
    grads = _grads()
    assert all(torch.equal(a, b) for a, b in zip(c(grads, seed=2), again(grads, seed=2)))
    assert isinstance(again, Compose)


def test_epsilon_matches_opacus():
    from opacus.accountants import PRVAccountant
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
    from opacus.accountants.rdp import RDPAccountant

    z, q, steps, delta = 1.1, 64 / 4000, 60, 1e-5
    rdp = compute_rdp(q=q, noise_multiplier=z, steps=steps, orders=RDPAccountant.DEFAULT_ALPHAS)
    eps_ref, _ = get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta)
    assert dp_epsilon(z, q, steps, delta) == pytest.approx(float(eps_ref), rel=1e-9)
    assert DPSGD(1.0, z).epsilon(q, steps, delta) == pytest.approx(float(eps_ref), rel=1e-9)
    prv = PRVAccountant()
    for _ in range(steps):
        prv.step(noise_multiplier=z, sample_rate=q)
    assert dp_epsilon(z, q, steps, delta, accountant="prv") == pytest.approx(prv.get_epsilon(delta=delta), rel=1e-3)
    assert dp_epsilon(2 * z, q, steps, delta) < dp_epsilon(z, q, steps, delta)
    assert dp_epsilon(0.0, q, steps, delta) == math.inf


@pytest.mark.parametrize("call, match", [
    (lambda: GaussianNoise(-1), "sigma"),
    (lambda: GaussianNoise(float("nan")), "sigma"),
    (lambda: LaplaceNoise(-0.1), "scale"),
    (lambda: Prune(1.0), r"\[0, 1\)"),
    (lambda: Prune(-0.1), "ratio"),
    (lambda: DPSGD(0.0, 1.0), "clip"),
    (lambda: DPSGD(1.0, -1.0), "noise_multiplier"),
    (lambda: Quantize("int4"), "fp16, int8"),
    (lambda: make_defense("dropout", p=0.1), "valid names: compose, dpsgd, gaussian"),
    (lambda: make_defense("gaussian", std=1.0), r"\['sigma'\]"),
    (lambda: dp_epsilon(1.0, 1.5, 10, 1e-5), "sample_rate"),
    (lambda: dp_epsilon(1.0, 0.1, 10, 1.0), "delta"),
    (lambda: dp_epsilon(1.0, 0.1, 0, 1e-5), "steps"),
    (lambda: dp_epsilon(1.0, 0.1, 10, 1e-5, accountant="gdp"), "rdp, prv"),
    (lambda: Case("mnist", (0,), defense={"name": "gaussian", "sigma": -2}), "sigma"),
    (lambda: sequential([None, None], 3), "2 per-attack"),
])
def test_bad_parameters_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_case_key_unchanged_without_defense_and_distinct_with():
    plain = Case("mnist", (0,), images_sha256="ab")
    assert "defense" not in plain.to_dict()
    old_style = {"dataset": "mnist", "indices": [0], "model": "lenet", "model_seed": 0, "split": "test",
                 "source": "auto", "num_classes": None, "images_sha256": "ab"}
    assert record_key({"a": 1}, plain, "v") == record_key({"a": 1}, old_style, "v")
    noisy = Case("mnist", (0,), images_sha256="ab", defense={"name": "gaussian", "sigma": 10})
    assert noisy == Case("mnist", (0,), images_sha256="ab", defense=GaussianNoise(10.0))  # 10 and 10.0: one key
    assert record_key({"a": 1}, noisy, "v") != record_key({"a": 1}, plain, "v")
    assert Case.from_dict(noisy.to_dict()) == noisy and len({noisy, plain}) == 2
    assert noise_seed(0, noisy.to_dict()) != noise_seed(1, noisy.to_dict())


@pytest.fixture(scope="module")
def mnist():
    from wdlg_core.data import load_images

    return load_images("mnist", 4, split="any")


def _jobs(images, labels, indices, defense, iterations, seed=0, method="wdlg"):
    p = get_profile("quick")
    cfg = p.attack_config(method, iterations=iterations, seed=seed)
    return [Job(cfg, Case("mnist", (i,), model="lenet", split="any", num_classes=10,
                          images_sha256=images_fingerprint(images[i:i + 1]), defense=defense),
                images[i:i + 1], labels[i:i + 1]) for i in indices]


def test_defended_attack_same_alone_and_in_a_batch(mnist, tmp_path):
    images, labels = mnist
    defense = {"name": "gaussian", "sigma": 0.05}
    batch = run_jobs(_jobs(images, labels, [0, 1, 2], defense, 6), ResultStore(tmp_path / "a"), progress=False)
    alone = run_jobs(_jobs(images, labels, [1], defense, 6), ResultStore(tmp_path / "b"), progress=False)
    plain = run_jobs(_jobs(images, labels, [1], None, 6), ResultStore(tmp_path / "c"), progress=False)
    np.testing.assert_allclose(alone[0].losses, batch[1].losses, rtol=1e-5)
    np.testing.assert_allclose(alone[0].reconstruction, batch[1].reconstruction, atol=1e-5)
    assert not np.allclose(plain[0].losses, alone[0].losses, rtol=1e-3)  # the noise changed the attack
    store = ResultStore(tmp_path / "a")
    again = run_jobs(_jobs(images, labels, [0, 1, 2], defense, 6), store, progress=False)
    assert store.loaded == 3 and store.computed == 0 and again[1].mse == batch[1].mse


def test_sigma_10_stops_an_attack_that_succeeds_undefended(mnist, tmp_path):
    images, labels = mnist
    store = ResultStore(tmp_path)
    # iDLG (WDLG's label restoration with the Euclidean loss) recovers this digit in ~110 iterations
    jobs = (_jobs(images, labels, [3], None, 130, method="idlg")
            + _jobs(images, labels, [3], {"name": "gaussian", "sigma": 10}, 130, method="idlg"))
    clean, noisy = run_jobs(jobs, store, progress=False)
    assert clean.success and clean.mse < clean.config.success_mse
    assert not noisy.success and noisy.mse > 10 * clean.config.success_mse
    assert noisy.ssim < 0.5 < clean.ssim
