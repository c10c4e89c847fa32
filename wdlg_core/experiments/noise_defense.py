"""Paper Section 4.5 (Figures 11-14): Gaussian noise on the shared gradient against WDLG.

The paper adds N(0, sigma^2) to every entry of the shared gradient
(:class:`wdlg_core.defenses.GaussianNoise`) and attacks it with WDLG for 448 iterations:
sigma = 10 on Fashion-MNIST and SVHN (Figure 11), sigma = 2, 4, 10 on CIFAR-100 (Figures
12-14), and describes the images in words (:data:`wdlg_core.paper.NOISE_DEFENSE`).

* :func:`run_panels` repeats the four panels (snapshot grids, plus an undefended sigma = 0
  reference row per dataset that the paper does not show);
* :func:`run_sweep` measures attack quality against sigma for DLG, iDLG and WDLG;
* :func:`leakage_null` and :func:`check_statements` turn the paper's words into a test on
  measured SSIM: an attack "leaks" when its reconstruction is more similar to the private
  image than unrelated images of the same dataset are to it (the 95th percentile of the SSIM
  between distinct images, the "null"); it leaks "fully" when it meets the success threshold.

Units: sigma in gradient units, the same units as the entries of the shared gradient (the
noise page measures their mean absolute value for an untrained LeNet and reports sigma as a
multiple of it); MSE on [0, 1] images; PSNR in dB; SSIM in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..paper import NOISE_DEFENSE
from ..profiles import Profile, get_profile
from ..store import Case, ResultStore
from ..verdicts import INCONCLUSIVE
from . import Job, count_or_default, images_fingerprint, run_jobs
from .batches import interval_mean
from .gallery import resolve_source
from .success import wilson_interval

#: The paper's panels: (figure, dataset, sigmas), WDLG, 448 iterations.
PANELS = (("Figure 11", "fashion_mnist", (10.0,)), ("Figure 11", "svhn", (10.0,)),
          ("Figures 12-14", "cifar100", (2.0, 4.0, 10.0)))
PAPER_ITERATIONS = 448
#: Iterations at which the panels keep a snapshot (the paper shows the recovery up to 448).
SNAPSHOTS = (0, 56, 112, 224, 336, 448)
#: Sweep settings per profile: dataset, sigmas (0 = undefended), images per (method, sigma).
SWEEPS = {
    "quick": {"dataset": "mnist", "sigmas": (0.0, 0.01, 0.1, 10.0), "n_images": 2},
    "paper": {"dataset": "cifar100", "sigmas": (0.0, 0.001, 0.01, 0.1, 0.5, 1.0, 2.0, 4.0, 10.0), "n_images": None},
}
SWEEPS["record"] = SWEEPS["paper"]
METHODS = ("dlg", "idlg", "wdlg")
#: Images per panel by profile (None: the profile's ``gallery_images``).
PANEL_IMAGES = {"quick": 1, "paper": None, "record": None}
#: Leakage levels of :func:`leakage_level`.
NONE, PARTIAL, FULL = "none", "partial", "full"


def gaussian(sigma: float) -> dict | None:
    """``Case.defense`` of the paper's noise: None for sigma = 0 (the undefended case, which
    shares its stored attacks with the other pages)."""
    return None if float(sigma) == 0 else {"name": "gaussian", "sigma": float(sigma)}


def _jobs(p: Profile, dataset: str, n: int, sigmas, methods, iterations: int, snapshots=(), data_root=None):
    """One job per (image, sigma, method) on the first ``n`` images of ``dataset``."""
    from ..data import dataset_info, load_images

    info = dataset_info(dataset)
    src = resolve_source(dataset, n, p.split, p.source, data_root)
    n = min(n, src["count"])
    images, labels = load_images(dataset, n, split=p.split, source=p.source, root=data_root)  # (n, C, H, W)
    jobs = []
    for i in range(n):
        for s in sigmas:
            case = Case(dataset=dataset, indices=(i,), model=p.model, model_seed=p.model_seed, split=p.split,
                        source=p.source, num_classes=info.num_classes,
                        images_sha256=images_fingerprint(images[i:i + 1]), defense=gaussian(s))
            for m in methods:
                cfg = p.attack_config(m, iterations=iterations, snapshots=snapshots)
                jobs.append(Job(cfg, case, images[i:i + 1], labels[i:i + 1]))
    return jobs, images.numpy(), src


def _rows(jobs, results, store) -> pd.DataFrame:
    rows = []
    for job, r in zip(jobs, results):
        d = job.case.defense
        rows.append({
            "dataset": job.case.dataset, "method": job.config.method,
            "sigma": float(d["sigma"]) if d and d["name"] == "gaussian" else 0.0, "index": job.case.indices[0],
            "mse": r.mse, "psnr": r.psnr, "ssim": r.ssim, "success": bool(r.success),
            "label_accuracy": r.label_accuracy, "final_loss": r.final_loss, "diverged": r.diverged,
            "iterations": r.config.iterations, "time": r.wall_time, "key": store.key(job.config, job.case),
            "commit": (r.meta or {}).get("provenance", {}).get("git_commit"),
        })
    return pd.DataFrame(rows)


@dataclass
class Panels:
    """What :func:`run_panels` returns.

    Attributes:
        table: one row per attack (dataset, method, sigma, index, mse, psnr, ssim, success,
            label_accuracy, final_loss, diverged, iterations, time, key, commit).
        snapshots: (dataset, sigma) -> list over images of {iteration: (C, H, W)} snapshots.
        finals: (dataset, sigma) -> (n, C, H, W) final reconstructions.
        originals: dataset -> (n, C, H, W) private images in [0, 1].
        sources: dataset -> ``resolve_source`` dict.
        profile: the effective profile.
    """

    table: pd.DataFrame
    snapshots: dict
    finals: dict
    originals: dict
    sources: dict = field(default_factory=dict)
    profile: Profile | None = None


def run_panels(profile: str | Profile = "quick", n_images=None, iterations: int | None = None,
               reference: bool = True, seed=None, store: ResultStore | None = None, device=None, data_root=None,
               progress: bool | None = True,
               jobs_only: bool = False) -> Panels:
    """The paper's Figures 11-14: WDLG on noisy gradients, snapshots up to ``iterations``.

    Args:
        profile: profile name or :class:`Profile` (``n_images`` default: :data:`PANEL_IMAGES`,
            else the profile's ``gallery_images``).
        n_images: images per panel (capped by the data source: the bundled SVHN has 4).
        iterations: WDLG updates (default: the paper's 448 iterations in the profile's reading,
            ``profile.budget(448)``; snapshots scale with it).
        reference: also attack the undefended gradient (sigma = 0) of each dataset.
        seed, device: profile overrides; store, data_root, progress: as elsewhere.

        jobs_only: return the jobs (list of :class:`Job`) without running or loading any
            (the page's ``jobs()``, :mod:`wdlg_core.pages`).

    Returns:
        :class:`Panels`.
    """
    p = get_profile(profile, seed=seed, device=device)
    store = store if store is not None else ResultStore(profile=p.name)
    n = count_or_default(n_images, PANEL_IMAGES.get(p.name) or p.gallery_images, "n_images")
    iterations = count_or_default(iterations, p.budget(PAPER_ITERATIONS), "iterations")
    snaps = tuple(s * p.updates_per_iteration for s in SNAPSHOTS)
    snaps = tuple(s for s in snaps if s <= iterations) + ((iterations,) if iterations not in snaps else ())
    jobs, originals, sources = [], {}, {}
    for _, ds, sigmas in PANELS:
        sig = ((0.0,) if reference else ()) + tuple(sigmas)
        j, originals[ds], sources[ds] = _jobs(p, ds, n, sig, ("wdlg",), iterations, snaps, data_root)
        jobs += j
    if jobs_only:
        return jobs
    results = run_jobs(jobs, store, device=p.device, progress=progress, desc="noise panels")
    table = _rows(jobs, results, store)
    snapshots, finals = {}, {}
    for (ds, sigma), g in table.groupby(["dataset", "sigma"], sort=False):
        rs = [results[i] for i in g.index]
        snapshots[(ds, sigma)] = [{it: s[0] for it, s in r.snapshots.items()} for r in rs]
        finals[(ds, sigma)] = np.stack([r.reconstruction[0] for r in rs])
    return Panels(table, snapshots, finals, originals, sources, p)


def run_sweep(profile: str | Profile = "quick", dataset=None, sigmas=None, methods=METHODS, n_images=None,
              iterations: int | None = None, seed=None, store: ResultStore | None = None, device=None,
              data_root=None, progress: bool | None = True,
              jobs_only: bool = False) -> tuple[pd.DataFrame, dict]:
    """Attack quality against sigma: every method on the first ``n_images`` images per sigma.

    Defaults come from :data:`SWEEPS` for the profile's name (``quick`` for others); a
    ``n_images`` of None there means the profile's ``n_images``.

        jobs_only: return the jobs (list of :class:`Job`) without running or loading any
            (the page's ``jobs()``, :mod:`wdlg_core.pages`).

    Returns:
        (table as :class:`Panels`' table, the source dict of the dataset).
    """
    p = get_profile(profile, seed=seed, device=device)
    defaults = SWEEPS.get(p.name, SWEEPS["quick"])
    dataset = dataset or defaults["dataset"]
    iterations = count_or_default(iterations, p.budget(PAPER_ITERATIONS), "iterations")
    sigmas = tuple(float(s) for s in (sigmas if sigmas is not None else defaults["sigmas"]))
    if not sigmas or any(s < 0 for s in sigmas):
        raise ValueError(f"sigmas must be one or more values >= 0, got {sigmas}")
    n = count_or_default(n_images, defaults["n_images"] or p.n_images, "n_images")
    store = store if store is not None else ResultStore(profile=p.name)
    jobs, _, src = _jobs(p, dataset, n, sigmas, tuple(methods), iterations, (), data_root)
    if jobs_only:
        return jobs
    results = run_jobs(jobs, store, device=p.device, progress=progress, desc="noise sweep")
    return _rows(jobs, results, store), src


def summarize_sweep(table: pd.DataFrame, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per (method, sigma): attacks, mse / psnr / ssim means with bootstrap intervals
    (``*_low``, ``*_high``; NaN below three attacks), successes, success_rate with Wilson
    success_low / success_high. PSNR is averaged in dB (an exact reconstruction's inf PSNR is
    capped at 100 dB for the mean)."""
    rows = []
    for (m, s), g in table.groupby(["method", "sigma"], sort=True):
        row = {"method": m, "sigma": float(s), "attacks": len(g)}
        for col in ("mse", "psnr", "ssim"):
            v = g[col].astype(float).clip(upper=100.0) if col == "psnr" else g[col].astype(float)
            row[col], row[f"{col}_low"], row[f"{col}_high"] = interval_mean(v, confidence, seed)
        k = int(g["success"].sum())
        row["successes"], row["success_rate"] = k, k / len(g)
        row["success_low"], row["success_high"] = wilson_interval(k, len(g), confidence)
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out["method"] = pd.Categorical(out["method"], [m for m in METHODS if m in set(out["method"])] or None)
        out = out.sort_values(["method", "sigma"]).reset_index(drop=True)
        out["method"] = out["method"].astype(str)
    return out


def leakage_null(images: np.ndarray, quantile: float = 0.95) -> dict:
    """SSIM between distinct private images of one dataset: what "no leakage" looks like.

    Args:
        images: (n, C, H, W) in [0, 1], n >= 2.
        quantile: the threshold's quantile.

    Returns:
        {"pairs", "mean", "threshold" (the quantile), "quantile"}.

    Raises:
        ValueError: fewer than two images.
    """
    from ..metrics import ssim

    images = np.asarray(images)
    if len(images) < 2:
        raise ValueError(f"need at least two images for the SSIM null, got {len(images)}")
    i, j = np.triu_indices(len(images), k=1)
    values = ssim(images[i], images[j])
    return {"pairs": int(len(values)), "mean": float(values.mean()),
            "threshold": float(np.quantile(values, quantile)), "quantile": quantile}


def leakage_level(mean_ssim: float, success_rate: float, null_threshold: float) -> str:
    """``"full"`` when any attack succeeds, ``"partial"`` when the mean SSIM is above the null
    threshold, else ``"none"``."""
    if success_rate > 0:
        return FULL
    return PARTIAL if mean_ssim > null_threshold else NONE


def check_statements(panels: pd.DataFrame, null_threshold: float, dataset: str = "cifar100") -> pd.DataFrame:
    """The paper's words for sigma = 2, 4, 10 (:data:`NOISE_DEFENSE`) against our panel numbers.

    Rules (stated in the book): sigma = 2 "some leakage, not complete" holds when the level is
    ``partial``; sigma = 4 "almost none" holds when the level is not ``full`` and the mean SSIM
    is below sigma = 2's (less leakage than at 2); sigma = 10 "none" holds when the level is
    ``none``. Levels from :func:`leakage_level` on the WDLG attacks of ``dataset``. When
    sigma = 2 was not run, the sigma = 4 statement is tested on "not ``full``" alone (there is
    no sigma = 2 to compare with). When the undefended attack (sigma = 0, if run) does not leak
    fully, a statement that noise stops the leakage cannot be tested: the verdict is then
    "inconclusive".

    Returns:
        One row per sigma (0 first when run, as the reference): sigma, statement, attacks, mse,
        psnr, ssim (means), success_rate, level, verdict ("holds" / "does not hold" /
        "inconclusive"; "reference" for sigma = 0; "not run" without attacks).
    """
    g = panels[(panels["dataset"] == dataset) & (panels["method"] == "wdlg")]
    stats = {}
    for sigma in (0, *NOISE_DEFENSE):
        h = g[g["sigma"] == float(sigma)]
        if len(h):
            stats[sigma] = {"attacks": len(h), "mse": float(h["mse"].mean()),
                            "psnr": float(h["psnr"].astype(float).clip(upper=100).mean()),
                            "ssim": float(h["ssim"].mean()), "success_rate": float(h["success"].mean())}
            stats[sigma]["level"] = leakage_level(stats[sigma]["ssim"], stats[sigma]["success_rate"], null_threshold)
    rows = []
    ref = stats.get(0)
    if ref is not None:
        rows.append({"sigma": 0.0, "statement": "(no noise: the attack the defence must stop)", **ref,
                     "verdict": "reference"})
    for sigma, statement in NOISE_DEFENSE.items():
        s = stats.get(sigma)
        if s is None:
            rows.append({"sigma": float(sigma), "statement": statement, "attacks": 0, "verdict": "not run"})
            continue
        if sigma == 2:
            ok = s["level"] == PARTIAL
        elif sigma == 4:
            # without a sigma = 2 run there is nothing to compare with: "not full" alone (documented)
            ok = s["level"] != FULL and (2 not in stats or s["ssim"] < stats[2]["ssim"])
        else:
            ok = s["level"] == NONE
        verdict = "holds" if ok else "does not hold"
        if ref is not None and ref["level"] != FULL:
            verdict = INCONCLUSIVE
        rows.append({"sigma": float(sigma), "statement": statement, **s, "verdict": verdict})
    return pd.DataFrame(rows)


__all__ = ["FULL", "METHODS", "NONE", "PANELS", "PAPER_ITERATIONS", "PARTIAL", "Panels", "SNAPSHOTS", "SWEEPS",
           "check_statements", "gaussian", "leakage_level", "leakage_null", "run_panels", "run_sweep",
           "summarize_sweep"]


def dataset_null(dataset: str, profile: Profile, data_root=None, n: int = 20) -> dict:
    """:func:`leakage_null` of up to ``n`` unrelated images of ``dataset`` (the profile's split
    and source): the SSIM a reconstruction reaches by chance."""
    from ..data import load_images

    count = min(n, resolve_source(dataset, n, profile.split, profile.source, data_root)["count"])
    images, _ = load_images(dataset, count, split=profile.split, source=profile.source, root=data_root)
    return leakage_null(images.numpy())
