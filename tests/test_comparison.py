"""Table 3 experiment (method comparison): image preparation for CNN6, summary and claims on
known inputs, a tiny real run through the store, and the notebook executed end to end."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from wdlg_core.experiments.comparison import (CASES, METHODS, available_methods, binary_labels, claims,
                                               display_table, display_time_success, prepare_images, run_comparison,
                                               summarize)
from wdlg_core.paper import TABLE3
from wdlg_core.store import ResultStore
from notebook_checks import assert_clean_and_parameterized, execute_notebook, glue_keys

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "tab03_method_comparison.ipynb"


def test_prepare_images_for_cnn6():
    x = torch.rand(2, 1, 28, 28)
    y = prepare_images(x, "cnn6")
    assert y.shape == (2, 3, 32, 32)
    assert torch.equal(y[:, 0, 2:30, 2:30], x[:, 0]) and torch.equal(y[:, 2, 2:30, 2:30], x[:, 0])
    assert y[:, :, :2].abs().sum() == 0 and y[:, :, :, 30:].abs().sum() == 0  # zero padding
    c = torch.rand(1, 3, 32, 32)
    assert torch.equal(prepare_images(c, "cnn6_binary"), c) and torch.equal(prepare_images(x, "lenet"), x)
    with pytest.raises(ValueError, match="valid choices: lenet, cnn6"):
        prepare_images(x, "resnet18")
    with pytest.raises(ValueError, match="3x32x32"):
        prepare_images(torch.rand(1, 1, 20, 20), "cnn6")
    assert binary_labels(torch.tensor([0, 4, 5, 9])).tolist() == [0, 0, 1, 1]


def _table():
    rows = []
    # LeNet + MNIST, three images: WDLG well below DLG, R-GAP below both
    for method, mses in (("dlg", [0.30, 0.31, 0.32]), ("wdlg", [0.01, 0.012, 0.011]), ("rgap", [1e-10, 2e-10, 3e-10])):
        for i, m in enumerate(mses):
            rows.append({"model": "lenet", "dataset": "mnist", "method": method, "index": i, "mse": m,
                         "success": m < 1e-3, "time": {"dlg": 2.0, "wdlg": 3.0, "rgap": 0.5}[method]})
    # CNN6 + CIFAR-10, one image each: no intervals
    for method, m in (("dlg", 0.2), ("wdlg", 0.1)):
        rows.append({"model": "cnn6", "dataset": "cifar10", "method": method, "index": 0, "mse": m,
                     "success": False, "time": 1.0})
    return pd.DataFrame(rows)


def test_summarize_and_claims_known_values():
    s = summarize(_table())
    r = s[(s.method == "wdlg") & (s.model == "lenet")].iloc[0]
    assert r.attacks == 3 and r.mse_mean == pytest.approx(0.011) and r.mse_std == pytest.approx(0.001)
    assert r.mse_low <= r.mse_mean <= r.mse_high and r.time_mean == 3.0
    assert (r.paper_mean, r.paper_std) == TABLE3["wdlg"][("lenet", "mnist")]
    one = s[(s.method == "dlg") & (s.model == "cnn6")].iloc[0]
    assert one.attacks == 1 and math.isnan(one.mse_std) and math.isnan(one.mse_low)
    c = claims(s).set_index(["claim", "case"])
    assert c.loc[("WDLG beats DLG", "LeNet + MNIST"), "verdict"] == "holds"
    assert c.loc[("WDLG beats R-GAP", "LeNet + MNIST"), "verdict"] == "does not hold"
    assert c.loc[("WDLG beats DLG", "CNN6 + CIFAR-10"), "verdict"] == "inconclusive"  # one image: no interval
    assert c.loc[("WDLG beats DLG", "CNN6 + CIFAR-10"), "ours_direction"] == "holds"
    # the paper's own means: R-GAP beats WDLG on LeNet + MNIST
    assert c.loc[("WDLG beats R-GAP", "LeNet + MNIST"), "paper"] == "does not hold"
    shown = display_table(s)
    assert shown.loc["WDLG", "LeNet + MNIST"] == "0.011 ± 0.001" and shown.loc["WDLG", "CNN6 + MNIST"] == "n/a"
    assert display_table(s, paper=True).loc["R-GAP", "LeNet + MNIST"] == "0.0012 ± 0.00054"
    rates = display_time_success(s)
    assert rates.loc["WDLG", ("time per attack (s)", "LeNet + MNIST")] == "3.00"
    assert rates.loc["R-GAP", ("success rate", "LeNet + MNIST")] == "100%"
    # a method not run on a case reads "n/a" as in display_table, never "nan" / "nan%"
    assert rates.loc["R-GAP", ("time per attack (s)", "CNN6 + CIFAR-10")] == "n/a"
    assert rates.loc["R-GAP", ("success rate", "CNN6 + CIFAR-10")] == "n/a"
    assert not rates.apply(lambda col: col.str.contains("nan")).any().any()
    assert list(rates.index) == list(shown.index)


def test_run_comparison_tiny_real_case(tmp_path):
    torch.set_num_threads(1)
    store = ResultStore(tmp_path, profile="quick")
    run = run_comparison("quick", n_images=1, iterations=2, methods=("dlg", "rgap"), store=store, progress=False)
    t = run.table
    assert len(t) == 8 and set(t.method) == {"dlg", "rgap"}
    assert set(zip(t.model, t.dataset)) == set(CASES)
    assert (t[t.method == "rgap"]["mse"] < 1e-6).all()  # R-GAP near-exact on every case
    assert run.originals[("cnn6", "mnist")].shape == (1, 3, 32, 32)
    assert run.iterations == {"lenet": 2, "cnn6": 2} and run.iterations_text == "2"
    computed = store.computed
    again = run_comparison("quick", n_images=1, iterations=2, methods=("dlg", "rgap"), store=store, progress=False)
    assert store.computed == computed and store.loaded == 8
    assert again.table["mse"].tolist() == pytest.approx(t["mse"].tolist())
    with pytest.raises(ValueError, match="valid choices here"):
        run_comparison("quick", methods=("rgap", "magic"), store=store)
    assert set(available_methods()) <= set(METHODS)


def test_committed_without_outputs_and_parameters_first():
    assert_clean_and_parameterized(NOTEBOOK, ("profile", "n_images", "iterations", "methods", "seed", "device",
                                              "data_root", "results_root"))


@pytest.mark.slow
def test_tab03_notebook_executes(tmp_path, monkeypatch):
    nb = execute_notebook(NOTEBOOK, tmp_path, monkeypatch, profile="quick", n_images=1, iterations=2, device="cpu",
                          methods=["dlg", "wdlg", "rgap"], results_root=str(tmp_path / "results"))
    summary = json.loads((tmp_path / "results" / "quick" / "tab03_method_comparison.json").read_text())
    assert summary["scale"] == {"n_images": 1, "iterations": {"lenet": 2, "cnn6": 2}, "methods": ["dlg", "wdlg", "rgap"]}
    assert len(summary["attacks"]) == 12 and set(summary["table3"]) == {"dlg", "wdlg", "rgap"}
    assert summary["table3"]["rgap"]["cnn6/cifar10"]["mse_mean"] < 1e-6
    assert {c["claim"] for c in summary["claims"]} == {"WDLG beats DLG", "WDLG beats R-GAP"}
    assert all(v["summary"]["rank_index"] == 0 for v in summary["rank_analysis"].values())
    assert (tmp_path / "results" / "quick" / "tab03_method_comparison.png").exists()
    html = " ".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code"
                    for o in c.outputs)
    assert ">nan<" not in html and "nan%" not in html  # missing values read "n/a"

    used, glued = glue_keys(nb)
    assert used and used <= glued, sorted(used - glued)
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_missing_numbers_read_n_a_whatever_their_float_type():
    import numpy as np

    from wdlg_core.experiments import MISSING, number_text

    for x in (None, float("nan"), np.float32("nan"), np.float64("nan")):
        assert number_text(x) == MISSING == "n/a"
    assert number_text(np.float32(0.25), ".0%") == "25%" and number_text(3, "d") == "3"
