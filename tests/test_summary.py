"""Replication summary: rows from small fake results files (present and missing), verdict
mapping, and one papermill execution of the summary notebook on a fake results folder."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from wdlg_core import paper
from wdlg_core.experiments import summary as sm
from notebook_checks import assert_clean_and_parameterized, execute_notebook, glue_keys

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "replication_summary.ipynb"


def _tab02():
    claims = []
    for ds in ("mnist", "svhn"):
        claims.append({"dataset": ds, "claim": "WDLG higher success than DLG", "wdlg": 1.0, "dlg": 0.5,
                       "wdlg_ci": [0.5, 1.0], "dlg_ci": [0.1, 0.9], "verdict": "inconclusive", "note": "",
                       "paper_verdict_n": "inconclusive"})
        claims.append({"dataset": ds, "claim": "WDLG faster (time per attack)", "wdlg": 2.0, "dlg": 3.0,
                       "wdlg_ci": [1.9, 2.1], "dlg_ci": [2.9, 3.1], "verdict": "holds", "note": ""})
    per = [{"dataset": ds, "method": m, "attacks": 4} for ds in ("mnist", "svhn") for m in ("dlg", "wdlg")]
    return {"claims": claims, "per_dataset": per, "provenance": {"git_commit": "abc1234", "date": "2026-01-01"}}


def _fig05():
    return {"claim": {"compare_at": 500, "verdict_literal": "does not support", "wdlg_lower_literal": [1, 4],
                      "median_loss_norm_at": {"dlg": 0.01, "wdlg": 0.07}, "verdict_norm": "supports",
                      "wdlg_lower_norm": [3, 4], "median_loss_norm_sqrt_at": {"dlg": 0.1, "wdlg": 0.07}}}


def _fig07():
    return {"below_twice": [{"dataset": "mnist", "pairs": 5, "below_twice": 4, "fraction": 0.8, "median_ratio": 0.05},
                            {"dataset": "all", "pairs": 5, "below_twice": 4, "fraction": 0.8, "median_ratio": 0.05,
                             "median_ratio_sqrt": 1.2}]}


def _tab04():
    summ = [{"method": m, "batch_size": b, "final_loss": 0.1 * (b + (m == "wdlg")), "loss_low": 0.05 if b == 1 else None,
             "loss_high": 0.2 if b == 1 else None, "mse": 0.01 * b, "mse_low": None, "mse_high": None}
            for m in ("dlg", "wdlg") for b in (1, 4)]
    checks = [{"statement": "WDLG below DLG at batch 1", "quantity": "final loss", "verdict": "does not hold"},
              {"statement": "DLG: batch 1 below batch 4", "quantity": "final loss", "verdict": "does not hold"}]
    return {"summary": summ, "checks": checks}


def _write(folder: Path, docs: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, doc in docs.items():
        (folder / f"{name}.json").write_text(json.dumps(doc))
    return folder


@pytest.mark.parametrize("text, expected", [
    ("holds", sm.HOLDS), ("holds on every pair", sm.HOLDS), ("supports", sm.HOLDS),
    ("holds (1.92e-01 vs 2.33e-01)", sm.HOLDS), ("does not hold", sm.NOT_HOLDS),
    ("does not support", sm.NOT_HOLDS), ("inconclusive (2.3e-01 vs 2.4e-01)", sm.INCONCLUSIVE),
    ("is inconclusive about", sm.INCONCLUSIVE), ("no interval", sm.INCONCLUSIVE)])
def test_normalise_verdict(text, expected):
    assert sm.normalise_verdict(text) == expected


def test_normalise_verdict_rejects_unknown():
    with pytest.raises(ValueError, match="unknown verdict"):
        sm.normalise_verdict("maybe")


def test_format_helpers():
    assert sm.fmt(0.755, "%") == "76%" and sm.fmt(1345, "s") == "1345 s" and sm.fmt(4.48e-5) == "4.48e-05"
    assert sm.fmt(None) == "-" and sm.fmt(math.nan) == "-"
    assert sm.fmt_ci(0.5, 0.1, 0.9, "%") == "50% [10%, 90%]"
    assert sm.fmt_ci(5.0, 5.0, 5.0) == "5" and sm.fmt_ci(2.0, None, 3.0) == "2"


def test_fmt_count_prints_integers_as_integers():
    assert sm.fmt_count(40.0) == "40" and sm.fmt_count(448) == "448" and sm.fmt_count(12000.0) == "12000"
    assert sm.fmt_count(2.5) == "2.5" and sm.fmt_count(None) == "-" and sm.fmt_count(math.nan) == "-"


def test_architecture_rows_from_a_written_results_file_show_no_none_nan_or_float_counts():
    """seed_claims -> JSON as the architectures page writes it (NaN -> null, ints -> floats in a
    column with missing values) -> the summary's rows."""
    import numpy as np
    from wdlg_core.experiments.architectures import seed_claims

    rows, curves = [], []
    for a, final, to90 in (("lenet", 1e-3, 3.0), ("resnet18", 0.2, math.nan), ("densenet121", 3e-2, 2.0)):
        its = np.arange(0, 41, 10)
        mse = np.linspace(0.2, final, len(its))
        curves.append(pd.DataFrame({"arch": a, "method": "dlg", "index": 0, "iteration": its, "mse": mse}))
        rows.append({"arch": a, "method": "dlg", "index": 0, "iterations": 40 if a != "densenet121" else 30,
                     "mse": final, "first_mse": 0.2, "flat_mse": 0.03, "iterations_to_90": to90})
    claims = seed_claims(pd.DataFrame(rows), pd.concat(curves, ignore_index=True))
    doc = json.loads(json.dumps({"claims": claims.astype(object).where(claims.notna(), None).to_dict("records")}))
    assert {c["at_iteration"] for c in doc["claims"]} >= {40.0, None}  # what the page writes
    table = pd.DataFrame(sm.architecture_rows(doc))
    text = " ".join(table["ours"]) + " " + " ".join(table["note"])
    assert "compared at update 40;" in text and "not compared at one update" in text
    for bad in ("None", "nan", "40.0"):
        assert bad not in text, bad


