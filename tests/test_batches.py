"""Table 4 / Figures 8-10 experiment (batch size 1 vs 4): batch picking, statistics, a tiny
real sweep through the store, and the two notebooks executed end to end with tiny parameters."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wdlg_core.experiments.batches import (comparisons, distinct_label_batches, interval_mean, run_batch_sweep,
                                           snapshot_mses, summarize_batches)
from wdlg_core.metrics import mse as image_mse
from wdlg_core.paper import TABLE4
from wdlg_core.store import ResultStore
from notebook_checks import assert_clean_and_parameterized, execute_notebook, glue_keys

REPO = Path(__file__).resolve().parent.parent
#: labels of the first 20 bundled CIFAR-10 test images (foolbox)
CIFAR_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]


def test_distinct_label_batches_greedy_and_prefix_stable():
    batches = distinct_label_batches(CIFAR_LABELS, 2, 4)
    assert batches == [(0, 1, 3, 4), (2, 5, 6, 8)]
    for b in distinct_label_batches(CIFAR_LABELS, 10, 4):
        assert len({CIFAR_LABELS[i] for i in b}) == 4
    # loading more images never changes the first batches
    assert distinct_label_batches(CIFAR_LABELS[:9], 2, 4) == batches
    # every image at most once
    all_idx = [i for b in distinct_label_batches(CIFAR_LABELS, 10, 4) for i in b]
    assert len(all_idx) == len(set(all_idx))


def test_distinct_label_batches_runs_out_and_rejects_bad_sizes():
    assert distinct_label_batches([1, 1, 1, 1, 1], 2, 2) == []
    assert distinct_label_batches([0, 1, 0, 1, 2], 5, 2) == [(0, 1), (2, 3)]
    with pytest.raises(ValueError, match="n_batches"):
        distinct_label_batches([0, 1], 0, 2)


def test_interval_mean():
    mean, lo, hi = interval_mean([1.0, 2.0])
    assert mean == 1.5 and math.isnan(lo) and math.isnan(hi)  # two values: no interval
    assert interval_mean([0.5, 0.5, 0.5, float("nan")]) == (0.5, 0.5, 0.5)
    x = np.linspace(0, 1, 20)
    mean, lo, hi = interval_mean(x)
    # a 95% bootstrap interval of the mean: close to the normal one, 0.5 -+ 1.96 s / sqrt(n) = (0.364, 0.636)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert mean == pytest.approx(0.5) and lo == pytest.approx(0.5 - half, abs=0.015)
    assert hi == pytest.approx(0.5 + half, abs=0.015)
    _, lo50, hi50 = interval_mean(x, confidence=0.5)
    assert lo < lo50 < 0.5 < hi50 < hi  # a lower confidence gives a narrower interval
    assert math.isnan(interval_mean([])[0])


def _table(rows):
    return pd.DataFrame([dict(method=m, batch_size=b, final_loss=l, mse=e, success=e < 1e-3, label_accuracy=1.0,
                              time=1.0) for m, b, l, e in rows])


def test_summarize_and_compare_known_values():
    rows = [("dlg", 1, 1.0, v) for v in (0.10, 0.11, 0.12)] + [("dlg", 4, 2.0, v) for v in (0.20, 0.21, 0.22)] \
        + [("wdlg", 1, 0.5, v) for v in (0.01, 0.011, 0.012)] + [("wdlg", 4, 0.5, v) for v in (0.0005, 0.3)]
    s = summarize_batches(_table(rows))
    assert list(zip(s.method, s.batch_size)) == [("dlg", 1), ("dlg", 4), ("wdlg", 1), ("wdlg", 4)]
    dlg1 = s.iloc[0]
    assert dlg1.attacks == 3 and dlg1.images == 3 and dlg1.mse == pytest.approx(0.11)
    assert dlg1.mse_low >= 0.10 and dlg1.mse_high <= 0.12
    assert s.iloc[1].images == 12 and s.iloc[3].success_rate == 0.5
    assert math.isnan(s.iloc[3].mse_low)  # two attacks: no interval
    assert s.iloc[2].paper_mse == TABLE4["wdlg"][1]["mse"]

    c = comparisons(s).set_index(["statement", "quantity"])
    assert c.loc[("WDLG below DLG at batch 1", "image MSE"), "verdict"] == "holds"
    assert c.loc[("WDLG below DLG at batch 1", "image MSE"), "paper"] == "does not hold"  # 1.39e-2 vs 4.34e-3
    assert c.loc[("WDLG below DLG at batch 4", "final loss"), "paper"] == "does not hold"  # 1.13e-4 vs 1.11e-4
    assert c.loc[("WDLG below DLG at batch 4", "image MSE"), "verdict"] == "inconclusive"  # no interval
    assert c.loc[("DLG: batch 1 below batch 4", "image MSE"), "verdict"] == "holds"
    assert c.loc[("WDLG below DLG at batch 4", "image MSE"), "direction"] == "holds"  # 0.15 vs 0.21
    assert c.loc[("WDLG: batch 1 below batch 4", "image MSE"), "paper"] == "does not hold"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    store = ResultStore(tmp_path_factory.mktemp("res"), profile="quick")
    s = run_batch_sweep("quick", n_single=2, n_batches=1, iterations=3, snapshots=(0, 3), store=store,
                        progress=False)
    return s, store


def test_sweep_tiny_real_case(sweep):
    s, store = sweep
    t = s.table
    assert s.singles == [0, 1] and s.batches == [(0, 1, 3, 4)]
    assert len(t) == 6 and store.computed == 6  # (2 singles + 1 batch) x 2 methods
    assert sorted(t.groupby("batch_size").size().items()) == [(1, 4), (4, 2)]
    b4 = t[t.batch_size == 4]
    assert set(b4.batch) == {"0,1,3,4"} and set(b4.labels) == {"3,8,0,6"}
    assert (b4[b4.method == "wdlg"].label_accuracy == 1.0).all()  # distinct labels: restored exactly
    for r, row in zip(s.results, t.itertuples()):
        idx = tuple(int(i) for i in row.batch.split(","))
        original = s.originals[idx]
        assert r.reconstruction.shape == original.shape
        assert row.mse == pytest.approx(float(image_mse(r.reconstruction, original).mean()))
        order, per_it = snapshot_mses(r, original)
        assert sorted(per_it) == [0, 3] and sorted(order) == list(range(len(idx)))
        # the last snapshot, reordered, is the final reconstruction
        assert np.allclose(r.snapshots[3][order], r.reconstruction, atol=1e-6)
        assert per_it[3].mean() == pytest.approx(row.mse, rel=1e-5)


def test_sweep_reloads_and_shares_single_cases(sweep):
    s, store = sweep
    from wdlg_core.experiments.success import run_success

    again = run_batch_sweep("quick", n_single=2, n_batches=1, iterations=3, snapshots=(0, 3), store=store,
                            progress=False)
    assert store.loaded == 6 and list(again.table.key) == list(s.table.key)
    # without snapshots, the singles are the gallery's / Table 2's cases: one store record each
    fresh = ResultStore(store.root / "other", profile="quick")
    plain = run_batch_sweep("quick", n_single=2, n_batches=0, iterations=3, store=fresh, progress=False)
    before = fresh.computed
    run_success("quick", datasets=["cifar10"], n_images=2, iterations=3, store=fresh, progress=False)
    assert before == 4 and fresh.computed == 4 and len(plain.table) == 4


def test_sweep_rejects_bad_arguments():
    with pytest.raises(ValueError, match="singles"):
        run_batch_sweep("quick", singles="all")
    with pytest.raises(ValueError, match="batch_size"):
        run_batch_sweep("quick", batch_size=1)


# --- notebooks -----------------------------------------------------------------------------

def _glue_keys_ok(nb):
    used, glued = glue_keys(nb)
    assert used and used <= glued, sorted(used - glued)
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("name,knobs", [
    ("tab04_batch_size", ("methods", "n_single", "n_batches", "iterations", "seed")),
    ("fig08_10_recovery", ("n_batches", "iterations", "snapshots", "seed")),
])
def test_committed_without_outputs_and_parameters_first(name, knobs):
    assert_clean_and_parameterized(REPO / "notebooks" / f"{name}.ipynb",
                                   ("profile", "device", "data_root", "results_root") + knobs)


def _execute(name, tmp_path, monkeypatch, **params):
    nb = execute_notebook(REPO / "notebooks" / f"{name}.ipynb", tmp_path, monkeypatch, profile="quick", device="cpu",
                          results_root=str(tmp_path / "results"), **params)
    _glue_keys_ok(nb)
    return json.loads((tmp_path / "results" / "quick" / f"{name}.json").read_text())


@pytest.mark.slow
def test_tab04_notebook_executes(tmp_path, monkeypatch):
    summary = _execute("tab04_batch_size", tmp_path, monkeypatch, n_single=1, n_batches=1, iterations=5)
    assert summary["profile"]["iterations"] == 5 and summary["batches"] == [[0, 1, 3, 4]]
    assert len(summary["attacks"]) == 4  # (1 single + 1 batch) x 2 methods
    assert {(r["method"], r["batch_size"]) for r in summary["summary"]} == {
        ("dlg", 1), ("dlg", 4), ("wdlg", 1), ("wdlg", 4)}
    assert all(0 <= r["mse"] <= 1 for r in summary["attacks"]) and summary["store"]["computed"] == 4
    assert {r["statement"] for r in summary["checks"]} >= {"WDLG below DLG at batch 4", "WDLG: batch 1 below batch 4"}
    assert (tmp_path / "results" / "quick" / "tab04_batch_size.png").exists()


@pytest.mark.slow
def test_fig08_10_notebook_executes(tmp_path, monkeypatch):
    summary = _execute("fig08_10_recovery", tmp_path, monkeypatch, n_batches=1, iterations=5)
    assert summary["profile"]["iterations"] == 5 and summary["snapshots"] == [0, 5]
    assert len(summary["attacks"]) == 10  # (4 singles + 1 batch) x 2 methods
    assert set(summary["final_mse"]) == {"wdlg_1", "wdlg_4", "dlg_4", "dlg_1"}
    assert len(summary["snapshot_mse"]) == 4 * 2 * 4  # 4 settings x 2 snapshots x 4 images
    for path in summary["figures"].values():
        assert Path(path).exists()
