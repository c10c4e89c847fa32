"""SAPAG's distance and Inverting Gradients: losses on known cases, configs, real attacks, engine."""
import math

import numpy as np
import pytest
import torch

from reference_attack import reference_attack
from wdlg_core import run_attack
from wdlg_core import losses
from wdlg_core.config import NEW_FIELDS, AttackConfig
from wdlg_core.methods import ITERATIVE
from wdlg_core.data import load_images
from wdlg_core.engine import run_batch
from wdlg_core.models import build_model


def grads(seed, shapes=((4, 3), (5,))):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


@pytest.fixture(scope="module")
def digit():
    return load_images("mnist", 1)  # the first MNIST test digit (a 7)


# --- SAPAG ---------------------------------------------------------------------------------

def test_sapag_is_zero_at_a_match_and_bounded_by_the_weights():
    a, b = grads(0), grads(1)
    assert float(losses.sapag(a, [t.clone() for t in a])) == 0.0
    d = float(losses.sapag(a, b))
    assert 0 < d < len(a)  # equal weights w_l = 1: bounded by the number of layers
    far = [1e6 * t for t in a]  # the true gradient's spread is tiny next to this difference
    assert float(losses.sapag(far, b)) == pytest.approx(len(a), abs=1e-9)
    w = [2.0, 0.5]
    batched = losses.batched_sapag([t[None] for t in far], [t[None] for t in b], weights=w)
    assert float(batched[0]) == pytest.approx(sum(w), abs=1e-9)
    with pytest.raises(ValueError, match="one weight per layer"):
        losses.batched_sapag([t[None] for t in a], [t[None] for t in b], weights=[1.0])


def test_sapag_sigma_rule_on_a_known_case():
    """sigma_l = n_l * Var(true layer l) (population variance)."""
    true = [torch.tensor([1.0, 3.0], dtype=torch.float64),              # n 2, Var 1: sigma 2
            torch.tensor([[0.0, 0.0], [0.0, 4.0]], dtype=torch.float64)]  # n 4, mean 1, Var 3: sigma 12
    sig = losses.sapag_sigma([t[None] for t in true])
    assert [float(s[0]) for s in sig] == [pytest.approx(2.0), pytest.approx(12.0)]
    dummy = [torch.tensor([2.0, 3.0], dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)]
    expected = (1 - math.exp(-1 / 2)) + (1 - math.exp(-16 / 12))
    assert float(losses.sapag(dummy, true)) == pytest.approx(expected, rel=1e-12)
    # sigma comes from the true gradient only: swapping the arguments changes the value
    assert float(losses.sapag(true, dummy)) != pytest.approx(expected)


def test_sapag_batched_rows_are_independent():
    a, b, c = grads(0), grads(1), grads(2)
    rows = losses.batched_sapag([torch.stack([x, y]) for x, y in zip(a, c)], [torch.stack([x, y]) for x, y in zip(b, b)])
    assert float(rows[0]) == pytest.approx(float(losses.sapag(a, b)), rel=1e-12)
    assert float(rows[1]) == pytest.approx(float(losses.sapag(c, b)), rel=1e-12)


# --- cosine and TV ---------------------------------------------------------------------------

def test_cosine_loss_is_scale_invariant_and_in_0_2():
    a, b = grads(0), grads(1)
    d = float(losses.cosine(a, b))
    assert 0 < d < 2
    assert float(losses.cosine([3.0 * t for t in a], b)) == pytest.approx(d, rel=1e-12)
    assert float(losses.cosine(a, [0.5 * t for t in b])) == pytest.approx(d, rel=1e-12)
    assert float(losses.cosine([2.0 * t for t in a], a)) == pytest.approx(0.0, abs=1e-12)
    assert float(losses.cosine([-t for t in a], a)) == pytest.approx(2.0, abs=1e-12)
    # one cosine over the concatenated layers, not a sum of per-layer cosines
    flat_a, flat_b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    assert d == pytest.approx(1 - float(torch.nn.functional.cosine_similarity(flat_a, flat_b, dim=0)), rel=1e-12)


