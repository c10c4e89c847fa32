"""Paper Table 5: ablation on LeNet + CIFAR-10, DLG -> + label restoration (iDLG) -> + Wasserstein (WDLG).

The three variants differ by one step each: iDLG is DLG with the label restored from the
shared gradient instead of optimised, WDLG is iDLG with the Wasserstein gradient-matching
loss. :func:`run_ablation` attacks the first ``n_images`` CIFAR-10 images once per variant
(batch size 1, all variants from the same dummy) through
:func:`wdlg_core.experiments.success.run_success`, so its cases are the gallery's and the
DLG/WDLG attacks of Table 4's batch-1 rows load from the store. :func:`summarize_ablation`
gives the paper's four columns with uncertainty and :func:`ordering` checks the paper's
claim that each step improves every column.

Columns: final gradient-matching loss (the method's own units: DLG and iDLG a sum of squared
L2 norms, WDLG an L2 norm, not squared, with its default estimator, so the loss column does not
compare like with like across the Wasserstein step), image MSE, iterations to converge (the
first recorded iteration whose image MSE is below the success threshold, median over the
successful attacks; the paper says "the number of iterative training when the image is
restored" without a criterion), and success rate (final MSE below the threshold; the paper's
threshold on the loss is not given).
"""
from __future__ import annotations

import math

import pandas as pd

from ..paper import TABLE5, TABLE5_LABELS
from ..profiles import Profile
from ..store import ResultStore
from .batches import DATASET, interval_mean
from .success import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, SuccessRun, run_success, verdict, wilson_interval

#: The ablation's variants, in the order of the paper's rows.
VARIANTS = ("dlg", "idlg", "wdlg")
#: Iterations of the paper's Table 5 ("a total of 500 iterative experiments").
PAPER_ITERATIONS = 500
#: Columns compared by :func:`ordering`: name -> (our column, paper key, higher is better).
COLUMNS = {
    "final loss": ("final_loss", "loss", False),
    "image MSE": ("mse", "mse", False),
    "iterations to converge": ("iterations_to_success", "iterations_to_converge", False),
    "success rate": ("success_rate", "success", True),
}


def run_ablation(profile: str | Profile = "quick", n_images=None, iterations=None, model=None, seed=None,
                 store: ResultStore | None = None, device=None, data_root=None,
                 progress: bool | None = True, jobs_only: bool = False) -> SuccessRun:
    """Attack the first ``n_images`` CIFAR-10 images with DLG, iDLG and WDLG (batch size 1).

    Args:
        profile: a profile name or :class:`Profile`; settings left None are taken from it
            (``n_images`` from ``profile.n_images``, iterations from ``profile.iterations``).
        n_images, iterations, model, seed, device: overrides of the profile.
        store: results store (default ``ResultStore(profile=<profile name>)``).
        data_root: torchvision data root (default ``$WDLG_DATA_ROOT`` or ``./data``).
        progress: tqdm progress bars.
        jobs_only: return the jobs without running or loading any (the page's ``jobs()``).

    Returns:
        :class:`wdlg_core.experiments.success.SuccessRun`: one table row per attack (columns
        method, index, mse, final_loss, success, iterations_to_success, ...; see there).
    """
    return run_success(profile, datasets=(DATASET,), methods=VARIANTS, n_images=n_images, iterations=iterations,
                       model=model, seed=seed, store=store, device=device, data_root=data_root, progress=progress,
                       jobs_only=jobs_only)