def test_noise_rows_label_the_cifar100_figures():
    settings = list(pd.DataFrame(sm.noise_rows(None))["setting"])
    assert settings == ["CIFAR-100, sigma = 2 (Figure 12)", "CIFAR-100, sigma = 4 (Figure 13)",
                        "CIFAR-100, sigma = 10 (Figure 14)"]  # Figure 11: Fashion-MNIST and SVHN


def test_ablation_loss_step_to_wdlg_is_not_comparable():
    lab = paper.TABLE5_LABELS
    summ = [{"variant": v, "final_loss": loss, "loss_low": loss / 2, "loss_high": loss * 2, "mse": 0.01}
            for v, loss in (("dlg", 1e-3), ("idlg", 5e-4), ("wdlg", 0.05))]
    order = [{"step": f"{lab[a]} -> {lab[b]}", "column": col, "verdict": "does not hold", "paper": "holds", "ours": "x"}
             for a, b in (("dlg", "idlg"), ("idlg", "wdlg")) for col in ("final loss", "image MSE")]
    rows = pd.DataFrame(sm.ablation_rows({"summary": summ, "ordering": order})).set_index("claim")
    to_wdlg = rows.loc[f"{lab['wdlg']} improves final loss over {lab['idlg']}"]
    assert to_wdlg.verdict == sm.NOT_COMPARABLE and "different units" in to_wdlg.note
    # same units (both squared norms), and image MSE in any step: the page's verdict stands
    assert rows.loc[f"{lab['idlg']} improves final loss over {lab['dlg']}"].verdict == sm.NOT_HOLDS
    assert rows.loc[f"{lab['wdlg']} improves image MSE over {lab['idlg']}"].verdict == sm.NOT_HOLDS
    counts = sm.verdict_counts(rows)
    assert counts[sm.NOT_COMPARABLE] == 1 and counts[sm.NOT_HOLDS] == 3


def test_loss_units_note_follows_the_methods_losses():
    assert sm.loss_units_note("dlg", "idlg") == ""
    assert sm.loss_units_note("wdlg", "wdlg") == ""
    assert "squared norms" in sm.loss_units_note("dlg", "wdlg") and "a norm (not squared)" in sm.loss_units_note("dlg", "wdlg")


def test_noise_claims_follow_the_papers_level_per_sigma():
    rows = pd.DataFrame(sm.noise_rows(None))
    assert list(rows["claim"].str.split(": ").str[-1]) == ["some leakage", "almost none", "none"]


