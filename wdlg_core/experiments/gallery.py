"""Paper Figure 3 (and 4): reconstructions of a few images per dataset, DLG next to WDLG.

:func:`run_gallery` attacks the first ``n_images`` images of each dataset once per method
(batch size 1, every method starting from the same dummy seed), through the results store,
and returns one table row per attack plus the images a figure needs; :func:`summarize` gives
the per-dataset means (MSE, PSNR, SSIM, success rate); :func:`scale_note` says how a run's
scale compares with the paper profile's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..profiles import Profile, get_profile
from ..store import Case, ResultStore
from . import Job, images_fingerprint, run_jobs

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "svhn": "SVHN",
                 "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
from ..methods import METHOD_NAMES  # noqa: E402,F401 (re-exported for the notebooks)
#: Figure 4 (CNN6 gallery) in the quick profile: one CNN6 iteration costs about six times a
#: LeNet one on a CPU, so the page attacks fewer images with fewer iterations than Figure 3.
CNN6_QUICK = {"gallery_images": 1, "iterations": 200}


def resolve_source(dataset: str, n: int, split: str = "test", source: str = "auto", root=None) -> dict:
    """Which source :func:`wdlg_core.data.load_images` will read for ``n`` images, and how
    many images the best matching source holds.

    Follows ``load_images``' rule (first source in preference order holding ``n`` images,
    torchvision files before bundled ones), from :func:`wdlg_core.data.describe_sources`.

    Returns:
        ``{"source", "split", "count"}`` of the chosen source; when no source holds ``n``
        images, the largest matching one (so callers can cap ``n`` at ``count``).

    Raises:
        wdlg_core.data.DataSourceError: no source holds the dataset/split at all.
    """
    from ..data import BUNDLED_SOURCES, DataSourceError, describe_sources

    rows = describe_sources(dataset, root=root)
    if source == "auto":
        tv = [r for r in rows if r["source"] == "torchvision"]
        rows = tv if any(split in ("any", r["split"]) for r in tv) else [r for r in rows if r["source"] in BUNDLED_SOURCES]
    elif source == "bundled":
        rows = [r for r in rows if r["source"] in BUNDLED_SOURCES]
    else:
        rows = [r for r in rows if r["source"] == source]
    if split != "any":
        rows = [r for r in rows if r["split"] == split]
    if not rows:
        raise DataSourceError(f"no source (source={source!r}) holds {dataset} split {split!r}; "
                              "see `wdlg data list` (the bundled SVHN crops need split='any')")
    chosen = next((r for r in rows if r["count"] >= n), max(rows, key=lambda r: r["count"]))
    return {"source": chosen["source"], "split": chosen["split"], "count": int(chosen["count"])}


def single_image_jobs(p: Profile, n_images: int, data_root=None) -> tuple[list[Job], dict, dict]:
    """One attack per method on each of the first ``n_images`` images of every profile dataset.

    The cases (dataset, index, model, seeds, split, source, image fingerprint) are what the
    results store keys on, so every page that builds its jobs here shares stored attacks with
    the others (the gallery and Table 2 do).

    Returns:
        (jobs, originals: dataset -> (n, C, H, W) float32 images, sources: dataset ->
        ``resolve_source``'s dict); ``n`` is capped at what the data source holds.
    """
    from ..data import dataset_info, load_images

    jobs, originals, sources = [], {}, {}
    for ds in p.datasets:
        info = dataset_info(ds)
        src = resolve_source(ds, n_images, p.split, p.source, data_root)
        n = min(n_images, src["count"])
        images, labels = load_images(ds, n, split=p.split, source=p.source, root=data_root)  # (n, C, H, W), (n,)
        originals[ds], sources[ds] = images.numpy(), src
        for i in range(n):
            case = Case(dataset=ds, indices=(i,), model=p.model, model_seed=p.model_seed, split=p.split,
                        source=p.source, num_classes=info.num_classes,
                        images_sha256=images_fingerprint(images[i:i + 1]))
            for method in p.methods:
                jobs.append(Job(p.attack_config(method), case, images[i:i + 1], labels[i:i + 1]))
    return jobs, originals, sources


@dataclass
class Gallery:
    """What :func:`run_gallery` returns.

    Attributes:
        table: one row per attack: dataset, method, index, label, restored_label, mse, psnr
            (dB), ssim, success, iterations_to_success, time (s, attack only), label_accuracy,
            first_loss, final_loss, diverged, key (store record), source, commit (git commit
            the attack was computed at, from its stored provenance).
        originals: dataset -> (N, C, H, W) float32 ground-truth images in [0, 1].
        reconstructions: (dataset, method) -> (N, C, H, W) float32 final reconstructions.
        profile: the effective profile (with the overrides applied).
        sources: dataset -> {"source", "split", "count"} the images came from.
    """

    table: pd.DataFrame
    originals: dict[str, np.ndarray]
    reconstructions: dict[tuple[str, str], np.ndarray]
    profile: Profile
    sources: dict[str, dict] = field(default_factory=dict)


def run_gallery(profile: str | Profile = "quick", datasets=None, model=None, methods=None, n_images=None,
                iterations=None, seed=None, store: ResultStore | None = None, device=None, data_root=None,
                progress: bool | None = True,
                jobs_only: bool = False) -> Gallery:
    """Attack the first ``n_images`` images of each dataset with each method (batch size 1).

    Args:
        profile: a profile name or :class:`Profile`; every other argument left None is taken
            from it (``n_images`` from ``profile.gallery_images``).
        datasets, model, methods, iterations, seed, device: overrides of the profile.
        n_images: images per dataset; capped at what the data source holds (the bundled SVHN
            source has 4), the cap shows in the table.
        store: results store (default ``ResultStore(profile=<profile name>)``).
        data_root: torchvision data root (default ``$WDLG_DATA_ROOT`` or ``./data``).
        progress: tqdm progress bar.

        jobs_only: return the jobs (list of :class:`Job`) without running or loading any
            (the page's ``jobs()``, :mod:`wdlg_core.pages`).

    Returns:
        :class:`Gallery`.

    Raises:
        ValueError: unknown dataset, method, model, or profile (messages list valid names).
    """
    p = get_profile(profile, datasets=datasets, model=model, methods=methods, iterations=iterations,
                    seed=seed, device=device, gallery_images=n_images)
    store = store if store is not None else ResultStore(profile=p.name)
    jobs, originals, sources = single_image_jobs(p, p.gallery_images, data_root)
    if jobs_only:
        return jobs
    results = run_jobs(jobs, store, device=p.device, progress=progress, desc="gallery")

    rows, recs = [], {}
    for job, r in zip(jobs, results):
        ds, method = job.case.dataset, job.config.method
        recs.setdefault((ds, method), []).append(r.reconstruction)
        rows.append({
            "dataset": ds, "method": method, "index": job.case.indices[0],
            "label": int(r.true_labels[0]), "restored_label": int(r.labels[0]),
            "mse": r.mse, "psnr": r.psnr, "ssim": r.ssim, "success": bool(r.success),
            "iterations_to_success": r.iterations_to_success, "time": r.wall_time,
            "label_accuracy": r.label_accuracy, "first_loss": r.first_loss, "final_loss": r.final_loss,
            "diverged": r.diverged, "iterations": r.config.iterations,
            "key": store.key(job.config, job.case), "source": f"{sources[ds]['source']}/{sources[ds]['split']}",
            "commit": (r.meta or {}).get("provenance", {}).get("git_commit"),
        })
    table = pd.DataFrame(rows)
    if len(table):
        table["iterations_to_success"] = table["iterations_to_success"].astype("Int64")
    reconstructions = {k: np.concatenate(v) for k, v in recs.items()}
    return Gallery(table, originals, reconstructions, p, sources)


def scale_note(run: Profile, reference: Profile | None = None) -> str:
    """One sentence on how a gallery run's scale compares with the paper profile's, for the page.

    Compares the images requested per dataset (``gallery_images``; a source holding fewer
    caps them) and the iterations per attack, each with its direction and both values, e.g.
    "up to 2 images per dataset (fewer than the paper profile's 8) with 1500 iterations per
    attack (more than the paper profile's 448)". Fewer images or fewer iterations make the
    page's numbers an illustration, not a measurement, and the sentence says so.

    Args:
        run: the profile the page ran with (overrides applied).
        reference: the profile to compare with (default: ``get_profile("paper")``).
    """
    ref = reference if reference is not None else get_profile("paper")

    def compare(ours: int, theirs: int, what: str) -> str:
        how = "the same as" if ours == theirs else "fewer than" if ours < theirs else "more than"
        return f"{ours} {what} ({how} the {ref.name} profile's {theirs})"

    images = compare(run.gallery_images, ref.gallery_images, "images per dataset")
    scale = (f"This run ({run.name} profile) attacks up to {images} "
             f"with {compare(run.iterations, ref.iterations, 'iterations per attack')}")
    if run.gallery_images < ref.gallery_images or run.iterations < ref.iterations:
        return f"{scale}, so these numbers illustrate rather than measure; success rates at scale belong to Table 2."
    return f"{scale}; success rates over many images belong to Table 2."


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, method) means of a gallery/sweep table.

    Returns:
        Columns: dataset, method, images, mse (mean), mse_std, psnr (mean, dB), ssim (mean),
        success_rate (fraction), label_accuracy (mean), iterations_to_success (median over the
        successful attacks), time (mean s). Datasets keep their order of first appearance.
    """
    order = list(dict.fromkeys(table["dataset"]))
    g = table.groupby(["dataset", "method"], sort=False)
    out = g.agg(images=("mse", "size"), mse=("mse", "mean"), mse_std=("mse", "std"), psnr=("psnr", "mean"),
                ssim=("ssim", "mean"), success_rate=("success", "mean"), label_accuracy=("label_accuracy", "mean"),
                iterations_to_success=("iterations_to_success", lambda s: s.dropna().median() if s.notna().any() else np.nan),
                time=("time", "mean")).reset_index()
    out["dataset"] = pd.Categorical(out["dataset"], categories=order, ordered=True)
    return out.sort_values(["dataset", "method"]).reset_index(drop=True).astype({"dataset": str})


def overall(table: pd.DataFrame, method: str) -> tuple[str, str]:
    """(success rate "50%", mean PSNR "27.3") of ``method`` over a gallery's attacks
    (``table`` with columns method, success, psnr; an infinite PSNR, an exact reconstruction,
    is left out of the mean); ("not run", "not run") when it has none."""
    rows = table[table.method == method]
    if rows.empty:
        return "not run", "not run"
    return f"{rows.success.mean():.0%}", f"{rows.psnr.replace(math.inf, float('nan')).mean():.1f}"


def mean_psnr(frame: pd.DataFrame, method: str, column: str) -> str:
    """Mean of ``frame[column]`` (a PSNR in dB; infinite values left out) over ``method``'s
    rows, as "27.3", or "not run" when none is finite."""
    v = frame.loc[frame.method == method, column].replace(math.inf, float("nan")).astype(float)
    return f"{v.mean():.1f}" if v.notna().any() else "not run"