def test_total_variation_known_cases():
    assert float(losses.total_variation(torch.full((2, 3, 5, 5), 0.3))) == 0.0
    stripes = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).reshape(1, 1, 2, 2)  # |dx| = 1 everywhere, dy = 0
    assert float(losses.total_variation(stripes)) == pytest.approx(1.0)
    assert float(losses.total_variation(stripes.transpose(2, 3))) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="B, C, H, W"):
        losses.total_variation(torch.zeros(3, 4, 4))


def test_make_loss_knows_the_new_losses():
    a, b = grads(0), grads(1)
    assert float(losses.make_loss("sapag")(a, b)) == float(losses.sapag(a, b))
    assert float(losses.make_loss("cosine")(a, b)) == float(losses.cosine(a, b))
    assert losses.make_loss("sapag", batched=True) is losses.batched_sapag
    with pytest.raises(ValueError, match="cosine.*sapag"):
        losses.make_loss("kernel")


# --- configuration ---------------------------------------------------------------------------

OLD_KEYS = {"method", "optimizer", "lr", "line_search", "history_size", "iterations", "seed", "loss", "estimator",
            "critic_steps", "critic_lr", "critic_bound", "success_mse", "snapshots", "record_every"}


def test_ig_defaults_and_stable_store_dicts():
    ig = AttackConfig(method="ig")
    assert (ig.optimizer, ig.lr, ig.tv_weight, ig.signed, ig.boxed, ig.lr_decay) == ("adam", 0.1, 1e-4, True, True, True)
    assert ig.matching_loss == "cosine" and ig.label_mode == "restore"
    assert AttackConfig.from_dict(ig.to_dict()) == ig
    # the methods that existed before keep their dict (and store key) exactly
    for method in ("dlg", "idlg", "wdlg"):
        c = AttackConfig(method=method, seed=3)
        assert set(c.to_dict()) == OLD_KEYS
        assert (c.optimizer, c.lr) == ("lbfgs", 1.0)
        assert AttackConfig.from_dict(c.to_dict()) == c
    sapag = AttackConfig(method="dlg", loss="sapag", optimizer="adam", lr=0.1)
    assert set(sapag.to_dict()) == OLD_KEYS and sapag.matching_loss == "sapag"
    boxed = AttackConfig(method="dlg", optimizer="adam", boxed=True)
    assert set(boxed.to_dict()) == OLD_KEYS | {"boxed"} and AttackConfig.from_dict(boxed.to_dict()) == boxed
    # an ig config lists the new fields even at neutral values: its defaults are not neutral
    plain = AttackConfig(method="ig", signed=False, tv_weight=0.0)
    assert AttackConfig(**plain.to_dict()) == plain == AttackConfig.from_dict(plain.to_dict())
    assert set(NEW_FIELDS) == {"tv_weight", "signed", "boxed", "lr_decay"}
    assert set(ITERATIVE) == {"dlg", "idlg", "wdlg", "ig", "sapag"}


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="need optimizer 'adam'.*pass them as False"):
        AttackConfig(method="ig", optimizer="lbfgs")
    AttackConfig(method="ig", optimizer="lbfgs", signed=False, boxed=False, lr_decay=False)  # allowed
    with pytest.raises(ValueError, match="tv_weight"):
        AttackConfig(method="ig", tv_weight=-1.0)
    with pytest.raises(ValueError, match="valid methods: .*ig"):
        AttackConfig(method="inverting")
    with pytest.raises(ValueError, match="valid choices: .*sapag"):
        AttackConfig(loss="gauss")


