"""Sensitivity page: paired comparisons and the conclusion table on known inputs, the success-
threshold sweep, the paper-implied threshold bounds, a tiny real run (with the store shared with
Table 2's attacks), and the notebook executed end to end."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from wdlg_core.experiments import sensitivity as S
from wdlg_core.experiments.success import run_success
from wdlg_core.store import ResultStore
from notebook_checks import assert_clean_and_parameterized, execute_notebook, glue_keys

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "sensitivity.ipynb"


def _table():
    """Two settings, four images. Setting "a": WDLG wins success on images 0 and 1, ties on 2
    (both succeed, WDLG sooner), loses image 3 (DLG succeeds). Setting "b": every attack fails,
    WDLG's MSE equal to DLG's within 0.1 dB on 0-1 and 10x worse on 2-3."""
    rows = []
    a = {  # index: (dlg mse, dlg its, wdlg mse, wdlg its)
        0: (0.1, None, 1e-4, 50), 1: (0.2, None, 5e-4, 80), 2: (5e-4, 200, 5e-4, 100), 3: (8e-4, 90, 0.05, None)}
    b = {0: (0.1, None, 0.1 * 1.01, None), 1: (0.2, None, 0.2, None), 2: (0.01, None, 0.1, None),
         3: (0.01, None, 0.1, None)}
    for setting, spec in (("a", a), ("b", b)):
        for i, (md, itd, mw, itw) in spec.items():
            for method, m, it in (("dlg", md, itd), ("wdlg", mw, itw)):
                rows.append({"setting": setting, "dataset": "mnist" if i < 2 else "cifar10", "index": i,
                             "method": method, "mse": m, "success": m < 1e-3, "diverged": False,
                             "iterations_to_success": it, "reused": False})
    t = pd.DataFrame(rows)
    t["iterations_to_success"] = t["iterations_to_success"].astype("Int64")
    return t


def test_paired_outcomes_known_values():
    p = S.paired_outcomes(_table()).set_index(["setting", "index"])
    assert list(p.loc["a", "success"]) == [1, 1, 0, -1]
    assert list(p.loc["a", "mse"]) == [1, 1, 0, -1]
    assert list(p.loc["a", "iterations"]) == [1, 1, 1, -1]  # failure = never reaches the threshold
    assert list(p.loc["b", "success"]) == [0, 0, 0, 0]
    assert list(p.loc["b", "mse"]) == [0, 0, -1, -1]  # 1% apart is a tie (< 0.5 dB)
    assert list(p.loc["b", "iterations"]) == [0, 0, 0, 0]  # both failing: tie
    # recounted at a looser threshold: setting b's DLG succeeds on images 2 and 3 (0.01 < 0.05)
    q = S.paired_outcomes(_table(), threshold=0.05).set_index(["setting", "index"])
    assert list(q.loc["b", "success"]) == [0, 0, -1, -1]
    assert q["iterations"].isna().all()


def test_conclusions_directions_pvalues_and_robustness():
    settings = [S.Setting("a", "factor A", "setting A"), S.Setting("b", "factor B", "setting B")]
    c = S.conclusions(_table(), settings).set_index(["setting", "conclusion"])
    r = c.loc[("a", "higher success rate")]
    assert (r.wins, r.losses, r.ties, r.direction) == (2, 1, 1, S.HOLDS)
    assert r.p_value == pytest.approx(1.0) and r.verdict_95 == "inconclusive"
    assert r.dlg == 0.5 and r.wdlg == 0.75 and r.label == "setting A"
    assert c.loc[("a", "fewer iterations to success"), "wins"] == 3
    assert c.loc[("a", "fewer iterations to success"), "dlg"] == 145  # median of 200 and 90
    assert c.loc[("b", "higher success rate"), "direction"] == S.TIE
    assert c.loc[("b", "lower final MSE"), "direction"] == S.DOES_NOT_HOLD
    assert math.isnan(c.loc[("b", "fewer iterations to success"), "wdlg"])
    per = S.conclusions(_table(), settings, by_dataset=True)
    assert set(per.dataset) == {"mnist", "cifar10"} and len(per) == 2 * 2 * 3
    rob = S.robustness(c.reset_index())
    assert rob["higher success rate"] == {"settings": 2, "holds": 1, "does_not_hold": 0, "tie": 1,
                                          "significant_holds": 0, "significant_does_not_hold": 0,
                                          "robust": False, "baseline": "not run"}
    assert rob["all_robust"] is False and rob["verdict"] == "inconclusive at this scale"
    eight = pd.DataFrame([{"setting": "s", "conclusion": c, "direction": S.HOLDS, "verdict_95": S.HOLDS}
                          for c in S.CONCLUSIONS])
    assert S.robustness(eight)["verdict"] == S.HOLDS and S.robustness(eight)["all_robust"]
    eight.loc[0, ["direction", "verdict_95"]] = S.DOES_NOT_HOLD
    assert S.robustness(eight)["verdict"] == S.DOES_NOT_HOLD


def test_sign_test_and_direction():
    assert S.sign_test(8, 0) == pytest.approx(2 / 2 ** 8)
    assert S.sign_test(0, 0) == 1.0 and S.sign_test(3, 3) == pytest.approx(1.0)
    assert (S.direction(2, 1), S.direction(1, 2), S.direction(0, 0)) == (S.HOLDS, S.DOES_NOT_HOLD, S.TIE)
    with pytest.raises(ValueError):
        S.sign_test(-1, 2)


def test_threshold_sweep_recounts_final_mse():
    t = _table()
    t.loc[(t.setting == "a") & (t["index"] == 0) & (t.method == "dlg"), "diverged"] = True
    sw = S.threshold_sweep(t, thresholds=[1e-3, 0.15, 1.0])
    a = sw[(sw.setting == "a") & (sw.dataset == "all")].set_index(["method", "threshold"])["success_rate"]
    assert a[("dlg", 1e-3)] == 0.5 and a[("wdlg", 1e-3)] == 0.75
    assert a[("dlg", 1.0)] == 0.75  # the diverged attack never counts
    assert a[("wdlg", 0.15)] == 1.0
    mn = sw[(sw.setting == "a") & (sw.dataset == "mnist") & (sw.method == "wdlg")]
    assert (mn.attacks == 2).all() and mn.psnr_threshold.iloc[0] == pytest.approx(30)
    gap = S.success_gap(sw)
    g = gap[(gap.setting == "a") & (gap.dataset == "all")].set_index("threshold")["gap"]
    assert g[1e-3] == pytest.approx(0.25)
    summ = S.gap_summary(gap, low=1e-3, high=1.0)
    assert summ["a/all"]["thresholds"] == 3 and summ["a/all"]["above"] == pytest.approx(1.0)
    grid = S.threshold_grid(1e-4, 1e-1, per_decade=10)
    assert len(grid) == 31 and grid[0] == pytest.approx(1e-4) and grid[-1] == pytest.approx(1e-1)
    with pytest.raises(ValueError):
        S.threshold_grid(1.0, 1e-3)


def test_implied_thresholds_from_paper_tables():
    b = S.implied_thresholds()
    assert b["mnist"]["wdlg"] == pytest.approx(0.0014 / (1 - 0.86))
    assert b["cifar10"]["dlg"] == pytest.approx(1.3e-2 / (1 - 0.74))
    for v in b.values():
        assert v["bound"] == min(v["dlg"], v["wdlg"]) and v["source"]


def test_get_settings_and_scale():
    names = [s.name for s in S.get_settings(["dual", "adam", "dual"])]
    assert names == ["baseline", "dual", "adam"]
    assert [s.name for s in S.get_settings()] == list(S.SETTINGS)
    with pytest.raises(ValueError, match="valid settings: baseline"):
        S.get_settings(["sgd"])
    from wdlg_core.profiles import get_profile
    assert S.scale(get_profile("quick")) == S.QUICK_SCALE
    paper = get_profile("paper")
    assert S.scale(paper) == {"datasets": S.DATASETS, "n_images": paper.n_images, "iterations": paper.iterations,
                              "settings": None}
    assert S.images_per_dataset({"mnist": 3}, ("mnist", "cifar10")) == {"mnist": 3, "cifar10": 3}
    assert S.images_per_dataset(2, ("svhn",)) == {"svhn": 2}
    with pytest.raises(ValueError):
        S.images_per_dataset({"mnist": 0}, ("mnist",))


def test_run_sensitivity_tiny_real_case_and_store_sharing(tmp_path):
    store = ResultStore(tmp_path, profile="quick")
    # Table 2's attacks of the same images and budget are the sensitivity page's baseline
    run_success("quick", datasets=("mnist",), n_images=1, iterations=3, store=store, progress=False)
    assert store.computed == 2
    run = S.run_sensitivity("quick", settings=["adam", "sorted"], datasets=("mnist", "cifar10"), n_images=1,
                            iterations=3, store=store, progress=False)
    t = run.table
    assert [s.name for s in run.settings] == ["baseline", "adam", "sorted"]
    assert store.loaded == 2 and store.computed == 2 + 2 + 4 + 2  # baseline cifar, adam, sorted (WDLG only)
    assert len(t) == 3 * 2 * 2 and set(t.method) == {"dlg", "wdlg"}
    sorted_dlg = t[(t.setting == "sorted") & (t.method == "dlg")]
    base_dlg = t[(t.setting == "baseline") & (t.method == "dlg")]
    assert sorted_dlg.reused.all() and list(sorted_dlg.key) == list(base_dlg.key)
    assert (t[t.setting == "adam"].function_evals == 4).all()  # 3 steps + the final evaluation
    assert (t.iterations == 3).all() and list(dict.fromkeys(t.dataset)) == ["mnist", "cifar10"]
    c = S.conclusions(t, run.settings)
    assert len(c) == 9 and (c.pairs == 2).all()
    S.run_sensitivity("quick", settings=["adam", "sorted"], datasets=("mnist", "cifar10"), n_images=1,
                      iterations=3, store=store, progress=False)
    assert store.computed == 10 and store.loaded == 2 + 10


def test_paper_profile_runs_every_setting(tmp_path):
    store = ResultStore(tmp_path, profile="paper")
    run = S.run_sensitivity("paper", datasets=("mnist",), n_images=1, iterations=2, device="cpu", store=store,
                            progress=False)
    assert [s.name for s in run.settings] == list(S.SETTINGS) and set(run.table.dataset) == {"mnist"}
    assert store.computed == 2 * 5 + 3  # five settings with both methods, three WDLG-only (estimators)
    assert run.profile.name == "paper" and (run.table.iterations == 2).all()


def test_committed_without_outputs_and_parameters_first():
    assert_clean_and_parameterized(NOTEBOOK, ("profile", "settings", "datasets", "n_images", "iterations", "seed",
                                              "device", "data_root", "results_root"))


@pytest.mark.slow
def test_sensitivity_notebook_executes(tmp_path, monkeypatch):
    # a shipped record of this page (the page shows it; its provenance must not leak into the page's own)
    shipped = tmp_path / "record" / "sensitivity_448"
    shipped.mkdir(parents=True)
    (shipped / "sensitivity.json").write_text(json.dumps({
        "profile": {"iterations": 448}, "provenance": {"git_commit": "recorded", "date": "2026-01-01"},
        "readings": [{"dataset": "mnist", "attacker": "DLG", "successes": 3, "attacks": 4}], "figures": []}))
    monkeypatch.setenv("WDLG_RECORD_ROOT", str(tmp_path / "record"))
    nb = execute_notebook(NOTEBOOK, tmp_path, monkeypatch, profile="quick", n_images=1, iterations=3, device="cpu",
                          settings=["lbfgs_fixed", "sorted"], results_root=str(tmp_path / "results"))
    summary = json.loads((tmp_path / "results" / "quick" / "sensitivity.json").read_text())
    assert summary["provenance"]["git_commit"] != "recorded"
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if "448 updates (record sensitivity_448" in str(o.get("data", {}))]
    assert shown  # the record's sentence was glued
    assert summary["profile"]["iterations"] == 3 and summary["reduced_scale"] is True
    assert [s["name"] for s in summary["settings"]] == ["baseline", "lbfgs_fixed", "sorted"]
    assert len(summary["conclusions"]) == 9 and set(summary["robustness"]) == set(S.CONCLUSIONS) | {"all_robust", "verdict"}
    assert summary["store"]["computed"] == 2 + 2 + 1  # quick: MNIST only; sorted runs WDLG only
    for name in ("sensitivity.png", "sensitivity_settings.png", "sensitivity_threshold.png"):
        assert (tmp_path / "results" / "quick" / name).exists()

    used, glued = glue_keys(nb)
    assert used and used <= glued, sorted(used - glued)
    assert sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs) >= 3


def test_reading_table_puts_dlg_beside_every_reading(tmp_path):
    store = ResultStore(tmp_path, profile="quick")
    run = S.run_sensitivity("quick", settings=["dirac", "dual"], datasets=("mnist",), n_images=2, iterations=3,
                            store=store, progress=False)
    rt = S.reading_table(run.table, run.settings, run.profile.estimator)
    assert list(rt.attacker) == ["DLG", "WDLG (dirac_whole)", "WDLG (dirac)", "WDLG (dual)"]
    assert rt.estimator.isna().iloc[0] and list(rt.estimator[1:]) == ["dirac_whole", "dirac", "dual"]
    assert (rt.attacks == 2).all() and (rt.evals > 0).all()
    t = run.table
    own = t[(t.setting == "dual") & (t.method == "wdlg")]
    assert rt.set_index("attacker").loc["WDLG (dual)", "median_mse"] == pytest.approx(own.mse.median())
    # a dual attack evaluates its start point again after each critic update, then >= 1 trial point
    assert (own.function_evals >= 2 * 3 + 1).all()
    fig = S.reading_figure(run.table, run.settings, run.profile.estimator, run.profile.success_mse)
    assert len(fig.axes) == 2
