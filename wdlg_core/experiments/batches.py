"""Paper Table 4 and Figures 8-10: batch size 1 vs 4 on CIFAR-10 (LeNet), DLG vs WDLG.

One attack of batch size B sees the gradient averaged over B private images and optimises
B dummy images at once (the batched engine's images (N, B, C, H, W)). :func:`run_batch_sweep`
attacks single images (B = 1) and batches of ``batch_size`` images with each method, through
the results store, and returns one table row per attack plus what the recovery figures need.

Which images:

* single images (B = 1): by default the first ``n_single`` images, built exactly as
  :func:`wdlg_core.experiments.gallery.run_gallery` builds its cases, so the same attacks of
  other pages (e.g. Table 5's DLG and WDLG rows) load from the store; or, with
  ``singles="batch_members"``, the members of the batches (Figures 8-10 compare the same
  images attacked alone and together);
* batches (B = 4): :func:`distinct_label_batches`, consecutive picks of images whose labels
  differ within a batch. Label restoration for B > 1 takes the B classes with the smallest
  row sums of the last layer's weight gradient (:mod:`wdlg_core.labels`), which can only be
  right when the B labels are distinct; every row reports its label accuracy.

The image MSE of a B > 1 attack is taken after pairing each reconstruction with its closest
original (the engine does it, :func:`wdlg_core.metrics.match_order`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..paper import TABLE4
from ..profiles import Profile, get_profile
from ..result import AttackResult
from ..store import Case, ResultStore
from . import Job, images_fingerprint, run_jobs
from .gallery import resolve_source
from .success import bootstrap_mean_interval

#: Dataset of Table 4 and Figures 8-10 (paper Section 4.3).
DATASET = "cifar10"
#: Batch size of the paper's "batch 4" rows.
BATCH_SIZE = 4
#: Iterations of the recovery figures (paper Figures 8-10: "trained 448 times").
FIGURE_ITERATIONS = 448
#: Snapshot iterations of the recovery figures (0 = the initial dummy).
FIGURE_SNAPSHOTS = (0, 50, 100, 200, 300, 448)
#: Where the single images come from (see :func:`run_batch_sweep`).
SINGLES = ("first", "batch_members")


def default_batches(profile: Profile) -> int:
    """Batches of four attacked by default: ``max(2, n_images // 4)`` (quick: 2, paper: 75,
    i.e. as many images in batches as the profile attacks singly)."""
    return max(2, profile.n_images // BATCH_SIZE)


def distinct_label_batches(labels, n_batches: int, batch_size: int = BATCH_SIZE) -> list[tuple[int, ...]]:
    """Up to ``n_batches`` batches of ``batch_size`` image indices with distinct labels.

    Greedy in index order: images are taken in turn and each joins the first open batch that
    does not yet hold its label (a batch closes when full); every image is used at most once.
    The result depends only on the labels in index order, so loading more images never
    changes the first batches.

    Args:
        labels: (M,) integer labels of the available images, in index order.
        n_batches: batches wanted (>= 1).
        batch_size: images per batch (>= 1).

    Returns:
        The complete batches in the order they filled up, each a tuple of ``batch_size``
        increasing indices; fewer than ``n_batches`` when the labels run out.

    Raises:
        ValueError: ``n_batches`` or ``batch_size`` < 1.
    """
    if n_batches < 1 or batch_size < 1:
        raise ValueError(f"need n_batches >= 1 and batch_size >= 1, got {n_batches}, {batch_size}")
    labels = [int(v) for v in np.asarray(labels).ravel()]
    open_batches: list[list[int]] = []
    done: list[tuple[int, ...]] = []
    for i, y in enumerate(labels):
        target = next((b for b in open_batches if all(labels[j] != y for j in b)), None)
        if target is None:
            target = []
            open_batches.append(target)
        target.append(i)
        if len(target) == batch_size:
            open_batches.remove(target)
            done.append(tuple(target))
            if len(done) == n_batches:
                break
    return done


#: Fewest values :func:`interval_mean` gives an interval for (the bootstrap of two values is
#: just their range, not a 95% interval).
MIN_INTERVAL_VALUES = 3


def interval_mean(values, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` (NaN dropped) and its bootstrap interval
    (:func:`wdlg_core.experiments.success.bootstrap_mean_interval`). With fewer than
    :data:`MIN_INTERVAL_VALUES` values the bounds are NaN (no interval; comparisons that use
    it come out "inconclusive")."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    mean = float(x.mean()) if len(x) else math.nan
    if len(x) < MIN_INTERVAL_VALUES:
        return mean, math.nan, math.nan
    low, high = bootstrap_mean_interval(x, confidence=confidence, seed=seed)
    return mean, low, high


@dataclass
class BatchSweep:
    """What :func:`run_batch_sweep` returns.

    Attributes:
        table: one row per attack: method, batch_size, batch (indices joined by commas),
            labels, restored_labels (strings), mse (after matching for B > 1), psnr (dB), ssim,
            success, label_accuracy, first_loss, final_loss, iterations_to_success, time (s per
            attack), function_evals, diverged, iterations, key (store record), commit.
        results: the :class:`AttackResult` of each table row (snapshots, curves).
        originals: batch indices (tuple) -> (B, C, H, W) float32 private images.
        singles: indices attacked alone; batches: the batches attacked together.
        profile: the effective profile; source: {"source", "split", "count"} of the images;
        requested_batches: batches asked for (more than ``len(batches)`` when the data ran out).
    """

    table: pd.DataFrame
    results: list[AttackResult]
    originals: dict[tuple[int, ...], np.ndarray]
    singles: list[int]
    batches: list[tuple[int, ...]]
    profile: Profile
    source: dict = field(default_factory=dict)
    requested_batches: int = 0


def run_batch_sweep(profile: str | Profile = "quick", methods=("dlg", "wdlg"), n_single=None, n_batches=None,
                    batch_size: int = BATCH_SIZE, singles: str = "first", iterations=None, snapshots=(),
                    model=None, seed=None, store: ResultStore | None = None, device=None, data_root=None,
                    progress: bool | None = True,
                    jobs_only: bool = False) -> BatchSweep:
    """Attack CIFAR-10 images alone (B = 1) and in batches of ``batch_size`` with each method.

    Args:
        profile: a profile name or :class:`Profile`; settings left None are taken from it.
        methods: methods to run (``dlg``, ``idlg``, ``wdlg``).
        n_single: images attacked alone when ``singles="first"`` (default ``profile.n_images``),
            capped at what the data source holds; 0 attacks none.
        n_batches: batches of ``batch_size`` (default :func:`default_batches`); capped by the
            distinct-label batches the source allows (``requested_batches`` keeps the request).
        batch_size: images per batch (> 1).
        singles: ``"first"`` (the first ``n_single`` images, the gallery's cases) or
            ``"batch_members"`` (every image of the batches, alone).
        iterations, model, seed, device: overrides of the profile.
        snapshots: iterations at which every attack keeps its dummy (recovery figures).
        store: results store (default ``ResultStore(profile=<profile name>)``).
        data_root: torchvision data root (default ``$WDLG_DATA_ROOT`` or ``./data``).
        progress: tqdm progress bars.

        jobs_only: return the jobs (list of :class:`Job`) without running or loading any
            (the page's ``jobs()``, :mod:`wdlg_core.pages`).

    Returns:
        :class:`BatchSweep`.

    Raises:
        ValueError: unknown ``singles``, ``batch_size`` < 2, or an unknown method, model or
            profile (messages list the valid names).
    """
    from ..data import dataset_info, load_images

    if singles not in SINGLES:
        raise ValueError(f"unknown singles {singles!r}; valid choices: {', '.join(SINGLES)}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (batch size 1 is the singles), got {batch_size}")
    p = get_profile(profile, model=model, iterations=iterations, seed=seed, device=device,
                    methods=tuple(methods))
    store = store if store is not None else ResultStore(profile=p.name)
    n_single = p.n_images if n_single is None else int(n_single)
    requested = default_batches(p) if n_batches is None else int(n_batches)

    # enough images for the singles and for distinct-label batches (greedy needs some slack)
    want = max(n_single, 3 * requested * batch_size, batch_size)
    src = resolve_source(DATASET, want, p.split, p.source, data_root)
    images, labels = load_images(DATASET, min(want, src["count"]), split=p.split, source=p.source,
                                 root=data_root)                       # (M, C, H, W), (M,)
    batches = distinct_label_batches(labels.numpy(), requested, batch_size) if requested > 0 else []
    single_idx = list(range(min(n_single, len(images)))) if singles == "first" \
        else sorted({i for b in batches for i in b})

    info = dataset_info(DATASET)

    def case(idx):
        return Case(dataset=DATASET, indices=idx, model=p.model, model_seed=p.model_seed, split=p.split,
                    source=p.source, num_classes=info.num_classes, images_sha256=images_fingerprint(images[list(idx)]))

    config = {m: p.attack_config(m, snapshots=tuple(snapshots)) for m in p.methods}
    jobs, originals = [], {}
    for idx in [(i,) for i in single_idx] + list(batches):
        originals[idx] = images[list(idx)].numpy()
        for m in p.methods:
            jobs.append(Job(config[m], case(idx), images[list(idx)], labels[list(idx)]))

    if jobs_only:

        return jobs

    results = run_jobs(jobs, store, device=p.device, progress=progress, desc="batch sweep")

    rows = []
    for job, r in zip(jobs, results):
        rows.append({
            "method": job.config.method, "batch_size": len(job.case.indices),
            "batch": ",".join(str(i) for i in job.case.indices),
            "labels": ",".join(str(int(v)) for v in r.true_labels),
            "restored_labels": ",".join(str(int(v)) for v in r.labels),
            "mse": r.mse, "psnr": r.psnr, "ssim": r.ssim, "success": bool(r.success),
            "label_accuracy": r.label_accuracy, "first_loss": r.first_loss, "final_loss": r.final_loss,
            "iterations_to_success": r.iterations_to_success, "time": r.wall_time,
            "function_evals": int(r.function_evals), "diverged": r.diverged, "iterations": r.config.iterations,
            "key": store.key(job.config, job.case),
            "commit": (r.meta or {}).get("provenance", {}).get("git_commit"),
        })
    table = pd.DataFrame(rows)
    if len(table):
        table["iterations_to_success"] = table["iterations_to_success"].astype("Int64")
    return BatchSweep(table, results, originals, single_idx, batches, p, src, requested)


def summarize_batches(table: pd.DataFrame, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per (method, batch size): means with bootstrap intervals, next to the paper's Table 4.

    Returns:
        One row per (method, batch_size), methods in order of first appearance, batch sizes
        increasing: method, batch_size, attacks, images (attacks x batch size), final_loss
        with loss_low/loss_high, mse with mse_low/mse_high (means and ``confidence``
        bootstrap intervals over attacks), success_rate, label_accuracy (mean), time (mean s
        per attack), paper_loss, paper_mse (Table 4; NaN where it has no entry).
    """
    out = []
    order = list(dict.fromkeys(table["method"]))
    for (method, b), g in table.groupby(["method", "batch_size"], sort=False):
        loss, l_lo, l_hi = interval_mean(g["final_loss"], confidence, seed)
        mse, m_lo, m_hi = interval_mean(g["mse"], confidence, seed)
        paper = TABLE4.get(method, {}).get(int(b), {})
        out.append({
            "method": method, "batch_size": int(b), "attacks": len(g), "images": len(g) * int(b),
            "final_loss": loss, "loss_low": l_lo, "loss_high": l_hi,
            "mse": mse, "mse_low": m_lo, "mse_high": m_hi,
            "success_rate": float(g["success"].mean()), "label_accuracy": float(g["label_accuracy"].mean()),
            "time": float(g["time"].mean()),
            "paper_loss": paper.get("loss", math.nan), "paper_mse": paper.get("mse", math.nan),
        })
    df = pd.DataFrame(out)
    if len(df):
        df["_m"] = df["method"].map(order.index)
        df = df.sort_values(["_m", "batch_size"]).drop(columns="_m").reset_index(drop=True)
    return df


def comparisons(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's statements about Table 4 and Figures 8-10, checked on ours and on its numbers.

    Each statement compares two (method, batch size) cells on one quantity (lower is better):
    "WDLG below DLG" at batch 1 and at batch 4 (Section 4.3's text, for loss and MSE) and
    "batch 1 below batch 4" for each method (Figures 8 vs 9). Ours is judged by
    :func:`wdlg_core.experiments.success.verdict` on the bootstrap intervals ("holds",
    "does not hold", "inconclusive" when they overlap); the paper's by its point values.

    Returns:
        One row per statement with both cells present: statement, quantity, ours_a, ours_b
        (the two means), direction (of the two means: "holds" / "does not hold"), verdict
        (of the intervals), paper_a, paper_b, paper ("holds" / "does not hold" / "not
        reported").
    """
    from .success import DOES_NOT_HOLD, HOLDS, verdict

    cells = {(r.method, r.batch_size): r for r in summary.itertuples()}
    names = {"dlg": "DLG", "idlg": "iDLG", "wdlg": "WDLG"}
    pairs = []
    for b in sorted({k[1] for k in cells}):
        pairs.append((f"WDLG below DLG at batch {b}", ("wdlg", b), ("dlg", b)))
    bs = sorted({k[1] for k in cells})
    for m in dict.fromkeys(k[0] for k in cells):
        for b1, b2 in zip(bs, bs[1:]):
            pairs.append((f"{names.get(m, m)}: batch {b1} below batch {b2}", (m, b1), (m, b2)))
    rows = []
    for statement, a, b in pairs:
        if a not in cells or b not in cells:
            continue
        ra, rb = cells[a], cells[b]
        for q, lo, hi, pcol in (("final loss", "loss_low", "loss_high", "paper_loss"),
                                ("image MSE", "mse_low", "mse_high", "paper_mse")):
            col = "final_loss" if q == "final loss" else "mse"
            pa, pb = getattr(ra, pcol), getattr(rb, pcol)
            paper = "not reported" if (math.isnan(pa) or math.isnan(pb)) else (HOLDS if pa < pb else DOES_NOT_HOLD)
            oa, ob = getattr(ra, col), getattr(rb, col)
            rows.append({
                "statement": statement, "quantity": q, "ours_a": oa, "ours_b": ob,
                "direction": "n/a" if (math.isnan(oa) or math.isnan(ob)) else (HOLDS if oa < ob else DOES_NOT_HOLD),
                "verdict": verdict((getattr(ra, lo), getattr(ra, hi)), (getattr(rb, lo), getattr(rb, hi)),
                                   higher_is_better=False),
                "paper_a": pa, "paper_b": pb, "paper": paper,
            })
    return pd.DataFrame(rows)


def snapshot_mses(result: AttackResult, original: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Snapshots of one attack reordered to follow the originals, and their per-image MSE.

    The dummies of a B > 1 attack come in no particular order; the pairing of the final
    snapshot with the originals (:func:`wdlg_core.metrics.match_order`) is applied to every
    snapshot, so row b follows one dummy image through the iterations.

    Args:
        result: an attack with snapshots; original: (B, C, H, W) its private images.

    Returns:
        (order (B,), {iteration: (B,) image MSE of the reordered snapshot}).

    Raises:
        ValueError: the attack kept no snapshots.
    """
    from ..metrics import match_order, mse

    if not result.snapshots:
        raise ValueError("the attack kept no snapshots (AttackConfig.snapshots is empty)")
    last = result.snapshots[max(result.snapshots)]
    order = match_order(last, original)
    return order, {it: mse(s[order], original) for it, s in sorted(result.snapshots.items())}


__all__ = ["BATCH_SIZE", "DATASET", "FIGURE_ITERATIONS", "FIGURE_SNAPSHOTS", "MIN_INTERVAL_VALUES", "BatchSweep",
           "comparisons", "default_batches", "distinct_label_batches", "interval_mean", "run_batch_sweep",
           "snapshot_mses", "summarize_batches"]


def recovery_grid(results: dict, originals: dict, table: pd.DataFrame, method: str, b: int, batch: tuple,
                  iterations) -> tuple[dict, np.ndarray, dict]:
    """The snapshots of one setting of Figures 8-10 for the images ``batch``, one row per image.

    Args:
        results: (method, batch size, image indices) -> AttackResult of the sweep.
        originals: image indices -> (n, C, H, W) private images (``sweep.originals``).
        table: the sweep's table (columns batch "i,j,..", labels "a,b,..").
        method, b: the setting (batch size 1: the images attacked one by one).
        batch: the image indices shown.
        iterations: snapshot iterations.

    Returns:
        (snapshots {iteration: (n, C, H, W)}, originals (n, C, H, W), captions): each batch
        attack's dummies reordered to follow the private image they end closest to, and
        captions with each snapshot's image MSE and each image's index and label.
    """
    from ..metrics import mse as image_mse

    if b == 1:
        parts = [results[(method, 1, (i,))] for i in batch]
        snaps = {it: np.concatenate([p.snapshots[it] for p in parts]) for it in iterations}
    else:
        r = results[(method, b, batch)]
        order, _ = snapshot_mses(r, originals[batch])
        snaps = {it: r.snapshots[it][order] for it in iterations}
    original = originals[batch]
    captions = {f"it {it}": [f"MSE {v:.1e}" for v in image_mse(s, original)] for it, s in snaps.items()}
    labels = table.loc[table.batch == ",".join(map(str, batch)), "labels"].iloc[0].split(",")
    captions["ground truth"] = [f"index {i}, label {y}" for i, y in zip(batch, labels)]
    return snaps, original, captions


__all__ += ["recovery_grid"]