def test_table3_rgap_rows_say_the_paper_claims_parity():
    rows = pd.DataFrame(sm.method_comparison_rows(None))
    rgap = rows[rows.claim.str.contains("R-GAP")]
    assert len(rgap) == len(sm.TABLE3_CASES) and rgap.note.str.contains("almost consistent").all()
    assert not rows[~rows.claim.str.contains("R-GAP")].note.str.contains("almost consistent").any()


def test_missing_folder_gives_not_run_rows_for_every_claim(tmp_path, monkeypatch):
    monkeypatch.setenv("WDLG_RECORD_ROOT", str(tmp_path / "no-record"))  # no shipped record either
    table = sm.collect_claims(tmp_path / "nowhere")
    assert list(table.columns) == sm.COLUMNS
    assert set(table["verdict"]) == {sm.NOT_RUN}
    assert set(table["page"]) == set(sm.PAGES)
    # the paper's side is filled in even when nothing ran, from wdlg_core.paper
    t2 = table[(table.page == "tab02_success_time") & (table.setting == "MNIST") & (table.group == "success rate")]
    assert t2["paper_a"].item() == paper.TABLE2["mnist"]["wdlg"]["success"]
    noise = table[table.page == "fig11_14_noise_defense"]
    assert list(noise["paper"]) == list(paper.NOISE_DEFENSE.values())
    t3 = table[table.page == "tab03_method_comparison"]
    assert len(t3) == len(sm.TABLE3_CLAIMS) * len(sm.TABLE3_CASES)
    assert t3["paper_a"].iloc[0] == paper.TABLE3["wdlg"][("lenet", "mnist")][0]


def test_noise_table3_and_architecture_rows_read_their_pages():
    noise = {"null": {"threshold": 0.18}, "statements": [
        {"sigma": 0.0, "ssim": 0.9, "psnr": 40.0, "success_rate": 1.0, "attacks": 2, "level": "full", "verdict": "reference"},
        {"sigma": 2.0, "ssim": 0.3, "psnr": 15.0, "success_rate": 0.0, "attacks": 2, "level": "partial", "verdict": "holds"},
        {"sigma": 4.0, "ssim": 0.25, "psnr": 12.0, "success_rate": 0.0, "attacks": 2, "level": "partial",
         "verdict": "does not hold"}]}
    rows = pd.DataFrame(sm.noise_rows(noise)).set_index("setting")
    assert list(rows["verdict"]) == [sm.HOLDS, sm.NOT_HOLDS, sm.NOT_RUN]  # sigma 10 missing
    assert rows["b"].iloc[0] == 0.9 and "SSIM 0.3" in rows["ours"].iloc[0]

    entry = {"mse_mean": 1e-3, "mse_low": 5e-4, "mse_high": 2e-3, "attacks": 4}
    t3 = {"table3": {"wdlg": {"lenet/mnist": entry}, "dlg": {"lenet/mnist": {**entry, "mse_mean": 0.1}}},
          "claims": [{"claim": "WDLG beats DLG", "model": "lenet", "dataset": "mnist", "verdict": "holds"}]}
    rows = pd.DataFrame(sm.method_comparison_rows(t3))
    done = rows[rows.verdict != sm.NOT_RUN]
    assert len(done) == 1 and done["verdict"].item() == sm.HOLDS
    assert done["a"].item() == 1e-3 and done["b"].item() == 0.1 and "4 images" in done["note"].item()

    from wdlg_core.experiments.architectures import SEED002_CLAIMS
    key = next(iter(SEED002_CLAIMS))
    arch = {"claims": [{"claim": key, "verdict": "partly", "ours": "x", "value": 3.0, "at_iteration": 40}]}
    rows = pd.DataFrame(sm.architecture_rows(arch))
    assert list(rows["verdict"]) == [sm.INCONCLUSIVE] + [sm.NOT_RUN] * (len(SEED002_CLAIMS) - 1)
    assert "partly" in rows["note"].iloc[0]


