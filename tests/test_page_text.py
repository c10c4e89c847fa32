"""The page helpers that used to live in notebook cells (wdlg_core.experiments.*): small tables
with known answers."""
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from wdlg_core.experiments import batches, defense_tradeoff, gallery, sensitivity, success, summary
from wdlg_core.experiments.text import interval, num


def test_num_and_interval():
    assert num(0.5, "{:.0%}") == "50%" and num(1234.5) == "1.23e+03"
    assert num(None) == num(float("nan")) == num(math.inf) == "-" and num(np.nan, missing="n/a") == "n/a"
    assert interval(0.19, 0.18, 0.2, "{:.2f}") == "0.19 [0.18, 0.20]"
    assert interval(0.19, float("nan"), 0.2, "{:.2f}") == "0.19" and interval(None, 0, 1) == "-"


def test_gallery_overall_and_mean_psnr():
    t = pd.DataFrame({"method": ["dlg", "dlg", "wdlg"], "success": [True, False, True], "psnr": [30.0, math.inf, 20.0]})
    assert gallery.overall(t, "dlg") == ("50%", "30.0") and gallery.overall(t, "ig") == ("not run", "not run")
    assert gallery.mean_psnr(t, "dlg", "psnr") == "30.0" and gallery.mean_psnr(t, "ig", "psnr") == "not run"


def test_defense_family_text():
    s = pd.DataFrame({"kind": ["dpsgd"], "setting": ["clip 1, z 1"], "success_rate": [0.25], "psnr": [12.0],
                      "accuracy": [0.5], "train_epsilon": [3.0], "release_epsilon": [1.5]})
    assert defense_tradeoff.family_text(s, "dpsgd", "DP-SGD") == (
        "DP-SGD: clip 1, z 1: success 25%, PSNR 12.0 dB, accuracy 50.0%, epsilon 3 for training and 1.5 for one "
        "release.")
    assert defense_tradeoff.family_text(s, "prune", "Pruning") == ""


def test_attacks_per_method():
    docs = {"a": {"rows": [{"attacks": 3}, {"attacks": 7}, {"attacks": None}]}, "b": None}
    assert summary.attacks_per_method(docs, "a", "rows") == 7
    assert summary.attacks_per_method(docs, "b", "rows") is None and summary.attacks_per_method(docs, "a", "x") is None


def test_sensitivity_texts():
    r = SimpleNamespace(verdict_95="holds", conclusion="higher success rate", dlg=0.5, wdlg=0.75, direction="holds",
                        wins=3, losses=1, ties=0, p_value=0.625)
    assert sensitivity.conclusion_cell(r) == "holds* (3:1, ties 0; p=0.62; DLG vs WDLG 50% vs 75%)"
    t = pd.DataFrame({"setting": ["baseline"] * 3 + ["x"], "method": ["dlg"] * 4, "mse": [1e-4, 1e-2, 1e-5, 1.0],
                      "diverged": [False, False, True, False], "worse_than_start": [False, True, False, True]})
    assert sensitivity.worse_than_start_text(t, "baseline") == "1 of 3"
    assert sensitivity.worse_than_start_text(t, "y") == "none (setting not run)"
    assert sensitivity.baseline_success_rate(t, "dlg", 1e-3) == "33%"  # the diverged one fails
    assert sensitivity.baseline_success_rate(t, "wdlg", 1e-3) == "-"


def test_table2_texts():
    assert success.claim_value_text("WDLG higher success than DLG", 0.5, (0.25, 0.75)) == "50% [25%, 75%]"
    assert success.claim_value_text("WDLG faster (time per attack)", 1.234, (1.0, 1.5)) == "1.23 [1, 1.5]"
    assert success.paper_value_text("WDLG higher success than DLG", 0.86) == "86%"
    assert success.paper_value_text("WDLG faster", 120.0) == "120 s" and success.paper_value_text("x", math.nan) == "-"
    t = pd.DataFrame({"method": ["dlg", "dlg", "wdlg"], "success": [True, False, True]})
    assert success.success_text(t, "dlg") == "1 of 2 (50%)" and success.success_text(t, "ig") == "not run"
    assert success.verdict_tally(pd.Series(["holds", "holds", "inconclusive"]), 3) == (
        "holds on 2, does not hold on 0, inconclusive on 1 of 3 datasets")
    s = pd.DataFrame({"dataset": ["a", "a", "b", "b"], "method": ["dlg", "wdlg"] * 2, "time": [2.0, 1.0, 4.0, 1.0]})
    assert success.ratio_range(s, "time") == "0.25 to 0.5"
    assert success.ratio_range(s.iloc[:2], "time") == "0.5"
    assert success.ratio_range(s.assign(time=0.0), "time") == "not comparable"


def test_recovery_grid_orders_rows_by_image():
    from wdlg_core.result import AttackResult

    originals = np.stack([np.full((1, 2, 2), v, dtype=np.float32) for v in (0.0, 1.0)])  # two images, (2, 1, 2, 2)

    def result(snap):
        r = AttackResult.__new__(AttackResult)
        r.snapshots = {0: snap}
        return r

    singles = {("wdlg", 1, (0,)): result(originals[:1]), ("wdlg", 1, (1,)): result(originals[1:])}
    swapped = {("wdlg", 2, (0, 1)): result(originals[::-1].copy())}  # the dummies end in the other order
    table = pd.DataFrame({"batch": ["0,1"], "labels": ["3,5"]})
    orig = {(0, 1): originals}
    snaps, original, captions = batches.recovery_grid(singles, orig, table, "wdlg", 1, (0, 1), [0])
    assert np.array_equal(snaps[0], originals) and captions["it 0"] == ["MSE 0.0e+00"] * 2
    assert captions["ground truth"] == ["index 0, label 3", "index 1, label 5"]
    snaps, _, _ = batches.recovery_grid(swapped, orig, table, "wdlg", 2, (0, 1), [0])
    assert np.array_equal(snaps[0], originals)  # reordered to follow the private images


def test_dataset_null_reads_unrelated_images_of_the_profile():
    from wdlg_core.experiments.noise_defense import dataset_null, leakage_null
    from wdlg_core.data import load_images
    from wdlg_core.profiles import get_profile

    p = get_profile("quick")
    got = dataset_null("mnist", p, n=4)
    images, _ = load_images("mnist", 4, split=p.split, source=p.source)
    assert got == leakage_null(images.numpy())


def test_notebooks_define_no_functions():
    """Notebooks show; the package computes: no code cell of a page defines a function."""
    import re
    from pathlib import Path

    import nbformat

    found = []
    for path in sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code" and re.search(r"^\s*(async\s+)?def |^\s*class ", cell.source, re.M):
                found.append(f"{path.name} cell {i}")
    assert found == []
