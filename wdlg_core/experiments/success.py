"""Paper Table 2: success rate and running time per dataset, DLG vs WDLG, with uncertainty.

:func:`run_success` attacks the first ``n_images`` images of each dataset once per method
(batch size 1, every method starting from the same dummy seed, the same cases as the gallery
of Figure 3, so the gallery's attacks load from the store), through the results store, and
returns one table row per attack. :func:`summarize_success` turns that table into per
(dataset, method) estimates with 95% confidence intervals (Wilson for success rates,
bootstrap for mean time, mean loss evaluations and mean image MSE) next to the paper's
Table 2; :func:`claims` gives a verdict per claim of the paper (WDLG succeeds more often,
WDLG is faster) from the overlap of the intervals.

Time: the batched engine reports per attack the batch's wall time divided by its size
(:attr:`wdlg_core.result.AttackResult.wall_time`), so every attack of one batch has the same
time and a time interval only reflects differences *between* batches (it collapses to a
point when all attacks of a dataset and method ran in one batch). The number of
gradient-matching loss evaluations (``function_evals``) is counted per attack and does not
depend on the machine: it is the cost measure with a per-attack spread.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..paper import TABLE2, TABLE2_ITERATIONS
from ..profiles import Profile, get_profile
from ..store import ResultStore
from . import run_jobs
from .gallery import DATASET_NAMES, METHOD_NAMES, single_image_jobs

#: Images behind each of the paper's Table 2 rates and running times (Table 1: 300 images).
PAPER_IMAGES = 300
#: The machine behind the paper's running times (paper Section 4, first paragraph).
PAPER_MACHINE = "Intel Core i5-9400F CPU @ 2.90 GHz, 16 GB memory, Windows 10, PyTorch"
#: Verdict labels (see :func:`verdict`).
from ..verdicts import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE  # noqa: E402


# --- statistics ------------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial success rate (no continuity correction).

    Computed by ``scipy.stats.binomtest(successes, n).proportion_ci(method="wilson")``
    (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it for small n). For ``n`` trials it is
    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = successes / n``
    and ``z`` the normal quantile of ``(1 + confidence) / 2``; e.g. 0 of 4 gives
    ``(0, 0.490)`` at 95%.

    Args:
        successes: number of successes, ``0 <= successes <= n``.
        n: number of trials; 0 gives ``(nan, nan)`` (no data, no interval).
        confidence: confidence level in (0, 1).

    Returns:
        (low, high), fractions in [0, 1].

    Raises:
        ValueError: negative ``n``, ``successes`` outside ``[0, n]``, or confidence outside (0, 1).
    """
    from scipy.stats import binomtest

    successes, n = int(successes), int(n)
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return math.nan, math.nan
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_mean_interval(values, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0,
                            method: str = "BCa") -> tuple[float, float]:
    """Bootstrap confidence interval of the mean of ``values`` (``scipy.stats.bootstrap``).

    Resamples the values with replacement ``n_resamples`` times from a generator seeded with
    ``seed`` (so the interval is reproducible), with scipy's ``method`` (``"BCa"``, the
    bias-corrected and accelerated interval of Efron 1987, ``"percentile"`` or ``"basic"``).
    NaN values are dropped first. Special cases, where the bootstrap has nothing to resample:
    fewer than two values give ``(nan, nan)`` (no spread can be estimated); values that are
    all equal give ``(v, v)`` (every resample has mean v). When BCa is undefined for the
    data (scipy returns NaN), the percentile interval is returned instead.

    Args:
        values: 1-D numbers (e.g. seconds per attack, image MSE).
        confidence: confidence level in (0, 1).
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.
        method: scipy's interval method.

    Returns:
        (low, high) in the units of ``values``.

    Raises:
        ValueError: confidence outside (0, 1), or a method scipy does not know (scipy's message).
    """
    import warnings

    from scipy.stats import bootstrap

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return math.nan, math.nan
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])

    def run(m):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's DegenerateDataWarning: handled below
            res = bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                            method=m, rng=np.random.default_rng(seed))
        return float(res.confidence_interval.low), float(res.confidence_interval.high)

    low, high = run(method)
    if not (math.isfinite(low) and math.isfinite(high)) and method.lower() == "bca":
        low, high = run("percentile")
    return low, high