def test_present_and_missing_files(tmp_path):
    folder = _write(tmp_path / "quick", {"tab02_success_time": _tab02(), "fig05_loss_curves": _fig05(),
                                         "fig07_first_loss": _fig07(), "tab04_batch_size": _tab04()})
    (folder / "tab05_ablation.json").write_text("{not json")  # unreadable = not run
    table = sm.collect_claims(folder)

    t2 = table[table.page == "tab02_success_time"]
    ran = t2[t2.setting.isin(["MNIST", "SVHN"])]
    assert len(ran) == 4 and sm.NOT_RUN not in set(ran.verdict)
    # datasets of the paper that the run did not attack are "not run", not dropped
    assert set(t2[~t2.setting.isin(["MNIST", "SVHN"])].verdict) == {sm.NOT_RUN}
    speed = ran[(ran.group == "running time") & (ran.setting == "MNIST")].iloc[0]
    assert speed.verdict == sm.HOLDS and (speed.a, speed.a_low, speed.a_high, speed.b) == (2.0, 1.9, 2.1, 3.0)
    assert speed.paper_a == paper.TABLE2["mnist"]["wdlg"]["time_s"]
    assert "[1.9 s, 2.1 s]" in speed.ours
    rate = ran[(ran.group == "success rate") & (ran.setting == "SVHN")].iloc[0]
    assert rate.verdict == sm.INCONCLUSIVE and rate.ours == "WDLG 100% [50%, 100%] vs DLG 50% [10%, 90%]"

    f5 = table[table.page == "fig05_loss_curves"].set_index("setting")["verdict"]
    assert sorted(f5) == sorted([sm.NOT_HOLDS, sm.HOLDS])

    f7 = table[table.page == "fig07_first_loss"].iloc[0]
    assert f7.verdict == sm.NOT_HOLDS and f7.a == pytest.approx(0.8)  # "always" broken by one pair

    t4 = table[table.page == "tab04_batch_size"]
    assert len(t4) == 8
    checked = t4[t4.verdict != sm.NOT_RUN].set_index("claim")
    assert len(checked) == 2
    # DLG's squared loss against WDLG's norm: the page's "does not hold" is overridden
    across = checked.loc["WDLG lower final loss than DLG at batch 1"]
    assert across.verdict == sm.NOT_COMPARABLE and "different units" in across.note
    assert across.a == pytest.approx(0.2) and across.b == pytest.approx(0.1)
    same = checked.loc["DLG: batch 1 lower final loss than batch 4"]  # one method, one unit: the page's verdict
    assert same.verdict == sm.NOT_HOLDS and "units" not in same.note
    assert same.a == pytest.approx(0.1) and same.b == pytest.approx(0.4)
    # the paper's Table 4 MSE column contradicts its text at batch 1: flagged
    mse_b1 = t4[t4.claim == "WDLG lower image MSE than DLG at batch 1"].iloc[0]
    assert "contradict" in mse_b1.note and mse_b1.paper_a == paper.TABLE4["wdlg"][1]["mse"]

    for page in ("fig03_inversion_gallery", "fig06_mse_curves", "fig08_10_recovery", "tab05_ablation"):
        assert set(table[table.page == page].verdict) == {sm.NOT_RUN}, page
    status = sm.page_status(folder).set_index("page")
    assert status.loc["tab02_success_time", "results file"] == "found"
    assert status.loc["tab02_success_time", "git commit"] == "abc1234"
    assert status.loc["tab05_ablation", "results file"] == "not run"


@pytest.mark.slow
def test_summary_notebook_executes(tmp_path, monkeypatch):
    root = tmp_path / "results"
    _write(root / "quick", {"tab02_success_time": _tab02(), "fig05_loss_curves": _fig05(),
                            "fig07_first_loss": _fig07()})
    nb = execute_notebook(NOTEBOOK, tmp_path, monkeypatch, profile="quick", results_root=str(root))

    written = json.loads((root / "quick" / "replication_summary.json").read_text())
    expected = sm.collect_claims(root / "quick")
    assert len(written["claims"]) == len(expected)
    assert written["counts"] == sm.verdict_counts(expected)
    assert written["counts"][sm.NOT_RUN] > 0 and written["counts"][sm.HOLDS] > 0
    written_pages = {"tab02_success_time", "fig05_loss_curves", "fig07_first_loss"}
    assert {p["page"] for p in written["pages"] if p["results file"] == "not run"} == set(sm.PAGES) - written_pages

    used, glued = glue_keys(nb)
    assert used and used <= glued
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert sm.NOT_RUN in html


def test_notebook_committed_without_outputs_and_parameters_first():
    assert_clean_and_parameterized(NOTEBOOK, ("profile", "device", "results_root"))


