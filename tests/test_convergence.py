"""Convergence experiment (paper Figures 5-7): statistics helpers on known inputs, tiny real
attacks through the store, and papermill runs of the three notebooks with tiny parameters."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from wdlg_core.experiments import convergence as cv
from wdlg_core.store import ResultStore
from notebook_checks import assert_clean_and_parameterized, execute_notebook, glue_keys

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = {name: REPO / "notebooks" / f"{name}.ipynb"
             for name in ("fig05_loss_curves", "fig06_mse_curves", "fig07_first_loss")}


def _curves(rows):
    """rows: (method, index, iteration, loss, mse) -> a curves frame of dataset "d"."""
    return pd.DataFrame(rows, columns=["method", "index", "iteration", "loss", "mse"]).assign(dataset="d")


# --- statistics helpers on known inputs ------------------------------------------------------

def test_first_below():
    assert cv.first_below([0, 10, 20, 30], [1.0, 0.5, 0.009, 0.001], 1e-2) == 20
    assert math.isnan(cv.first_below([0, 10], [1.0, 0.01], 1e-2))  # strictly below
    assert cv.first_below([0, 10, 20], [1.0, float("nan"), 0.5], 0.6) == 20  # NaN never counts as below
    assert math.isnan(cv.first_below([], [], 1.0))


def test_normalise_squares_back_dlg_only():
    c = cv.normalise(_curves([("dlg", 0, 0, 400.0, 0.3), ("dlg", 0, 10, 4.0, 0.2),
                              ("wdlg", 0, 0, 20.0, 0.3), ("wdlg", 0, 10, 2.0, 0.2),
                              ("wdlg", 1, 0, 0.0, 0.3), ("wdlg", 1, 10, 0.0, 0.3)]))
    dlg = c[c.method == "dlg"].set_index("iteration")
    wdlg = c[(c.method == "wdlg") & (c["index"] == 0)].set_index("iteration")
    assert dlg.loc[0, "loss_norm"] == 1 and dlg.loc[10, "loss_norm"] == pytest.approx(0.01)
    assert dlg.loc[10, "loss_norm_sqrt"] == pytest.approx(0.1)  # sqrt(4 / 400): a ratio of norms
    assert wdlg.loc[10, "loss_norm"] == pytest.approx(0.1) and wdlg.loc[10, "loss_norm_sqrt"] == pytest.approx(0.1)
    assert c[(c.method == "wdlg") & (c["index"] == 1)]["loss_norm"].isna().all()  # first loss 0: no ratio


def test_value_at_crossings_and_medians():
    c = _curves([("dlg", 0, 0, 1.0, 0.5), ("dlg", 0, 10, 0.005, 0.1), ("dlg", 0, 20, 0.001, 0.01),
                 ("dlg", 1, 0, 1.0, 0.5), ("dlg", 1, 10, 0.5, 0.4), ("dlg", 1, 20, 0.008, 0.3),
                 ("wdlg", 0, 0, 1.0, 0.5), ("wdlg", 0, 10, 0.5, 0.05), ("wdlg", 0, 20, 0.2, 0.02),
                 ("wdlg", 1, 0, 1.0, 0.5), ("wdlg", 1, 10, 0.6, 0.3), ("wdlg", 1, 20, 0.3, 0.2)])
    v = cv.value_at(c, 15, "mse").set_index(["method", "index"])
    assert (v["iteration"] == 10).all() and v.loc[("wdlg", 0), "mse"] == 0.05
    assert cv.median_at(c, 15, "mse") == {"dlg": pytest.approx(0.25), "wdlg": pytest.approx(0.175)}
    cross = cv.crossings(c, "loss", 1e-2).set_index(["method", "index"])["iteration"]
    assert cross[("dlg", 0)] == 10 and cross[("dlg", 1)] == 20 and math.isnan(cross[("wdlg", 0)])
    assert cv.median_crossing(cv.crossings(c, "loss", 1e-2), "dlg") == (15.0, 2, 2)
    med, hit, n = cv.median_crossing(cv.crossings(c, "loss", 1e-2), "wdlg")
    assert math.isnan(med) and (hit, n) == (0, 2)
    assert cv.crossing_text(15.0, 2, 2, 20) == "iteration 15 (2 of 2 images)"
    assert cv.crossing_text(med, hit, n, 20) == "never within 20 iterations (0 of 2 images)"
    # paired: WDLG's MSE is lower on image 0 and 1 at iteration 10, on image 1 only at 20
    assert cv.wins_at(c, 10, "mse") == (2, 2) and cv.wins_at(c, 20, "mse") == (1, 2)
    assert cv.wins_at(c[c.method == "dlg"], 20, "mse") == (0, 0)
    stats = cv.mean_curves(c, columns=("mse",)).set_index(["method", "iteration"])
    assert stats.loc[("dlg", 20), "attacks"] == 2 and stats.loc[("dlg", 20), "mse_mean"] == pytest.approx(0.155)
    assert set(cv.mean_curves(c, max_points=1)["iteration"]) == {0, 20}  # thinned: every 20th and the last


def test_paired_verdict_and_band():
    assert cv.paired_verdict(3, 4) == "supports"
    assert cv.paired_verdict(1, 4) == "does not support"
    assert cv.paired_verdict(2, 4) == "is inconclusive about"
    assert cv.paired_verdict(0, 0) == "cannot test"
    assert cv.band_for(4)[0] == ("pi", 100) and cv.band_for(300)[0] == ("pi", 90)
    assert [cv.default_dummies(n) for n in (1, 4, 6, 20, 300)] == [20, 5, 4, 1, 1]


def test_first_loss_pairs_and_below_twice():
    t = pd.DataFrame([
        {"dataset": "a", "method": "dlg", "index": 0, "dummy_seed": 0, "first_loss": 100.0},
        {"dataset": "a", "method": "wdlg", "index": 0, "dummy_seed": 0, "first_loss": 12.0},
        {"dataset": "a", "method": "dlg", "index": 1, "dummy_seed": 0, "first_loss": 0.04},
        {"dataset": "a", "method": "wdlg", "index": 1, "dummy_seed": 0, "first_loss": 0.2},  # 0.2 >= 2 * 0.04
        {"dataset": "b", "method": "dlg", "index": 0, "dummy_seed": 3, "first_loss": 1.0},
        {"dataset": "b", "method": "wdlg", "index": 0, "dummy_seed": 3, "first_loss": 1.0},
        {"dataset": "b", "method": "dlg", "index": 1, "dummy_seed": 3, "first_loss": 9.0},  # no WDLG: dropped
    ])
    p = cv.first_loss_pairs(t)
    assert len(p) == 3 and list(p["below_twice"]) == [True, False, True]
    row = p[(p.dataset == "a") & (p["index"] == 0)].iloc[0]
    assert row["ratio"] == pytest.approx(0.12) and row["dlg_first_sqrt"] == pytest.approx(10)
    assert row["ratio_sqrt"] == pytest.approx(1.2)
    s = cv.below_twice(p).set_index("dataset")
    assert list(s.index) == ["a", "b", "all"]
    assert s.loc["a", "below_twice"] == 1 and s.loc["a", "fraction"] == 0.5 and s.loc["all", "pairs"] == 3
    assert s.loc["all", "fraction"] == pytest.approx(2 / 3) and s.loc["b", "median_ratio"] == 1.0


# --- tiny real attacks ---------------------------------------------------------------------------

def test_convergence_curves_are_shared_through_the_store(tmp_path):
    store = ResultStore(tmp_path, profile="quick")
    conv = cv.run_convergence("quick", n_images=1, iterations=5, record_every=2, store=store, progress=False)
    assert store.computed == 2 and conv.profile.datasets == ("cifar10",) and conv.source["count"] >= 1
    c = conv.curves
    for m in ("dlg", "wdlg"):
        assert list(c.loc[c.method == m, "iteration"]) == [0, 2, 4, 5]
    first = c[c.iteration == 0].set_index("method")
    assert (first["loss_norm"] == 1).all()
    assert first.loc["dlg", "mse"] == first.loc["wdlg", "mse"]  # both methods start from the same dummy
    assert first.loc["dlg", "loss"] > first.loc["wdlg", "loss"] > 0
    assert conv.table.set_index("method").loc["dlg", "first_loss"] == first.loc["dlg", "loss"]
    # the loss never increases under Armijo, so its normalised value stays <= 1
    assert (c["loss_norm"] <= 1 + 1e-6).all()

    again = ResultStore(tmp_path, profile="quick")  # what Figure 6 does: the same call loads
    conv2 = cv.run_convergence("quick", n_images=1, iterations=5, record_every=2, store=again, progress=False)
    assert (again.computed, again.loaded) == (0, 2)
    pd.testing.assert_frame_equal(conv.curves, conv2.curves)


def test_first_loss_matches_an_independent_computation(tmp_path):
    """The stored first loss is the loss of the initial dummy: recompute it from scratch."""
    from wdlg_core.data import load_images
    from wdlg_core.gradients import parameter_gradient, shared_gradient
    from wdlg_core.labels import restore_labels
    from wdlg_core.models import build_model

    store = ResultStore(tmp_path, profile="quick")
    fl = cv.run_first_loss("quick", datasets=["mnist"], n_images=1, dummies=2, seed=7, store=store, progress=False)
    assert len(fl.table) == 4 and len(fl.pairs) == 2 and list(fl.pairs["dummy_seed"]) == [7, 8]
    assert fl.dummies == {"mnist": 2}

    images, labels = load_images("mnist", 1, split="any")
    model = build_model("lenet", (1, 28, 28), 10, seed=0)
    true = shared_gradient(model, images, labels)
    for seed in (7, 8):
        gen = torch.Generator().manual_seed(seed)
        x, y = torch.randn(1, 1, 28, 28, generator=gen), torch.randn(1, 10, generator=gen)
        dlg = sum(((g - t) ** 2).sum() for g, t in zip(parameter_gradient(model, x, torch.softmax(y, -1)), true))
        wdlg = torch.linalg.vector_norm(torch.cat([(g - t).flatten() for g, t in  # dirac_whole, the default
                                                   zip(parameter_gradient(model, x, restore_labels(model, true, 1)), true)]))
        row = fl.pairs[fl.pairs.dummy_seed == seed].iloc[0]
        assert row["dlg_first"] == pytest.approx(float(dlg), rel=1e-4)
        assert row["wdlg_first"] == pytest.approx(float(wdlg), rel=1e-4)

    # the first point of a longer attack's curve is the same number (same dummy seed)
    conv = cv.run_convergence("quick", dataset="mnist", n_images=1, iterations=2, seed=7, store=store, progress=False)
    for m in ("dlg", "wdlg"):
        assert conv.table.set_index("method").loc[m, "first_loss"] == pytest.approx(
            float(fl.table[(fl.table.method == m) & (fl.table.dummy_seed == 7)]["first_loss"].iloc[0]))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="dummies"):
        cv.run_first_loss("quick", dummies=0, progress=False)
    with pytest.raises(ValueError, match="profile"):
        cv.run_convergence("nope", progress=False)


# --- notebooks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_without_outputs_and_parameters_first(name):
    assert_clean_and_parameterized(NOTEBOOKS[name], ("profile", "device", "data_root", "results_root", "n_images",
                                                     "seed"))


def _execute(name, tmp_path, monkeypatch, params):
    nb = execute_notebook(NOTEBOOKS[name], tmp_path, monkeypatch,
                          **dict(params, results_root=str(tmp_path / "results")))
    used, glued = glue_keys(nb)
    assert used and used <= glued, sorted(used - glued)
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    summary = json.loads((tmp_path / "results" / "quick" / f"{name}.json").read_text())
    assert (tmp_path / "results" / "quick" / f"{name}.png").exists()
    return summary


@pytest.mark.slow
def test_curve_notebooks_execute_and_share_attacks(tmp_path, monkeypatch):
    params = dict(profile="quick", n_images=2, iterations=6, record_every=2, device="cpu")
    s5 = _execute("fig05_loss_curves", tmp_path, monkeypatch, params)
    assert s5["dataset"] == "cifar10" and s5["profile"]["iterations"] == 6 and s5["record_every"] == 2
    assert s5["store"]["computed"] == 4 and len(s5["attacks"]) == 4
    assert s5["claim"]["verdict_norm"] in ("supports", "does not support", "is inconclusive about")
    assert {r["iteration"] for r in s5["curves"]} == {0, 2, 4, 6}

    s6 = _execute("fig06_mse_curves", tmp_path, monkeypatch, params)
    assert s6["store"] == {**s6["store"], "computed": 0, "loaded": 4}  # Figure 6 reads Figure 5's attacks
    assert [a["key"] for a in s6["attacks"]] == [a["key"] for a in s5["attacks"]]
    assert s6["claim"]["wdlg_lower_final"][1] == 2 and s6["success_threshold_mse"] == 1e-3


@pytest.mark.slow
def test_first_loss_notebook_executes(tmp_path, monkeypatch):
    s = _execute("fig07_first_loss", tmp_path, monkeypatch,
                 dict(profile="quick", datasets=["mnist", "svhn"], n_images=1, dummies=2, device="cpu"))
    assert s["dummies"] == {"mnist": 2, "svhn": 2} and len(s["pairs"]) == 4 and len(s["attacks"]) == 8
    rows = {r["dataset"]: r for r in s["below_twice"]}
    assert set(rows) == {"mnist", "svhn", "all"} and rows["all"]["pairs"] == 4
    assert 0 <= rows["all"]["fraction"] <= 1 and s["n_layers"] == 8