def verdict(ours: tuple[float, float], theirs: tuple[float, float], higher_is_better: bool = True) -> str:
    """Does a claim "``ours`` is better than ``theirs``" hold, judged by two confidence intervals?

    ``"holds"`` when the intervals are disjoint in the claimed direction (e.g. for
    ``higher_is_better``, ours' low end above theirs' high end), ``"does not hold"`` when they
    are disjoint the other way, and ``"inconclusive"`` when they overlap (touching counts as
    overlap) or an interval is undefined (NaN). Disjoint 95% intervals are a conservative
    test: overlapping ones do not prove the two are equal, only that this many samples cannot
    tell them apart.

    Args:
        ours, theirs: (low, high) intervals of the two quantities compared.
        higher_is_better: direction of the claim (False for time or cost: lower is better).

    Returns:
        :data:`HOLDS`, :data:`DOES_NOT_HOLD` or :data:`INCONCLUSIVE`.
    """
    (a_lo, a_hi), (b_lo, b_hi) = map(lambda ci: (float(ci[0]), float(ci[1])), (ours, theirs))
    if any(math.isnan(v) for v in (a_lo, a_hi, b_lo, b_hi)):
        return INCONCLUSIVE
    if not higher_is_better:  # "lower is better": compare the negated intervals
        (a_lo, a_hi), (b_lo, b_hi) = (-a_hi, -a_lo), (-b_hi, -b_lo)
    if a_lo > b_hi:
        return HOLDS
    if a_hi < b_lo:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


# --- experiment ------------------------------------------------------------------------------
@dataclass
class SuccessRun:
    """What :func:`run_success` returns.

    Attributes:
        table: one row per attack: dataset, method, index, label, restored_label, mse, psnr
            (dB), ssim, success, iterations_to_success, time (s per attack, the batch's time
            divided by its size), function_evals (loss evaluations), label_accuracy,
            first_loss, final_loss, diverged, iterations, key (store record), source, commit
            (git commit the attack was computed at).
        profile: the effective profile (with the overrides applied).
        sources: dataset -> {"source", "split", "count"} the images came from.
    """

    table: pd.DataFrame
    profile: Profile
    sources: dict[str, dict] = field(default_factory=dict)


def run_success(profile: str | Profile = "quick", datasets=None, model=None, methods=None, n_images=None,
                iterations=None, seed=None, store: ResultStore | None = None, device=None, data_root=None,
                progress: bool | None = True,
                jobs_only: bool = False) -> SuccessRun:
    """Attack the first ``n_images`` images of each dataset with each method (batch size 1).

    The jobs come from :func:`wdlg_core.experiments.gallery.single_image_jobs`, as the
    gallery's do, so attacks the gallery already ran with the same configuration are loaded
    from the store.

    Args:
        profile: a profile name or :class:`Profile`; every other argument left None is taken
            from it (``n_images`` from ``profile.n_images``).
        datasets, model, methods, iterations, seed, device: overrides of the profile.
        n_images: images per dataset; capped at what the data source holds (the bundled SVHN
            source has 4), the cap shows in the table.
        store: results store (default ``ResultStore(profile=<profile name>)``).
        data_root: torchvision data root (default ``$WDLG_DATA_ROOT`` or ``./data``).
        progress: tqdm progress bars.

        jobs_only: return the jobs (list of :class:`Job`) without running or loading any
            (the page's ``jobs()``, :mod:`wdlg_core.pages`).

    Returns:
        :class:`SuccessRun`.

    Raises:
        ValueError: unknown dataset, method, model, or profile (messages list valid names).
    """
    p = get_profile(profile, datasets=datasets, model=model, methods=methods, iterations=iterations,
                    seed=seed, device=device, n_images=n_images)
    store = store if store is not None else ResultStore(profile=p.name)
    jobs, _, sources = single_image_jobs(p, p.n_images, data_root)
    if jobs_only:
        return jobs
    results = run_jobs(jobs, store, device=p.device, progress=progress, desc="table 2")

    rows = []
    for job, r in zip(jobs, results):
        ds = job.case.dataset
        rows.append({
            "dataset": ds, "method": job.config.method, "index": job.case.indices[0],
            "label": int(r.true_labels[0]), "restored_label": int(r.labels[0]),
            "mse": r.mse, "psnr": r.psnr, "ssim": r.ssim, "success": bool(r.success),
            "iterations_to_success": r.iterations_to_success, "time": r.wall_time,
            "function_evals": int(r.function_evals), "label_accuracy": r.label_accuracy,
            "first_loss": r.first_loss, "final_loss": r.final_loss, "diverged": r.diverged,
            "iterations": r.config.iterations, "key": store.key(job.config, job.case),
            "source": f"{sources[ds]['source']}/{sources[ds]['split']}",
            "commit": (r.meta or {}).get("provenance", {}).get("git_commit"),
        })
    table = pd.DataFrame(rows)
    if len(table):
        table["iterations_to_success"] = table["iterations_to_success"].astype("Int64")
    return SuccessRun(table, p, sources)