def test_sensitivity_rows_follow_the_significant_counts():
    rob = {"higher success rate": {"settings": 6, "holds": 6, "does_not_hold": 0, "tie": 0, "significant_holds": 6,
                                   "significant_does_not_hold": 0},
           "lower final MSE": {"settings": 6, "holds": 3, "does_not_hold": 2, "tie": 1, "significant_holds": 1,
                               "significant_does_not_hold": 1},
           "fewer iterations to success": {"settings": 6, "holds": 4, "does_not_hold": 1, "tie": 1,
                                           "significant_holds": 2, "significant_does_not_hold": 0}}
    rows = pd.DataFrame(sm.sensitivity_rows({"robustness": rob}))
    assert list(rows["verdict"]) == [sm.HOLDS, sm.NOT_HOLDS, sm.INCONCLUSIVE]
    assert "3 of 6 settings" in rows["ours"].iloc[1]
    assert set(pd.DataFrame(sm.sensitivity_rows(None))["verdict"]) == {sm.NOT_RUN}


def test_gallery_failure_within_a_smaller_budget_is_inconclusive():
    def doc(iterations):
        return {"profile": {"iterations": iterations}, "success_threshold_mse": 1e-3, "per_dataset": [
            {"dataset": "mnist", "method": "wdlg", "success_rate": 0.0, "images": 1, "psnr": 10.0}]}
    short = pd.DataFrame(sm.gallery_rows(doc(200), "fig04_inversion_gallery_cnn6", "CNN6"))
    long = pd.DataFrame(sm.gallery_rows(doc(1500)))
    assert short.loc[short.setting == "MNIST", "verdict"].item() == sm.INCONCLUSIVE
    assert "below the paper's 448" in short.loc[short.setting == "MNIST", "note"].item()
    assert long.loc[long.setting == "MNIST", "verdict"].item() == sm.NOT_HOLDS
    assert "(CNN6)" in short["claim"].iloc[0] and short["paper_ref"].iloc[0] == "Figure 4"


def test_a_page_run_with_other_parameters_is_flagged(tmp_path):
    from wdlg_core.runner import page_overrides

    # the notebook's own defaults give {}; a changed (or papermill-listed) value is an override
    assert page_overrides("tab02_success_time", {"confidence": 0.95, "n_images": None, "profile": "paper"}) == {}
    assert page_overrides("tab02_success_time", {"confidence": 0.5, "datasets": ["mnist"]}) == {
        "confidence": 0.5, "datasets": ["mnist"]}
    assert page_overrides("no_such_page", {}) is None

    folder = _write(tmp_path / "quick", {"tab02_success_time": {**_tab02(), "overrides": {"confidence": 0.5}},
                                         "fig07_first_loss": {**_fig07(), "overrides": {}}})
    table = sm.collect_claims(folder)
    ran = table[(table.page == "tab02_success_time") & (table.verdict != sm.NOT_RUN)]
    assert len(ran) == 4 and ran.note.str.startswith("page run with non-default parameters confidence=0.5").all()
    assert not table[table.page == "fig07_first_loss"].note.str.contains("non-default").any()
    status = sm.page_status(folder).set_index("page")["results file"]
    assert status["tab02_success_time"] == "found (non-default parameters confidence=0.5)"
    assert status["fig07_first_loss"] == "found"


def _readings_doc(directions):
    """A sensitivity results file with the baseline and three estimator settings; ``directions``
    maps setting -> (direction, significant) for the success-rate conclusion."""
    settings = [{"name": "baseline", "factor": "baseline", "overrides": {}}] + [
        {"name": n, "factor": "estimator", "overrides": {"estimator": n}} for n in ("dirac", "sorted", "dual")]
    conclusions = [{"setting": name, "conclusion": "higher success rate", "direction": d, "wins": 5, "losses": 1,
                    "p_value": 0.001 if sig else 0.03, "verdict_95": d}  # 0.03: significant alone, not of 4
                   for name, (d, sig) in directions.items()]
    return {"settings": settings, "conclusions": conclusions, "profile": {"estimator": "dirac_whole"}}


