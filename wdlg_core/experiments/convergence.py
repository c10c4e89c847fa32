"""Paper Figures 5, 6 and 7: how the attacks converge, DLG vs WDLG.

Figure 5 plots the gradient-matching loss against the iteration, Figure 6 the image MSE
against the iteration (both on CIFAR-10, paper Section 4.1), and Figure 7 the loss of the
first iteration (paper Section 4.2: "the WDLG algorithm always calculates a training loss that
is less than twice that of the DLG algorithm").

:func:`run_convergence` attacks the first ``n_images`` images of one dataset once per method
(batch size 1, both methods from the same dummy, curves kept every ``record_every``
iterations) through the results store; Figures 5 and 6 call it with the same arguments, so the
second loads the first's attacks. :func:`run_first_loss` evaluates only the initial dummy
(``iterations=1`` attacks) for several images and dummy seeds per dataset. The statistics
helpers (:func:`first_below`, :func:`value_at`, :func:`crossings`, :func:`first_loss_pairs`,
:func:`below_twice`) are plain functions of the tidy tables.

Units. DLG's loss is a squared L2 norm, sum_l ||dW'_l - dW_l||^2 (gradient units squared);
WDLG's (default ``dirac_whole`` estimator) is the L2 norm ||dW' - dW|| of the whole difference
(gradient units; the ``dirac`` estimator: a sum of per-layer norms). So the raw curves are not
on one scale, and a squared loss normalised by its first value falls twice as many decades as
the norm it squares: :func:`run_convergence` also gives each curve normalised by its first value
(``loss_norm``) and, for DLG, its square root (``loss_norm_sqrt``: the plain norm
sqrt(sum_l ||.||^2), in gradient units, WDLG's own quantity under ``dirac_whole``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..profiles import GALLERY_DATASETS, Profile, get_profile
from ..store import Case, ResultStore
from . import Job, images_fingerprint, run_jobs
from .gallery import resolve_source

#: Dataset of Figures 5 and 6: the paper's text says CIFAR-10 ("in the CIFAR-10 dataset with
#: the largest pixel value"); its notes on the figures say CIFAR.
CURVE_DATASET = "cifar10"
#: Keep the loss and MSE curves at every iteration: the attacks are then exactly those of the
#: Table 2 / Table 5 sweeps (same config and case), so the results store shares them.
RECORD_EVERY = 1
#: Datasets of Figure 7: the gallery's four (paper Figure 3) and CIFAR-10 (Figures 5-6).
FIRST_LOSS_DATASETS = GALLERY_DATASETS + ("cifar10",)
#: Figure 7 draws enough dummy initialisations per image (seeds ``seed, seed + 1, ...``) for at
#: least this many (image, dummy) pairs per dataset: the first loss depends on the random dummy
#: as much as on the image (quick profile: 4 images, 5 dummies each; paper profile: 1 dummy).
FIRST_LOSS_MIN_PAIRS = 20
#: Level of the normalised loss (loss / loss at iteration 0) whose first crossing Figure 5 reports.
LOSS_LEVEL = 1e-2


@dataclass
class Convergence:
    """What :func:`run_convergence` returns.

    Attributes:
        curves: one row per (attack, recorded iteration): dataset, method, index, iteration,
            loss (the method's own units), mse (image MSE, images in [0, 1]), loss_norm (loss /
            loss at iteration 0), loss_norm_sqrt (sqrt of loss_norm for DLG's squared loss,
            loss_norm for WDLG: both then ratios of norms).
        table: one row per attack: dataset, method, index, label, restored_label, first_loss,
            final_loss, mse, psnr (dB), ssim, success, iterations_to_success (first recorded
            iteration with MSE below the threshold), diverged, time (s), iterations, key,
            commit (git commit the attack was computed at).
        profile: the effective profile (overrides applied; ``datasets`` is the one dataset).
        source: {"source", "split", "count"} the images came from.
        record_every: the curves' recording interval (iterations).
    """

    curves: pd.DataFrame
    table: pd.DataFrame
    profile: Profile
    source: dict = field(default_factory=dict)
    record_every: int = RECORD_EVERY


def _cases(p: Profile, dataset: str, n_images: int, data_root):
    """(images, labels, cases, source) of the first ``n_images`` images of ``dataset``
    (capped at what the source holds)."""
    from ..data import dataset_info, load_images

    info = dataset_info(dataset)
    src = resolve_source(dataset, n_images, p.split, p.source, data_root)
    n = min(n_images, src["count"])
    images, labels = load_images(dataset, n, split=p.split, source=p.source, root=data_root)  # (n, C, H, W), (n,)
    cases = [Case(dataset=dataset, indices=(i,), model=p.model, model_seed=p.model_seed, split=p.split,
                  source=p.source, num_classes=info.num_classes, images_sha256=images_fingerprint(images[i:i + 1]))
             for i in range(n)]
    return images, labels, cases, src


def _commit(result) -> str | None:
    return (result.meta or {}).get("provenance", {}).get("git_commit")


def run_convergence(profile: str | Profile = "quick", dataset: str | None = None, model=None, methods=None,
                    n_images=None, iterations=None, seed=None, record_every: int | None = None,
                    store: ResultStore | None = None, device=None, data_root=None,
                    progress: bool | None = True,
                    jobs_only: bool = False) -> Convergence:
    """Attack the first ``n_images`` images of ``dataset`` once per method and keep the curves.

    Figures 5 (loss) and 6 (image MSE) both call this with the same arguments: the attacks
    are identical (config + case), so the second call loads them from ``store``.

    Args:
        profile: a profile name or :class:`Profile`; every argument left None is taken from
            it (``n_images`` from ``profile.n_images``).
        dataset: the dataset attacked (default :data:`CURVE_DATASET`, CIFAR-10).
        model, methods, iterations, seed, device: overrides of the profile.
        n_images: images attacked; capped at what the data source holds.
        record_every: curve recording interval in iterations (default :data:`RECORD_EVERY`).
        store: results store (default ``ResultStore(profile=<profile name>)``).
        data_root: torchvision data root (default ``$WDLG_DATA_ROOT`` or ``./data``).
        progress: tqdm progress bars.

        jobs_only: return the jobs (list of :class:`Job`) without running or loading any
            (the page's ``jobs()``, :mod:`wdlg_core.pages`).

    Returns:
        :class:`Convergence`.

    Raises:
        ValueError: unknown dataset, method, model or profile (messages list valid names), or
            ``record_every < 1``.
    """
    dataset = dataset or CURVE_DATASET
    record_every = RECORD_EVERY if record_every is None else int(record_every)
    p = get_profile(profile, datasets=(dataset,), model=model, methods=methods, n_images=n_images,
                    iterations=iterations, seed=seed, device=device)
    store = store if store is not None else ResultStore(profile=p.name)
    images, labels, cases, src = _cases(p, dataset, p.n_images, data_root)
    jobs = [Job(p.attack_config(m, record_every=record_every), case, images[i:i + 1], labels[i:i + 1])
            for i, case in enumerate(cases) for m in p.methods]
    if jobs_only:
        return jobs
    results = run_jobs(jobs, store, device=p.device, progress=progress, desc="convergence")

    rows, curves = [], []
    for job, r in zip(jobs, results):
        method, index = job.config.method, job.case.indices[0]
        rows.append({
            "dataset": dataset, "method": method, "index": index,
            "label": int(r.true_labels[0]), "restored_label": int(r.labels[0]),
            "first_loss": r.first_loss, "final_loss": r.final_loss, "mse": r.mse, "psnr": r.psnr,
            "ssim": r.ssim, "success": bool(r.success), "iterations_to_success": r.iterations_to_success,
            "diverged": r.diverged, "time": r.wall_time, "iterations": r.config.iterations,
            "key": store.key(job.config, job.case), "commit": _commit(r),
        })
        curves.append(pd.DataFrame({"dataset": dataset, "method": method, "index": index,
                                    "iteration": r.iterations, "loss": r.losses, "mse": r.mses}))
    table = pd.DataFrame(rows)
    if len(table):
        table["iterations_to_success"] = table["iterations_to_success"].astype("Int64")
    curve = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=["dataset", "method", "index", "iteration", "loss", "mse"])
    curve = normalise(curve)
    return Convergence(curve, table, p, src, record_every)


def normalise(curves: pd.DataFrame) -> pd.DataFrame:
    """Add ``loss_norm`` (loss / the attack's loss at its first recorded iteration) and
    ``loss_norm_sqrt`` (its square root for the squared-norm losses DLG and iDLG, itself for
    WDLG), per (dataset, method, index). A first loss of 0 gives NaN ratios.

    Returns:
        A copy of ``curves`` with the two columns.
    """
    out = curves.sort_values(["dataset", "method", "index", "iteration"]).reset_index(drop=True)
    first = out.groupby(["dataset", "method", "index"])["loss"].transform("first")
    out["loss_norm"] = out["loss"] / first.where(first != 0)
    squared = out["method"].isin(["dlg", "idlg"])
    out["loss_norm_sqrt"] = np.where(squared, np.sqrt(out["loss_norm"].clip(lower=0)), out["loss_norm"])
    return out


def first_below(iterations, values, threshold: float) -> float:
    """The first iteration whose value is strictly below ``threshold``, or NaN if none.

    Args:
        iterations: (T,) recorded iterations, increasing.
        values: (T,) values at those iterations (NaN never counts as below).
        threshold: the level.
    """
    its, vals = np.asarray(iterations), np.asarray(values, dtype=np.float64)
    hit = np.flatnonzero(vals < threshold)
    return float(its[hit[0]]) if len(hit) else math.nan


def value_at(curves: pd.DataFrame, iteration: int, column: str = "loss") -> pd.DataFrame:
    """Each attack's ``column`` at the last recorded iteration <= ``iteration``.

    Returns:
        One row per (dataset, method, index): those keys, ``iteration`` (the recorded one
        used) and ``column``.
    """
    rows = curves[curves["iteration"] <= iteration].sort_values("iteration")
    return rows.groupby(["dataset", "method", "index"], as_index=False).last()[
        ["dataset", "method", "index", "iteration", column]]


def crossings(curves: pd.DataFrame, column: str, threshold: float) -> pd.DataFrame:
    """Per attack, the first recorded iteration at which ``column`` falls below ``threshold``.

    Returns:
        One row per (dataset, method, index) with column ``iteration`` (NaN: never crossed
        within the budget).
    """
    rows = [{"dataset": ds, "method": m, "index": i, "iteration": first_below(g["iteration"], g[column], threshold)}
            for (ds, m, i), g in curves.sort_values("iteration").groupby(["dataset", "method", "index"], sort=False)]
    return pd.DataFrame(rows, columns=["dataset", "method", "index", "iteration"])


def median_crossing(cross: pd.DataFrame, method: str) -> tuple[float, int, int]:
    """(median crossing iteration over the attacks of ``method`` that crossed, how many
    crossed, how many attacks) from a :func:`crossings` table; the median is NaN if none did."""
    it = cross.loc[cross["method"] == method, "iteration"]
    hit = it.dropna()
    return (float(hit.median()) if len(hit) else math.nan), int(len(hit)), int(len(it))


# --- Figure 7: the first-iteration loss ------------------------------------------------------

@dataclass
class FirstLoss:
    """What :func:`run_first_loss` returns.

    Attributes:
        table: one row per attack: dataset, method, index, dummy_seed, first_loss, label,
            restored_label, key.
        pairs: one row per (dataset, index, dummy_seed) with both methods (see
            :func:`first_loss_pairs`).
        profile: the effective profile.
        sources: dataset -> {"source", "split", "count"}.
        dummies: dataset -> dummy seeds per image.
    """

    table: pd.DataFrame
    pairs: pd.DataFrame
    profile: Profile
    sources: dict = field(default_factory=dict)
    dummies: dict = field(default_factory=dict)


def default_dummies(n_images: int, min_pairs: int = FIRST_LOSS_MIN_PAIRS) -> int:
    """Dummy seeds per image giving at least ``min_pairs`` (image, dummy) pairs from
    ``n_images`` images: ceil(min_pairs / n_images), at least 1."""
    return max(1, math.ceil(min_pairs / max(int(n_images), 1)))


def run_first_loss(profile: str | Profile = "quick", datasets=None, model=None, n_images=None,
                   dummies: int | None = None, seed=None, store: ResultStore | None = None, device=None,
                   data_root=None, progress: bool | None = True,
                   jobs_only: bool = False) -> FirstLoss:
    """The gradient-matching loss of the initial dummy, DLG and WDLG, for several images and
    dummy initialisations per dataset (paper Figure 7).

    Each (image, dummy seed, method) is an ``iterations=1`` attack (so the store keeps it; its
    ``first_loss`` is the loss at iteration 0, before any update). For a given image and seed
    both methods draw the same dummy image x' ~ N(0, 1); DLG also draws a dummy label
    y' ~ N(0, 1) (soft, through softmax) where WDLG uses the restored label, so their dummy
    gradients differ by the label as well as by the distance.

    Args:
        profile: profile name or :class:`Profile`; None arguments come from it.
        datasets: default :data:`FIRST_LOSS_DATASETS` (the gallery's four and CIFAR-10), also
            when ``profile`` is a :class:`Profile` (pass ``profile.datasets`` to keep its own).
        model, seed, device: overrides of the profile (``seed`` is the first dummy seed).
        n_images: images per dataset (default ``profile.n_images``), capped by the source.
        dummies: dummy seeds per image (default per dataset :func:`default_dummies` of the
            images it has, so each dataset gets at least :data:`FIRST_LOSS_MIN_PAIRS` pairs).
        store, data_root, progress: as in :func:`run_convergence`.

        jobs_only: return the jobs (list of :class:`Job`) without running or loading any
            (the page's ``jobs()``, :mod:`wdlg_core.pages`).

    Returns:
        :class:`FirstLoss`.

    Raises:
        ValueError: unknown dataset, model or profile, or ``dummies < 1``.
    """
    if dummies is not None and int(dummies) < 1:
        raise ValueError(f"dummies must be >= 1, got {dummies}")
    p = get_profile(profile, datasets=datasets or FIRST_LOSS_DATASETS, model=model, methods=("dlg", "wdlg"),
                    n_images=n_images, seed=seed, device=device)
    store = store if store is not None else ResultStore(profile=p.name)
    jobs, sources, per_ds = [], {}, {}
    for ds in p.datasets:
        images, labels, cases, sources[ds] = _cases(p, ds, p.n_images, data_root)
        per_ds[ds] = d = default_dummies(len(cases)) if dummies is None else int(dummies)
        for i, case in enumerate(cases):
            for s in range(p.seed, p.seed + d):
                for m in p.methods:
                    jobs.append(Job(p.attack_config(m, iterations=1, seed=s), case, images[i:i + 1], labels[i:i + 1]))
    if jobs_only:
        return jobs
    results = run_jobs(jobs, store, device=p.device, progress=progress, desc="first loss")
    table = pd.DataFrame([{
        "dataset": j.case.dataset, "method": j.config.method, "index": j.case.indices[0], "dummy_seed": j.config.seed,
        "first_loss": r.first_loss, "label": int(r.true_labels[0]), "restored_label": int(r.labels[0]),
        "key": store.key(j.config, j.case), "commit": _commit(r),
    } for j, r in zip(jobs, results)])
    return FirstLoss(table, first_loss_pairs(table), p, sources, per_ds)


def first_loss_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """DLG and WDLG side by side per (dataset, index, dummy_seed).

    Returns:
        Columns dataset, index, dummy_seed, dlg_first, wdlg_first, ratio (wdlg / dlg),
        below_twice (wdlg_first < 2 * dlg_first, the paper's statement read literally),
        dlg_first_sqrt (sqrt of DLG's squared norm: a norm, in WDLG's units) and
        ratio_sqrt (wdlg_first / dlg_first_sqrt). Rows missing a method are dropped.
    """
    keys = ["dataset", "index", "dummy_seed"]
    firsts = {m: table[table["method"] == m].set_index(keys)["first_loss"].rename(f"{m}_first") for m in ("dlg", "wdlg")}
    out = pd.concat(firsts.values(), axis=1, join="inner").reset_index()  # pairs with both methods, DLG's order
    out["ratio"] = out["wdlg_first"] / out["dlg_first"]
    out["below_twice"] = out["wdlg_first"] < 2 * out["dlg_first"]
    out["dlg_first_sqrt"] = np.sqrt(out["dlg_first"].astype(float))
    out["ratio_sqrt"] = out["wdlg_first"] / out["dlg_first_sqrt"]
    return out.reset_index(drop=True)


def below_twice(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset (in order of appearance) and overall ("all"): pairs, how many satisfy
    wdlg_first < 2 * dlg_first, that fraction, and the median ratios wdlg / dlg and
    wdlg / sqrt(dlg)."""
    order = list(dict.fromkeys(pairs["dataset"]))
    rows = []
    for ds, g in [(d, pairs[pairs["dataset"] == d]) for d in order] + [("all", pairs)]:
        rows.append({"dataset": ds, "pairs": int(len(g)), "below_twice": int(g["below_twice"].sum()),
                     "fraction": float(g["below_twice"].mean()) if len(g) else math.nan,
                     "median_ratio": float(g["ratio"].median()) if len(g) else math.nan,
                     "median_ratio_sqrt": float(g["ratio_sqrt"].median()) if len(g) else math.nan})
    return pd.DataFrame(rows)


# --- summaries and figures ---------------------------------------------------------------------

def median_at(curves: pd.DataFrame, iteration: int, column: str) -> dict[str, float]:
    """method -> median over the attacks of ``column`` at the last recorded iteration <=
    ``iteration`` (see :func:`value_at`)."""
    v = value_at(curves, iteration, column)
    return {m: float(g[column].median()) for m, g in v.groupby("method", sort=False)}


def wins_at(curves: pd.DataFrame, iteration: int, column: str, better: str = "wdlg", other: str = "dlg") -> tuple[int, int]:
    """(images where ``better``'s ``column`` is strictly below ``other``'s at ``iteration``,
    images where both methods have a value), pairing attacks by (dataset, index)."""
    v = value_at(curves, iteration, column).pivot_table(index=["dataset", "index"], columns="method", values=column)
    if better not in v or other not in v:
        return 0, 0
    v = v[[better, other]].dropna()
    return int((v[better] < v[other]).sum()), int(len(v))


def mean_curves(curves: pd.DataFrame, columns=("loss", "loss_norm", "loss_norm_sqrt", "mse"),
                max_points: int | None = 200) -> pd.DataFrame:
    """Per (dataset, method, iteration): attacks, and mean, median, 5th and 95th percentile of
    each of ``columns`` over the attacks (the results file keeps these, the store the curves).

    ``max_points`` thins the iterations to every k-th one, k = ceil(last iteration /
    max_points), plus the last (None: keep all).
    """
    cols = [c for c in columns if c in curves]
    if max_points and len(curves):
        last = int(curves["iteration"].max())
        k = max(1, math.ceil(last / max_points))
        curves = curves[(curves["iteration"] % k == 0) | (curves["iteration"] == last)]
    g = curves.groupby(["dataset", "method", "iteration"], sort=False)
    out = g.size().rename("attacks").to_frame()
    for c in cols:
        out[f"{c}_mean"] = g[c].mean()
        out[f"{c}_median"] = g[c].median()
        out[f"{c}_p5"] = g[c].quantile(0.05)
        out[f"{c}_p95"] = g[c].quantile(0.95)
    return out.reset_index()


def band_for(n: int) -> tuple[tuple[str, int], str]:
    """The band drawn around the mean curve over ``n`` images: seaborn's ``errorbar``
    argument and its description. Up to 10 images the full range (min to max); beyond, the
    5th to 95th percentile."""
    if n <= 10:
        return ("pi", 100), "the range (minimum to maximum) over the images"
    return ("pi", 90), "the 5th to 95th percentile over the images"


def curve_plot(ax, curves: pd.DataFrame, column: str, band=("pi", 100), log: bool = True,
               ylabel: str | None = None, title: str | None = None, **kwargs):
    """Mean of ``column`` over the attacks against the iteration, one line per method, with
    ``band`` (seaborn ``errorbar``) around it; log y axis by default. Returns ``ax``."""
    import seaborn as sns

    from ..plotting import METHOD_NAMES

    data = curves.assign(method=curves["method"].map(lambda m: METHOD_NAMES.get(m, m)))
    sns.lineplot(data=data, x="iteration", y=column, hue="method", estimator="mean", errorbar=band, ax=ax, **kwargs)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel or column)
    if title:
        ax.set_title(title)
    return ax


def crossing_text(median: float, hit: int, n: int, budget: int) -> str:
    """Words for a :func:`median_crossing` result, e.g. ``"iteration 340 (4 of 4 images)"`` or
    ``"never within 1500 iterations (0 of 4 images)"``."""
    if hit == 0 or not math.isfinite(median):
        return f"never within {budget} iterations (0 of {n} images)"
    return f"iteration {median:.0f} ({hit} of {n} images)"


def paired_verdict(wins: int, n: int) -> str:
    """How a paired comparison over ``n`` images bears on a claim that WDLG is lower (better),
    given that WDLG was lower on ``wins`` of them: ``"supports"`` (more than half),
    ``"does not support"`` (fewer than half), ``"is inconclusive about"`` (exactly half) or
    ``"cannot test"`` (no images). Phrased to follow "this reading ... the claim"."""
    if n <= 0:
        return "cannot test"
    if 2 * wins > n:
        return "supports"
    return "does not support" if 2 * wins < n else "is inconclusive about"
