"""Table 5 experiment (ablation DLG -> iDLG -> WDLG): summary statistics on known inputs, the
step-by-step ordering, a tiny real run, and the notebook executed end to end."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from wdlg_core.experiments.ablation import VARIANTS, ordering, run_ablation, summarize_ablation
from wdlg_core.paper import TABLE5
from wdlg_core.store import ResultStore
from notebook_checks import assert_clean_and_parameterized, execute_notebook, glue_keys

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "tab05_ablation.ipynb"


def _table():
    rows = []
    # DLG: nothing succeeds; iDLG: 3 of 4 (at 100, 200, 400); WDLG: 2 of 4 (at 50, 70)
    for v, mses, its in (("dlg", [0.1, 0.2, 0.1, 0.2], [None] * 4),
                         ("idlg", [5e-4, 5e-4, 5e-4, 0.01], [100, 200, 400, None]),
                         ("wdlg", [1e-4, 2e-4, 0.05, 0.05], [50, 70, None, None])):
        for i, (m, it) in enumerate(zip(mses, its)):
            rows.append({"method": v, "index": i, "mse": m, "final_loss": {"dlg": 1.0, "idlg": 0.1, "wdlg": 0.2}[v],
                         "success": m < 1e-3, "iterations_to_success": it})
    t = pd.DataFrame(rows)
    t["iterations_to_success"] = t["iterations_to_success"].astype("Int64")
    return t


def test_summarize_ablation_known_values():
    s = summarize_ablation(_table()).set_index("variant")
    assert list(s.index) == list(VARIANTS)
    assert s.loc["dlg", "successes"] == 0 and s.loc["dlg", "converged"] == 0
    assert math.isnan(s.loc["dlg", "iterations_to_success"])
    assert s.loc["dlg", "success_low"] == 0 and s.loc["dlg", "success_high"] == pytest.approx(0.490, abs=1e-3)
    assert s.loc["idlg", "iterations_to_success"] == 200 and s.loc["idlg", "converged"] == 3
    assert s.loc["idlg", "success_rate"] == 0.75
    assert s.loc["wdlg", "iterations_to_success"] == 60 and s.loc["wdlg", "converged"] == 2
    assert s.loc["idlg", "mse"] == pytest.approx((3 * 5e-4 + 0.01) / 4)
    assert s.loc["idlg", "loss_low"] == s.loc["idlg", "loss_high"] == pytest.approx(0.1)  # all equal
    for v in VARIANTS:
        assert s.loc[v, "paper_mse"] == TABLE5[v]["mse"] and s.loc[v, "paper_success"] == TABLE5[v]["success"]


def test_ordering_directions_ours_and_paper():
    o = ordering(summarize_ablation(_table())).set_index(["step", "column"])
    first, second = list(dict.fromkeys(o.index.get_level_values(0)))
    assert first.startswith("DLG") and second.endswith("(WDLG)")
    assert o.loc[(first, "image MSE"), "ours"] == "improves"
    assert o.loc[(first, "iterations to converge"), "ours"] == "n/a"  # DLG never converged
    assert o.loc[(first, "iterations to converge"), "verdict"] == "no interval"
    assert o.loc[(second, "final loss"), "ours"] == "worsens"
    assert o.loc[(second, "iterations to converge"), "ours"] == "improves"
    assert o.loc[(second, "success rate"), "ours"] == "worsens"
    assert o.loc[(second, "success rate"), "verdict"] == "inconclusive"
    # the paper's own arrows: every step improves except the MSE of the Wasserstein step
    paper = o["paper"]
    assert paper[(second, "image MSE")] == "worsens"
    assert (paper.drop((second, "image MSE")) == "improves").all()


def test_run_ablation_tiny_real_case(tmp_path):
    store = ResultStore(tmp_path, profile="quick")
    run = run_ablation("quick", n_images=2, iterations=3, store=store, progress=False)
    t = run.table
    assert len(t) == 6 and set(t.method) == set(VARIANTS) and store.computed == 6
    assert set(t.loc[t.method != "dlg", "label_accuracy"]) == {1.0}  # restored labels
    s = summarize_ablation(t)
    assert list(s.variant) == list(VARIANTS) and (s.attacks == 2).all()
    assert len(ordering(s)) == 8
    run_ablation("quick", n_images=2, iterations=3, store=store, progress=False)
    assert store.loaded == 6


def test_committed_without_outputs_and_parameters_first():
    assert_clean_and_parameterized(NOTEBOOK, ("profile", "n_images", "iterations", "seed", "device", "data_root",
                                              "results_root"))


@pytest.mark.slow
def test_tab05_notebook_executes(tmp_path, monkeypatch):
    nb = execute_notebook(NOTEBOOK, tmp_path, monkeypatch, profile="quick", n_images=2, iterations=5, device="cpu",
                          results_root=str(tmp_path / "results"))
    summary = json.loads((tmp_path / "results" / "quick" / "tab05_ablation.json").read_text())
    assert summary["profile"]["iterations"] == 5 and len(summary["attacks"]) == 6
    assert summary["overrides"] == {"n_images": 2, "iterations": 5}  # the summary flags this run as non-default
    assert [r["variant"] for r in summary["summary"]] == list(VARIANTS)
    assert len(summary["ordering"]) == 8 and summary["store"]["computed"] == 6
    assert (tmp_path / "results" / "quick" / "tab05_ablation.png").exists()

    used, glued = glue_keys(nb)
    assert used and used <= glued, sorted(used - glued)
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