def summarize_success(table: pd.DataFrame, confidence: float = 0.95, n_resamples: int = 9999,
                      seed: int = 0) -> pd.DataFrame:
    """Per (dataset, method) estimates with confidence intervals, next to the paper's Table 2.

    Args:
        table: :attr:`SuccessRun.table` (columns dataset, method, success, time,
            function_evals, mse, iterations_to_success, iterations).
        confidence: level of every interval.
        n_resamples, seed: bootstrap resamples and seed (see :func:`bootstrap_mean_interval`).

    Returns:
        One row per (dataset, method), datasets in their order of first appearance: dataset,
        method, attacks, successes, success_rate with success_low/success_high (Wilson),
        time (mean s per attack) with time_low/time_high, timings (distinct per-attack times:
        how many batch timings the time mean rests on), function_evals (mean) with
        evals_low/evals_high, mse (mean) with mse_low/mse_high (bootstrap), iterations_to_success
        (median over the successful attacks), paper_success, paper_time_s (the paper's time
        for its 300 images) and paper_time_per_image_s (that time / 300); the paper columns are
        NaN where Table 2 has no entry; iterations (per attack), time_per_iteration_ms (ours)
        and paper_time_per_iteration_ms (the paper's time / 300 images / 448 iterations), a
        rough common scale for runs with different budgets on different machines.
    """
    out = []
    for (ds, method), g in table.groupby(["dataset", "method"], sort=False):
        k, n = int(g["success"].sum()), len(g)
        s_lo, s_hi = wilson_interval(k, n, confidence)
        boot = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
        t_lo, t_hi = bootstrap_mean_interval(g["time"], **boot)
        e_lo, e_hi = bootstrap_mean_interval(g["function_evals"], **boot)
        m_lo, m_hi = bootstrap_mean_interval(g["mse"], **boot)
        its = g["iterations_to_success"].dropna()
        paper = TABLE2.get(ds, {}).get(method, {})
        paper_time = paper.get("time_s", math.nan)
        out.append({
            "dataset": ds, "method": method, "attacks": n, "successes": k,
            "success_rate": k / n if n else math.nan, "success_low": s_lo, "success_high": s_hi,
            "time": float(g["time"].mean()), "time_low": t_lo, "time_high": t_hi,
            "timings": int(g["time"].nunique()),
            "function_evals": float(g["function_evals"].mean()), "evals_low": e_lo, "evals_high": e_hi,
            "mse": float(g["mse"].mean()), "mse_low": m_lo, "mse_high": m_hi,
            "iterations_to_success": float(its.median()) if len(its) else math.nan,
            "paper_success": paper.get("success", math.nan), "paper_time_s": paper_time,
            "paper_time_per_image_s": paper_time / PAPER_IMAGES,
            "iterations": int(g["iterations"].max()),
            "time_per_iteration_ms": 1000 * float(g["time"].mean()) / int(g["iterations"].max()),
            "paper_time_per_iteration_ms": 1000 * paper_time / PAPER_IMAGES / TABLE2_ITERATIONS,
        })
    return pd.DataFrame(out)


#: The claims checked by :func:`claims`: name -> (summary column, low/high columns, higher is better).
CLAIMS = {
    "WDLG higher success than DLG": ("success_rate", ("success_low", "success_high"), True),
    "WDLG faster (time per attack)": ("time", ("time_low", "time_high"), False),
    "WDLG fewer loss evaluations": ("function_evals", ("evals_low", "evals_high"), False),
}