def test_reading_rows_say_which_reading_makes_a_claim_hold():
    doc = _readings_doc({"baseline": ("does not hold", True), "dirac": ("holds", True),
                         "sorted": ("does not hold", False), "dual": ("tie", False)})
    row = pd.DataFrame(sm.reading_rows(doc)).set_index("claim").loc[
        "WDLG: higher success rate than DLG, under some reading of W1"]
    assert row.verdict == sm.HOLDS and "holds under dirac only" in row.note and "p < 0.0125" in row.note
    assert "dirac_whole: does not hold*" in row.ours and "dirac: holds*" in row.ours and "sorted: does not hold (" in row.ours
    doc = _readings_doc({n: ("does not hold", True) for n in ("baseline", "dirac", "sorted", "dual")})
    assert pd.DataFrame(sm.reading_rows(doc)).verdict.iloc[0] == sm.NOT_HOLDS
    doc = _readings_doc({"baseline": ("does not hold", True), "dirac": ("holds", False),
                         "sorted": ("does not hold", True), "dual": ("does not hold", True)})
    assert pd.DataFrame(sm.reading_rows(doc)).verdict.iloc[0] == sm.INCONCLUSIVE
    # conclusions not in the file, or no file: not run
    assert set(pd.DataFrame(sm.reading_rows(doc)).verdict.iloc[1:]) == {sm.NOT_RUN}
    assert set(pd.DataFrame(sm.reading_rows(None)).verdict) == {sm.NOT_RUN}


def test_wdlg_rows_name_the_reading_they_use(tmp_path):
    folder = _write(tmp_path / "quick", {"tab02_success_time": {**_tab02(), "profile": {"estimator": "dirac_whole"}}})
    table = sm.collect_claims(folder)
    ran = table[(table.page == "tab02_success_time") & (table.verdict != sm.NOT_RUN)]
    assert len(ran) and ran.setting.str.endswith("W1 reading: dirac_whole").all()
    assert not table[table.verdict == sm.NOT_RUN].setting.str.contains("W1 reading:").any()


def test_reading_rows_are_not_counted_as_claims(tmp_path, monkeypatch):
    monkeypatch.setenv("WDLG_RECORD_ROOT", str(tmp_path / "no-record"))
    doc = _readings_doc({"baseline": ("holds", True), "dirac": ("holds", True), "sorted": ("holds", True),
                         "dual": ("holds", True)})
    table = sm.collect_claims(_write(tmp_path / "quick", {"sensitivity": doc}))
    readings = table[table.group == sm.READINGS_GROUP]
    assert len(readings) == 3 and (readings.verdict == sm.HOLDS).sum() == 1
    assert sum(sm.verdict_counts(table).values()) == len(table) - 3


def test_the_book_of_records_reading_rows_say_their_scale(tmp_path, monkeypatch):
    doc = _readings_doc({"baseline": ("holds", True), "dirac": ("holds", True), "sorted": ("holds", True),
                         "dual": ("holds", True)})
    doc["profile"]["iterations"] = 448
    doc["readings"] = [{"dataset": "mnist", "attacker": "DLG", "attacks": 32}]
    _write(tmp_path / "record" / "sensitivity_448", {"sensitivity": doc})
    monkeypatch.setenv("WDLG_RECORD_ROOT", str(tmp_path / "record"))
    table = sm.collect_claims(tmp_path / "nowhere")
    rec = table[table.setting.str.contains("book of record sensitivity_448: 448 updates; 32 MNIST images")]
    assert len(rec) == 1 and rec.verdict.item() == sm.HOLDS and rec.group.item() == sm.READINGS_GROUP
    assert set(table[table.group != sm.READINGS_GROUP].verdict) == {sm.NOT_RUN}


def _claims_table():
    from wdlg_core.experiments.summary import COLUMNS

    rows = [("Table 2", "WDLG runs faster than DLG", "MNIST; W1 reading: dirac_whole", sm.HOLDS),
            ("Table 2", "WDLG runs faster than DLG", "SVHN; W1 reading: dirac_whole", sm.NOT_HOLDS),
            ("Table 2", "WDLG runs faster than DLG", "CIFAR-100; W1 reading: dirac_whole", sm.INCONCLUSIVE),
            ("Figure 7", "WDLG's first loss is small", "all datasets", sm.HOLDS),
            ("Table 5", "a diagnostic", "x", sm.HOLDS)]
    table = pd.DataFrame([{c: None for c in COLUMNS} | {"paper_ref": r, "claim": c, "setting": s, "verdict": v,
                                                         "group": "g", "page": "p"} for r, c, s, v in rows])
    table.loc[4, "group"] = sm.READINGS_GROUP  # not a claim: neither counted nor drawn
    return table