def summarize_ablation(table: pd.DataFrame, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Table 5's columns per variant, with intervals, next to the paper's values.

    Args:
        table: :func:`run_ablation`'s table (columns method, final_loss, mse, success,
            iterations_to_success).
        confidence: level of the intervals; seed: bootstrap seed.

    Returns:
        One row per variant present, in :data:`VARIANTS` order: variant, label (the paper's
        row name), attacks, final_loss with loss_low/loss_high and mse with mse_low/mse_high
        (means with bootstrap intervals, NaN bounds below three attacks: see
        :func:`wdlg_core.experiments.batches.interval_mean`), iterations_to_success (median over successful
        attacks, NaN without any) with converged (how many attacks it rests on), successes,
        success_rate with success_low/success_high (Wilson), and the paper's paper_loss,
        paper_mse, paper_iterations, paper_success.
    """
    rows = []
    for v in VARIANTS:
        g = table[table["method"] == v]
        if g.empty:
            continue
        loss, l_lo, l_hi = interval_mean(g["final_loss"], confidence, seed)
        mse, m_lo, m_hi = interval_mean(g["mse"], confidence, seed)
        its = pd.to_numeric(g.loc[g["success"].astype(bool), "iterations_to_success"], errors="coerce").dropna()
        k, n = int(g["success"].sum()), len(g)
        s_lo, s_hi = wilson_interval(k, n, confidence)
        paper = TABLE5[v]
        rows.append({
            "variant": v, "label": TABLE5_LABELS[v], "attacks": n,
            "final_loss": loss, "loss_low": l_lo, "loss_high": l_hi,
            "mse": mse, "mse_low": m_lo, "mse_high": m_hi,
            "iterations_to_success": float(its.median()) if len(its) else math.nan, "converged": len(its),
            "successes": k, "success_rate": k / n, "success_low": s_lo, "success_high": s_hi,
            "paper_loss": paper["loss"], "paper_mse": paper["mse"],
            "paper_iterations": paper["iterations_to_converge"], "paper_success": paper["success"],
        })
    return pd.DataFrame(rows)


def ordering(summary: pd.DataFrame) -> pd.DataFrame:
    """Does each ablation step improve each column? Ours and the paper's.

    For each consecutive pair of variants (DLG -> iDLG, iDLG -> WDLG) and each column of
    :data:`COLUMNS`: ``ours`` is the direction of our point estimates ("improves", "worsens",
    "equal", or "n/a" when a value is missing, e.g. no successful attack to take a median
    over); ``verdict`` judges the loss, MSE and success-rate steps by their intervals with
    :func:`wdlg_core.experiments.success.verdict` ("holds": the later variant is better with
    disjoint intervals; medians of a few iterations have no interval: "no interval");
    ``paper`` is the direction of the paper's values.

    Returns:
        One row per (step, column): step, column, before, after (our values), ours, verdict,
        paper_before, paper_after, paper.
    """
    def direction(a, b, higher):
        if math.isnan(float(a)) or math.isnan(float(b)):
            return "n/a"
        if a == b:
            return "equal"
        return "improves" if (b > a) == higher else "worsens"

    intervals = {"final_loss": ("loss_low", "loss_high"), "mse": ("mse_low", "mse_high"),
                 "success_rate": ("success_low", "success_high")}
    by = summary.set_index("variant")
    present = [v for v in VARIANTS if v in by.index]
    rows = []
    for a, b in zip(present, present[1:]):
        for name, (col, pkey, higher) in COLUMNS.items():
            ra, rb = by.loc[a], by.loc[b]
            if col in intervals:
                lo, hi = intervals[col]
                ver = verdict((rb[lo], rb[hi]), (ra[lo], ra[hi]), higher_is_better=higher)
            else:
                ver = "no interval"
            pa, pb = TABLE5[a][pkey], TABLE5[b][pkey]
            rows.append({
                "step": f"{TABLE5_LABELS[a]} -> {TABLE5_LABELS[b]}", "column": name,
                "before": float(ra[col]), "after": float(rb[col]),
                "ours": direction(float(ra[col]), float(rb[col]), higher),
                "verdict": ver, "paper_before": pa, "paper_after": pb, "paper": direction(pa, pb, higher),
            })
    return pd.DataFrame(rows)


__all__ = ["COLUMNS", "DOES_NOT_HOLD", "HOLDS", "INCONCLUSIVE", "PAPER_ITERATIONS", "VARIANTS", "ordering",
           "run_ablation", "summarize_ablation"]