def claims(summary: pd.DataFrame, paper_images: int = PAPER_IMAGES, confidence: float = 0.95) -> pd.DataFrame:
    """A verdict per dataset and claim of Table 2 (WDLG vs DLG), ours and the paper's.

    Our verdict is :func:`verdict` of WDLG's interval against DLG's, except that the time
    claim is inconclusive when either method's time rests on a single batch timing: the
    amortised per-attack times of one batch are all equal, so their bootstrap interval is a
    point that says nothing about the timing's own noise (machine load, other processes);
    the loss-evaluation claim is the machine-independent cost comparison. The paper gives point
    values without intervals; for its success rates we also apply the same rule to Wilson
    intervals computed as if each rate came from ``paper_images`` attacks (its Table 1), which
    shows whether the paper's own differences are larger than sampling noise at its scale.
    The paper's times have no spread to build an interval from, and the paper does not count
    loss evaluations.

    Returns:
        One row per (dataset, claim) for datasets with both methods: dataset, claim, wdlg,
        dlg (our estimates), wdlg_ci, dlg_ci (intervals), verdict, note (why a verdict is
        inconclusive when not from overlapping intervals, else ""), paper_wdlg, paper_dlg
        (Table 2 values, NaN if absent), paper_direction ("holds" / "does not hold" from the
        point values, "not reported" without values) and paper_verdict_n (the success rates'
        verdict at ``paper_images`` attacks each, else "no interval").
    """
    rows = []
    by = summary.set_index(["dataset", "method"])
    for ds in dict.fromkeys(summary["dataset"]):
        if (ds, "wdlg") not in by.index or (ds, "dlg") not in by.index:
            continue
        w, d = by.loc[(ds, "wdlg")], by.loc[(ds, "dlg")]
        paper = TABLE2.get(ds, {})
        for claim, (col, (lo, hi), higher) in CLAIMS.items():
            pcol = {"success_rate": "success", "time": "time_s"}.get(col)
            pw = paper.get("wdlg", {}).get(pcol, math.nan) if pcol else math.nan
            pd_ = paper.get("dlg", {}).get(pcol, math.nan) if pcol else math.nan
            if math.isnan(pw) or math.isnan(pd_):
                direction = "not reported"
            else:
                direction = HOLDS if (pw > pd_ if higher else pw < pd_) else DOES_NOT_HOLD
            paper_n = "no interval"
            if col == "success_rate" and direction != "not reported":
                paper_n = verdict(wilson_interval(round(pw * paper_images), paper_images, confidence),
                                  wilson_interval(round(pd_ * paper_images), paper_images, confidence), higher)
            ours, note = verdict((w[lo], w[hi]), (d[lo], d[hi]), higher), ""
            if col == "time" and min(int(w["timings"]), int(d["timings"])) < 2:
                ours = INCONCLUSIVE
                note = "one batch timing per method: its time has no spread to build an interval from"
            rows.append({
                "dataset": ds, "claim": claim, "wdlg": float(w[col]), "dlg": float(d[col]),
                "wdlg_ci": (float(w[lo]), float(w[hi])), "dlg_ci": (float(d[lo]), float(d[hi])),
                "verdict": ours, "note": note,
                "paper_wdlg": pw, "paper_dlg": pd_, "paper_direction": direction, "paper_verdict_n": paper_n,
            })
    return pd.DataFrame(rows)