def test_the_conclusion_is_generated_from_the_verdicts():
    text = sm.conclusion(_claims_table(), "quick")
    assert text.startswith("At the quick scale we checked 4 claim settings of the paper: 2 hold, 1 do not, and 1 stay")
    assert '"WDLG runs faster than DLG" (Table 2) holds for MNIST, does not hold for SVHN, 1 setting undecided.' in text
    assert '"WDLG\'s first loss is small" (Figure 7) holds.' in text and "W1 reading" not in text
    assert sm.conclusion(_claims_table().iloc[:0], "quick").startswith("No page has been run")


def test_the_verdict_grid_draws_one_row_per_claim_and_one_box_per_setting():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import to_hex
    from matplotlib.patches import Rectangle

    fig = sm.verdict_grid(_claims_table(), title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Table 2: WDLG runs faster than DLG",
                                                            "Figure 7: WDLG's first loss is small"]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    colours = [to_hex(p.get_facecolor()) for p in boxes]
    assert colours == [sm.VERDICT_COLOURS[v] for v in (sm.HOLDS, sm.NOT_HOLDS, sm.INCONCLUSIVE, sm.HOLDS)]
    assert [t.get_text() for t in ax.texts] == ["MNIST", "SVHN", "CIFAR-100", "all datasets"]


def test_the_claims_table_folds_per_figure_and_escapes():
    table = _claims_table()
    table.loc[0, "note"] = "a <note> & more"
    html = sm.claims_html(table)
    assert html.count("<details>") == 3  # Table 2, Figure 7, and the diagnostic rows of Table 5
    assert "readings of the Wasserstein distance (diagnostic, not counted)" in html
    assert "note: a &lt;note&gt; &amp; more" in html and "<note>" not in html
    assert f"{sm.HOLDS}: 1, {sm.NOT_HOLDS}: 1, {sm.INCONCLUSIVE}: 1" in html
    assert html.count("table-layout:fixed;width:100%") == 3


def test_page_verdicts_list_each_claim_with_its_coloured_verdict():
    from wdlg_core import verdicts

    html = sm.page_verdicts_html("tab02_success_time", _tab02())
    assert "2 holds, 2 inconclusive at this scale, 4 not run" in html  # the datasets the fake page lacks
    assert html.count("<li>") == 8 and html.count(verdicts.COLOURS[verdicts.HOLDS]) == 2
    short = sm.page_verdicts_html("tab02_success_time", _tab02(), limit=1)
    assert short.count("<li>") == 2 and "and 7 more" in short
    assert "not run" in sm.page_verdicts_html("tab02_success_time", None)  # no results file yet: said so
    with pytest.raises(ValueError, match="no claims in the summary; pages with claims: fig03"):
        sm.page_verdicts_html("tab01_settings", {})


def test_one_vocabulary_for_pages_and_summary():
    from wdlg_core import verdicts
    from wdlg_core.experiments import architectures, sensitivity, success

    assert success.HOLDS is verdicts.HOLDS and sensitivity.DOES_NOT_HOLD is verdicts.DOES_NOT_HOLD
    assert architectures.INCONCLUSIVE is success.INCONCLUSIVE is verdicts.INCONCLUSIVE
    assert sm.VERDICTS == verdicts.VERDICTS and set(verdicts.COLOURS) == set(verdicts.VERDICTS)
    assert {verdicts.normalise(v) for v in (success.HOLDS, success.DOES_NOT_HOLD, success.INCONCLUSIVE,
                                            architectures.PARTLY)} <= set(verdicts.VERDICTS)


def test_inconclusive_rows_say_what_sample_size_would_decide_them():
    row = {"a": 0.5, "a_low": 0.3, "a_high": 0.7, "b": 0.3, "b_low": 0.1, "b_high": 0.5}
    # half-widths towards each other 0.2 + 0.2 against a gap of 0.2: intervals separate at 4x the attacks
    assert sm.decide_factor(row) == pytest.approx(4.0)
    assert "about 4x this run's attacks" in sm.power_note(row)
    assert sm.decide_factor({**row, "b": 0.5}) is None                              # equal means: never
    assert sm.decide_factor({**row, "b_high": 0.25, "b": 0.2, "b_low": 0.1}) is None  # already separate
    assert "no interval" in sm.power_note({"a": 0.5, "b": 0.3})
    far = {"a": 0.5, "a_low": 0.0, "a_high": 1.0, "b": 0.49, "b_low": 0.0, "b_high": 1.0}
    assert "too close" in sm.power_note(far)
