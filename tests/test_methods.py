"""The method registry (wdlg_core.methods): every method is declared once, and everything that
offers methods (CLI, run_attack, the store, the pages) reads it."""
import json

import numpy as np
import pytest
import torch

from reference_attack import reference_attack
from wdlg_core import METHODS, get_method, run_attack
from wdlg_core.cli import build_parser, main
from wdlg_core.config import AttackConfig
from wdlg_core.data import load_images
from wdlg_core.methods import ITERATIVE, METHOD_NAMES, Method, config_from_dict
from wdlg_core.models import build_model
from wdlg_core.store import Case, ResultStore


@pytest.fixture(scope="module")
def digit():
    return load_images("mnist", 1)


def _attack_choices():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    attack = sub.choices["attack"]
    return next(a for a in attack._actions if a.dest == "method").choices


def test_the_cli_offers_exactly_the_registry():
    assert list(_attack_choices()) == list(METHODS)
    assert set(METHODS) == {"dlg", "idlg", "wdlg", "ig", "sapag", "rgap"}
    assert set(ITERATIVE) == set(METHODS) - {"rgap"} and get_method("rgap").kind == "closed_form"
    assert METHOD_NAMES["wdlg"] == "WDLG" and METHOD_NAMES["rgap"] == "R-GAP"


def test_the_pages_read_the_registry():
    from wdlg_core.experiments.comparison import OPTIMISATION, available_methods
    from wdlg_core.plotting import METHOD_NAMES as plotted

    assert plotted is METHOD_NAMES
    assert set(available_methods()) == {"dlg", "wdlg", "rgap", "rgap_binary", "sapag", "ig"}
    assert all(get_method(m).iterative for m in OPTIMISATION)


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_configures_and_round_trips_through_its_dict(name):
    m = get_method(name)
    config = m.config()
    assert config.method == name and config_from_dict(config.to_dict()) == config
    if m.iterative:
        assert isinstance(config, AttackConfig) and config.matching_loss == m.loss
        assert config.label_mode == m.label and config.optimizer == m.defaults["optimizer"]


def test_unknown_and_malformed_methods_are_clear_errors():
    with pytest.raises(ValueError, match="unknown method 'gan'; valid methods: dlg, idlg, wdlg, ig, sapag, rgap"):
        get_method("gan")
    with pytest.raises(ValueError, match="closed form.*iterative methods: dlg"):
        AttackConfig(method="rgap")
    with pytest.raises(ValueError, match="valid kinds"):
        Method("x", "X", "magic", "joint", loss="euclidean")
    with pytest.raises(ValueError, match="needs a loss"):
        Method("x", "X", "iterative", "joint")
    with pytest.raises(ValueError, match="valid options: .*rank_rtol"):
        get_method("rgap").config(iterations=3)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_through_run_attack_and_the_store(tmp_path, digit, name):
    images, labels = digit
    m = get_method(name)
    kw = dict(iterations=4) if m.iterative else {}
    r = run_attack(images, labels, method=name, **kw)
    assert r.config.method == name and r.reconstruction.shape == tuple(images.shape)
    assert np.isfinite(r.mse) and 0 <= r.mse <= 1
    store = ResultStore(tmp_path, profile="t")
    case = Case(dataset="mnist", indices=(0,), model="lenet")
    store.save(r, case)
    back = store.load(r.config, case)
    assert back.config == r.config and type(back.config) is type(r.config) and back.mse == pytest.approx(r.mse)


# The one attack loop at N = 1 against the independent one-attack loop of the tests (torch.optim
# on one attack), in float64, on a real digit. Each attack must also have moved.
@pytest.mark.parametrize("kw", [
    dict(method="dlg", optimizer="lbfgs", lr=1.0),
    dict(method="wdlg", optimizer="lbfgs", lr=1.0, line_search="armijo"),
    dict(method="wdlg", optimizer="lbfgs", lr=1.0, line_search="armijo", estimator="dual"),
    dict(method="idlg", optimizer="adam", lr=0.1),
    dict(method="ig"),
    dict(method="sapag", optimizer="lbfgs", lr=1.0, line_search="armijo"),
])
def test_one_attack_equals_the_reference_loop(digit, kw):
    images, labels = digit
    model = build_model("lenet", (1, 28, 28), 10, seed=0).double()
    got = run_attack(images.double(), labels, model=model, iterations=25, seed=3, snapshots=(0, 10), **kw)
    ref = reference_attack(images.double(), labels, model=model, iterations=25, seed=3, snapshots=(0, 10), **kw)
    assert got.meta["engine"]["path"] == "autograd"
    assert abs(got.mses[-1] - got.mses[0]) > 1e-3  # it moved
    tol = 1e-5 if kw.get("estimator") == "dual" else 1e-7
    assert np.allclose(got.reconstruction, ref.reconstruction, atol=tol)
    assert np.allclose(got.losses, ref.losses, rtol=1e-6, atol=1e-9)
    assert np.allclose(got.snapshots[10], ref.snapshots[10], atol=tol)
    assert np.array_equal(got.labels, ref.labels) and got.function_evals == ref.function_evals


def test_rgap_through_run_attack_recovers_a_digit_and_takes_a_defense(digit):
    images, labels = digit
    from wdlg_core.defenses import make_defense

    clean = run_attack(images, labels, method="rgap")
    assert clean.success and clean.mse < 1e-6
    noisy = run_attack(images, labels, method="rgap", defense=make_defense("gaussian", sigma=0.1).bind(0))
    assert noisy.mse > 100 * clean.mse  # the noise reaches the solver


@pytest.mark.parametrize("name", list(METHODS))
def test_wdlg_attack_runs_every_method_and_prints_json(tmp_path, capsys, name):
    args = ["attack", "--dataset", "mnist", "--method", name, "--index", "2", "--json",
            "--results-root", str(tmp_path), "--out", str(tmp_path / f"{name}.png"),
            "--defense", "gaussian:sigma=0.0001"]
    if get_method(name).iterative:
        args += ["--iterations", "3"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == name and out["defense"] == {"name": "gaussian", "sigma": 0.0001}
    assert (tmp_path / f"{name}.png").exists()
    record = json.loads(open(out["record"]).read())
    assert record["key"] == out["store_key"] and record["config"]["method"] == name
    assert record["case"]["defense"] == {"name": "gaussian", "sigma": 0.0001}


def test_wdlg_attack_bad_defense_is_one_line(capsys):
    assert main(["attack", "--dataset", "mnist", "--defense", "dpsgd:clip=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "clip" in err[0] and "noise_multiplier" in err[0]
    assert main(["attack", "--dataset", "mnist", "--method", "rgap", "--iterations", "5"]) == 2
    assert "closed form" in capsys.readouterr().err


def test_a_single_attack_takes_any_model_the_reference_takes(digit):
    """A model left in train mode with dropout: the batched paths cannot vmap its random op,
    the single-attack path (shared and dummy gradients alike) runs it as the reference loop does."""
    images, labels = digit
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.Sigmoid(),
                                torch.nn.Dropout(0.1), torch.nn.Linear(32, 10)).train()
    r = run_attack(images, labels, method="idlg", model=model, iterations=3, optimizer="adam", lr=0.1)
    assert r.meta["engine"]["path"] == "autograd" and np.isfinite(r.mse)
    from wdlg_core.engine import run_batch

    config = get_method("idlg").config(iterations=2, optimizer="adam", lr=0.1)
    model.eval()
    (one,) = run_batch(model, images[None], labels[None], [config], path="autograd")
    assert one.meta["engine"]["path"] == "autograd"