@pytest.mark.parametrize("iterations", [3, 20, 300])
def test_lr_schedule_equals_torch_multistep(iterations):
    c = AttackConfig(method="ig", iterations=iterations)
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=c.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(c.lr_milestones()), gamma=0.1)
    for step in range(1, iterations + 1):
        assert c.lr_at(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()
    assert AttackConfig(method="ig", lr_decay=False).lr_at(300) == 0.1


def test_lr_milestones_are_geipings_fractions():
    # floor of 3/8, 5/8, 7/8 of the budget; Geiping et al. write n // 2.667, n // 1.6, n // 1.142,
    # the same fractions rounded (equal at 300 iterations, a few steps apart at other budgets)
    for n in (24, 300, 4800):
        assert AttackConfig(method="ig", iterations=n).lr_milestones() == (3 * n // 8, 5 * n // 8, 7 * n // 8)
    c = AttackConfig(method="ig", iterations=300)
    assert c.lr_milestones() == (300 // 2.667, 300 // 1.6, 300 // 1.142) == (112, 187, 262)
    assert c.lr_at(112) == pytest.approx(0.1) and c.lr_at(113) == pytest.approx(0.01)
    assert c.lr_at(300) == pytest.approx(1e-4)


# --- real attacks ----------------------------------------------------------------------------

def _psnr(mse):
    return 10 * math.log10(1 / mse)


def test_inverting_gradients_improves_a_real_mnist_digit(digit):
    """IG's reference settings, 300 iterations on LeNet: the image gets clearly closer."""
    images, labels = digit
    r = run_attack(images, labels, method="ig", model="lenet", iterations=300, seed=0, record_every=50)
    start = _psnr(r.mses[0])
    print(f"IG on MNIST digit 0 (LeNet, 300 it): PSNR {start:.2f} -> {r.psnr:.2f} dB, loss {r.losses[-1]:.2e}")
    assert not r.diverged and r.label_accuracy == 1.0
    assert r.psnr > start + 4.0
    assert r.losses[-1] < 0.1 * r.losses[0]


def test_sapag_dlg_reconstructs_a_real_mnist_digit(digit):
    """SAPAG's distance inside DLG (joint soft label, L-BFGS lr 1) brings the digit back."""
    images, labels = digit
    r = run_attack(images, labels, method="dlg", loss="sapag", model="lenet", optimizer="lbfgs", lr=1.0,
                   iterations=300, seed=0, record_every=50)
    print(f"SAPAG-DLG on MNIST digit 0 (LeNet, 300 it): PSNR {_psnr(r.mses[0]):.2f} -> {r.psnr:.2f} dB")
    assert not r.diverged and r.label_accuracy == 1.0
    assert r.psnr > 30 and r.success


# --- batched engine == one-attack reference --------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(method="ig"),                                          # cosine + TV, signed Adam, decay, box
    dict(method="ig", tv_weight=0.05, signed=False),            # a TV weight that matters, plain Adam
    dict(method="sapag", optimizer="lbfgs", lr=1.0),  # SAPAG (joint label, as DLG)
    dict(method="dlg", loss="cosine", optimizer="adam", lr=0.1, boxed=True),  # box leaves the labels alone
])
def test_batched_equals_one_at_a_time(kw):
    images, labels = load_images("mnist", 3)
    configs = [AttackConfig(iterations=16, seed=s, snapshots=(0, 5), **kw) for s in range(3)]
    model = build_model("lenet", (1, 28, 28), 10, seed=0).double()
    batched = run_batch(model, images.double()[:, None], labels[:, None], configs)
    for i, cfg in enumerate(configs):
        opts = cfg.to_dict()
        m, s = opts.pop("method"), opts.pop("seed")
        ref = reference_attack(images[i:i + 1].double(), labels[i:i + 1], method=m, seed=s, model=model,
                               num_classes=10, **opts)
        got = batched[i]
        assert np.allclose(got.reconstruction, ref.reconstruction, atol=1e-7)
        assert np.allclose(got.losses, ref.losses, rtol=1e-6, atol=1e-9)
        assert np.allclose(got.mses, ref.mses, rtol=1e-6, atol=1e-9)
        assert np.array_equal(got.labels, ref.labels)
        assert np.allclose(got.snapshots[5], ref.snapshots[5], atol=1e-7)
        assert got.function_evals == ref.function_evals and got.diverged == ref.diverged


def test_cli_runs_ig_with_its_own_optimiser_and_takes_a_loss(tmp_path, capsys):
    from wdlg_core import cli

    assert cli.main(["attack", "--dataset", "mnist", "--method", "ig", "--iterations", "3",
                     "--out", str(tmp_path / "ig.png")]) == 0
    assert "adam lr 0.1 (line search none), loss cosine" in capsys.readouterr().out
    assert cli.main(["attack", "--dataset", "mnist", "--method", "dlg", "--loss", "sapag", "--iterations", "3",
                     "--out", str(tmp_path / "sapag.png")]) == 0
    assert "loss sapag" in capsys.readouterr().out
    assert cli.main(["attack", "--dataset", "mnist", "--method", "ig", "--optimizer", "lbfgs", "--iterations", "1",
                     "--out", str(tmp_path / "x.png")]) == 2
    assert "need optimizer 'adam'" in capsys.readouterr().err