def table2_figure(summary: pd.DataFrame, title: str | None = None):
    """Three panels per dataset, DLG next to WDLG: success rate (Wilson interval), time per
    attack (s, bootstrap interval, log scale) and loss evaluations per attack (bootstrap
    interval); the paper's success rate and its time / 300 images are drawn as open markers.

    Args:
        summary: :func:`summarize_success`'s table.
        title: figure title.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    import matplotlib.ticker as ticker
    import seaborn as sns

    datasets = list(dict.fromkeys(summary["dataset"]))
    methods = list(dict.fromkeys(summary["method"]))
    colors = dict(zip(methods, sns.color_palette("colorblind", len(methods))))
    panels = [("success_rate", "success_low", "success_high", "paper_success", "success rate"),
              ("time", "time_low", "time_high", "paper_time_per_image_s", "time per attack (s)"),
              ("function_evals", "evals_low", "evals_high", None, "loss evaluations per attack")]
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.8))
    width = 0.8 / max(len(methods), 1)
    for ax, (col, lo, hi, paper_col, label) in zip(axes, panels):
        for m_i, method in enumerate(methods):
            rows = summary[summary.method == method].set_index("dataset").reindex(datasets)
            x = np.arange(len(datasets)) + (m_i - (len(methods) - 1) / 2) * width
            y = rows[col].to_numpy(float)
            err = np.vstack([y - rows[lo].to_numpy(float), rows[hi].to_numpy(float) - y])
            err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
            ax.errorbar(x, y, yerr=err, fmt="o", color=colors[method], capsize=4, ms=6,
                        label=f"{METHOD_NAMES.get(method, method)} (ours, 95% CI)")
            if paper_col is not None:
                ax.plot(x, rows[paper_col].to_numpy(float), marker="D", ls="none", mfc="none",
                        mec=colors[method], ms=7, label=f"{METHOD_NAMES.get(method, method)} (paper)")
        ax.set_xticks(np.arange(len(datasets)), [DATASET_NAMES.get(d, d) for d in datasets])
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.5, len(datasets) - 0.5)
        ax.grid(False, axis="x")
        ax.set_ylabel(label)
        if col == "success_rate":
            ax.set_ylim(-0.05, 1.05)
            ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        else:
            ax.set_yscale("log")
            ax.margins(y=0.12)
            plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
            ax.tick_params(axis="y", which="minor", labelsize=7)
    axes[1].set_title("paper: its time for 300 images / 300 (other machine, 448 iterations)", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2 * len(methods), frameon=False,
               bbox_to_anchor=(0.5, -0.08))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["CLAIMS", "DATASET_NAMES", "METHOD_NAMES", "PAPER_IMAGES", "PAPER_MACHINE", "TABLE2_ITERATIONS", "SuccessRun",
           "bootstrap_mean_interval", "claims", "run_success", "summarize_success", "table2_figure", "verdict", "wilson_interval"]


def claim_value_text(claim: str, v, lo_hi) -> str:
    """A value of a Table 2 claim (:func:`claims`) with its interval: a success rate as a
    percentage, a time with 3 significant digits, a count of loss evaluations as a whole number."""
    from .text import interval

    if claim.startswith("WDLG higher success"):
        return interval(v, *lo_hi, "{:.0%}")
    return interval(v, *lo_hi, "{:.3g}" if "time" in claim else "{:.0f}")


def paper_value_text(claim: str, v) -> str:
    """The paper's value of a Table 2 claim: a success rate as a percentage, else seconds."""
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return f"{v:.0%}" if claim.startswith("WDLG higher success") else f"{v:.0f} s"


def success_text(table: pd.DataFrame, method: str) -> str:
    """"k of n (p%)": successful attacks of ``method`` in :func:`run_success`'s table."""
    rows = table[table.method == method]
    return f"{int(rows.success.sum())} of {len(rows)} ({rows.success.mean():.0%})" if len(rows) else "not run"


def verdict_tally(series: pd.Series, n: int) -> str:
    """"holds on a, does not hold on b, inconclusive on c of n datasets" from a column of verdicts."""
    counts = series.value_counts()
    parts = [f"{label} on {counts.get(label, 0)}" for label in ("holds", "does not hold", "inconclusive")]
    return f"{', '.join(parts)} of {n} datasets"


def ratio_range(summary: pd.DataFrame, column: str) -> str:
    """WDLG / DLG of ``column`` per dataset of :func:`summarize_success`, as "0.52" when the
    datasets agree (within 0.5%) or "0.4 to 0.9"; "not comparable" without a positive DLG value."""
    by = summary.set_index(["dataset", "method"])[column]
    r = [by[(ds, "wdlg")] / by[(ds, "dlg")] for ds in dict.fromkeys(summary["dataset"])
         if (ds, "wdlg") in by.index and (ds, "dlg") in by.index and by[(ds, "dlg")] > 0]
    if not r:
        return "not comparable"
    return f"{min(r):.2g}" if math.isclose(min(r), max(r), rel_tol=0.005) else f"{min(r):.2g} to {max(r):.2g}"


__all__ += ["claim_value_text", "paper_value_text", "ratio_range", "success_text", "verdict_tally"]
