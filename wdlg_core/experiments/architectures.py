"""DLG across architectures (seed paper/002): LeNet, ResNet-18, DenseNet-121, Inception-v3.

Seed 002 (A. Khowaja, "Deep Leakage from Gradients", 2022, ``shared/paper/002_...txt``) runs
DLG on four randomly initialised networks whose ReLUs are replaced by sigmoids: LeNet on
32 px images scaled to [0, 1], ResNet-18 and DenseNet-121 on 224 px and Inception-v3 on
299 px images, the last three with ImageNet normalisation; L-BFGS (lr 1, history 100,
``max_iter`` 20), 300 steps; image MSE vs step. Its conclusions are kept verbatim in
:data:`SEED002_CLAIMS` and checked by :func:`seed_claims`.

What we run (:func:`run_architectures`): for every architecture, the first ``n_images``
CIFAR-10 images, resized (bilinear) to the architecture's input size, attacked once per method
(DLG, iDLG, WDLG) through :func:`wdlg_core.experiments.run_jobs`. The three big networks are
the registry's ``*_dlg`` variants (:class:`wdlg_core.models._Seed002Input`): ImageNet
normalisation as a fixed first layer, so the dummy and the MSE live in [0, 1] pixel space,
and batch-norm with per-batch statistics (train-mode arithmetic, as a freshly built
torchvision model runs in the DLG code; eval-mode running statistics leave a gradient of
~1e-11 w.r.t. the input and the attack never moves). Inception-v3 is built without its
auxiliary classifier: the auxiliary head's 1x1 batch-norm is what made the seed need "2 input
batches"; the main network keeps every feature map above 1x1 at the sizes used here.

Steps: the seed's "step" is one call of ``torch.optim.LBFGS.step`` with ``max_iter=20``, i.e.
up to 20 L-BFGS updates (fewer when torch's tolerances stop it); our iterations are single
updates (:class:`wdlg_core.config.AttackConfig`). :data:`SEED_MAX_ITER` converts.

MSE: per image, mean over pixels and channels of (clip(dummy, 0, 1) - original)^2, both in
[0, 1] pixel space, at the architecture's input size (so the resized original is the target).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..profiles import Profile, get_profile
from ..store import Case, ResultStore
from . import MISSING, Job, images_fingerprint, number_text, run_jobs

#: Architectures of the study, in the seed's table order (easy to hard in the seed's account).
ARCHITECTURES = ("lenet", "resnet18", "densenet121", "inception_v3")
ARCH_NAMES = {"lenet": "LeNet", "resnet18": "ResNet-18", "densenet121": "DenseNet-121",
              "inception_v3": "Inception-v3"}
#: Registry name (:func:`wdlg_core.models.build_model`) of each architecture in the seed's setting.
REGISTRY = {"lenet": "lenet", "resnet18": "resnet18_dlg", "densenet121": "densenet121_dlg",
            "inception_v3": "inception_v3_dlg"}
#: The data attacked: CIFAR-10 (the seed shows natural colour images without naming a dataset).
DATASET = "cifar10"
#: The seed's "steps" and the L-BFGS updates per step (torch's ``max_iter`` in its setup).
SEED_STEPS, SEED_MAX_ITER = 300, 20

#: paper/002's table ("Model / Image size / Format / Model size / Convergence"), verbatim values.
SEED002 = {
    "lenet": {"image_size": 32, "format": "scaled to [0,1]", "model_size": 60_000,
              "convergence": "in about [no number given]"},
    "resnet18": {"image_size": 224, "format": "ImageNet mean/std normalised", "model_size": 11_000_000,
                 "convergence": "requires more than 300 steps to converge due to bigger image size and more "
                                "parameters in the gradients"},
    "densenet121": {"image_size": 224, "format": "ImageNet mean/std normalised", "model_size": 8_100_000,
                    "convergence": "only takes about 50 steps compared to 300 steps in ResNet"},
    "inception_v3": {"image_size": 299, "format": "ImageNet mean/std normalised", "model_size": 6_000_000,
                     "convergence": "did not converge at 300 steps"},
}

#: paper/002's conclusions checked here: key -> (statement quoted from the seed, what we test).
SEED002_CLAIMS = {
    "lenet_order_smaller": (
        "For the same training steps, the MSE for Lenet is 1 order smaller compared to ResNet-18.",
        "final MSE of ResNet-18 / LeNet >= 10 at equal iterations"),
    "densenet_like_resnet": (
        "The MSE [of DenseNet-121] is at the same order of magnitude compared to ResNet-18, both are not as "
        "low as LeNet.",
        "DenseNet-121 / ResNet-18 final MSE within a factor 10, both above LeNet's"),
    "densenet_faster": (
        "Convergences are much faster (only takes about 50 steps compared to 300 steps in ResNet).",
        "DenseNet-121 reaches 90% of its MSE decrease in fewer iterations than ResNet-18"),
    "inception_fails": (
        "Image cannot be reconstructed from the Leakage using InceptionNet v3.",
        "Inception-v3's final MSE is no better than the flat image at the original's mean"),
}

#: Verdict labels.
from ..verdicts import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, PARTLY  # noqa: E402

def _ratio(a: float, b: float) -> float:
    """a / b; NaN when either is NaN (a missing value), inf when b <= 0."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b if b > 0 else math.inf


@dataclass(frozen=True)
class StudySettings:
    """Per-architecture scale of one run: input size (px), iterations, methods; images.

    Attributes:
        sizes: architecture -> square input size in pixels.
        iterations: architecture -> L-BFGS updates per attack.
        methods: architecture -> methods run on it.
        n_images: CIFAR-10 images attacked per architecture and method.
        reductions: human-readable list of what differs from the seed's setup.
    """

    sizes: dict
    iterations: dict
    methods: dict
    n_images: int
    reductions: tuple = ()


_ALL = ("dlg", "idlg", "wdlg")
#: Scale per profile. ``paper``: the seed's sizes and 300 seed steps (6000 updates), all three
#: methods, 8 images, for a GPU. ``quick``: one image, 2-core CPU, about a minute and a half
#: (per-iteration costs measured on that machine, one torch thread: LeNet 32 px 0.02 s,
#: ResNet-18 64 px 0.4 s, DenseNet-121 64 px 1.7 s, Inception-v3 107 px 3.4 s).
STUDY = {
    "paper": StudySettings(
        sizes={"lenet": 32, "resnet18": 224, "densenet121": 224, "inception_v3": 299},
        iterations={a: SEED_STEPS * SEED_MAX_ITER for a in ARCHITECTURES},
        methods={a: _ALL for a in ARCHITECTURES}, n_images=8),
    "quick": StudySettings(
        sizes={"lenet": 32, "resnet18": 64, "densenet121": 64, "inception_v3": 107},
        iterations={"lenet": 300, "resnet18": 40, "densenet121": 10, "inception_v3": 5},
        methods={"lenet": _ALL, "resnet18": ("dlg",), "densenet121": ("dlg",), "inception_v3": ("dlg",)},
        n_images=1),
    # the book of record on a 2-core CPU: LeNet and ResNet-18 at the seed's budget on 4 images;
    # DenseNet-121 and Inception-v3 (hours per attack there) DLG only, with smaller budgets
    "record": StudySettings(
        sizes={"lenet": 32, "resnet18": 64, "densenet121": 64, "inception_v3": 107},
        iterations={"lenet": SEED_STEPS * SEED_MAX_ITER, "resnet18": SEED_STEPS * SEED_MAX_ITER,
                    "densenet121": 400, "inception_v3": 200},
        methods={"lenet": _ALL, "resnet18": ("dlg", "wdlg"), "densenet121": ("dlg",), "inception_v3": ("dlg",)},
        n_images=4),
}


def study_settings(profile: str | Profile, archs=None, methods=None, n_images=None, iterations=None,
                   sizes=None) -> StudySettings:
    """The study's scale for a profile, with overrides, and the list of reductions it implies.

    Args:
        profile: ``"quick"``, ``"paper"`` or a :class:`Profile` (its name picks the scale; other
            names take the quick scale).
        archs: architectures to keep (default all of :data:`ARCHITECTURES`).
        methods: methods for every kept architecture (default: the profile's per-architecture choice).
        n_images: images per architecture and method.
        iterations: an int for all architectures, or a dict architecture -> iterations.
        sizes: a dict architecture -> input size in pixels.

    Returns:
        :class:`StudySettings` restricted to ``archs``.

    Raises:
        ValueError: unknown architecture or method (the message lists the valid names), or a
            non-positive count.
    """
    from ..methods import ITERATIVE as METHODS

    name = profile.name if isinstance(profile, Profile) else str(profile)
    base = STUDY.get(name, STUDY["quick"])
    archs = tuple(ARCHITECTURES if archs is None else ([archs] if isinstance(archs, str) else archs))
    for a in archs:
        if a not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {a!r}; valid choices: {', '.join(ARCHITECTURES)}")
    meth = dict(base.methods)
    if methods is not None:
        methods = (methods,) if isinstance(methods, str) else tuple(methods)
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}; valid choices: {', '.join(METHODS)}")
        meth = {a: methods for a in ARCHITECTURES}
    its = dict(base.iterations)
    if isinstance(iterations, dict):
        its.update(iterations)
    elif iterations is not None:
        its = {a: int(iterations) for a in ARCHITECTURES}
    size = {**base.sizes, **(sizes or {})}
    n = int(n_images) if n_images is not None else base.n_images
    if n < 1 or any(int(its[a]) < 1 for a in archs):
        raise ValueError(f"n_images and iterations must be >= 1, got {n} and {its}")
    reductions = []
    for a in archs:
        seed_size = SEED002[a]["image_size"]
        if size[a] != seed_size:
            reductions.append(f"{ARCH_NAMES[a]}: {size[a]} px instead of the seed's {seed_size} px")
        if its[a] < SEED_STEPS * SEED_MAX_ITER:
            reductions.append(f"{ARCH_NAMES[a]}: {its[a]} L-BFGS updates instead of up to "
                              f"{SEED_STEPS * SEED_MAX_ITER} ({SEED_STEPS} seed steps of {SEED_MAX_ITER})")
        if "dlg" not in meth[a]:
            reductions.append(f"{ARCH_NAMES[a]}: no DLG run (the seed's method)")
    return StudySettings(sizes={a: int(size[a]) for a in archs}, iterations={a: int(its[a]) for a in archs},
                         methods={a: tuple(meth[a]) for a in archs}, n_images=n, reductions=tuple(reductions))


def resize_images(images, size: int):
    """Bilinear resize of (N, C, H, W) images in [0, 1] to (N, C, size, size), clipped to [0, 1].

    The seed rescales and crops its images to 224/299 px; CIFAR-10 images are square, so a
    resize is the whole transform. ``size`` equal to the current size returns the input.
    """
    import torch
    import torch.nn.functional as F

    images = torch.as_tensor(images)
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


@functools.lru_cache(maxsize=32)
def parameter_count(arch: str, size: int, num_classes: int = 10) -> int:
    """Trainable parameters of ``arch`` (its seed-002 variant) for ``size`` px inputs and
    ``num_classes`` outputs (LeNet's linear layer grows with the input; the others do not).

    Raises:
        ValueError: unknown architecture, or a size the network cannot take.
    """
    from ..models import build_model

    if arch not in REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; valid choices: {', '.join(ARCHITECTURES)}")
    return int(sum(p.numel() for p in build_model(REGISTRY[arch], (3, size, size), num_classes).parameters()))


@dataclass
class ArchitectureRun:
    """What :func:`run_architectures` returns.

    Attributes:
        table: one row per attack: arch, model (registry name), size (px), params, method,
            index, label, restored_label, label_accuracy, iterations, mse, psnr, ssim,
            flat_mse (MSE of the flat image at the original's mean: the "no information"
            reference), first_mse, first_loss, final_loss, diverged, function_evals, time (s per attack),
            time_per_iteration (s), time_per_eval (s), iterations_to_90 (first iteration with 90%
            of the MSE decrease done), key, commit.
        curves: one row per recorded iteration: arch, method, index, iteration, mse.
        originals: arch -> (n, 3, size, size) resized originals.
        reconstructions: (arch, method) -> (n, 3, size, size) final reconstructions.
        settings: the :class:`StudySettings` used; profile: the effective profile.
        source: {"source", "split", "count"} of the CIFAR-10 images.
    """

    table: pd.DataFrame
    curves: pd.DataFrame
    originals: dict
    reconstructions: dict
    settings: StudySettings
    profile: Profile
    source: dict = field(default_factory=dict)


def iterations_to_fraction(iterations, mses, fraction: float = 0.9) -> float:
    """First recorded iteration at which ``fraction`` of the curve's total MSE decrease is done.

    With m0 the first and m_end the last value, the first iteration whose MSE is at most
    ``m0 - fraction * (m0 - m_end)``. NaN when the curve does not decrease (m_end >= m0) or is
    empty. Units: iterations (L-BFGS updates).
    """
    its, m = np.asarray(iterations, dtype=float), np.asarray(mses, dtype=float)
    if len(m) < 2 or not m[-1] < m[0]:
        return math.nan
    level = m[0] - fraction * (m[0] - m[-1])
    return float(its[np.argmax(m <= level)])


def run_architectures(profile: str | Profile = "quick", archs=None, methods=None, n_images=None, iterations=None,
                      sizes=None, seed=None, store: ResultStore | None = None, device=None, data_root=None,
                      progress: bool | None = True,
                      jobs_only: bool = False) -> ArchitectureRun:
    """Attack the first ``n_images`` CIFAR-10 images on every architecture with every method.

    Optimiser (L-BFGS, lr, line search), dummy seed, model seed, data split/source and the
    device come from the profile (:func:`wdlg_core.profiles.get_profile`); the scale (sizes,
    iterations, methods, images) from :func:`study_settings`. Every attack has batch size 1 and
    starts from the profile's dummy seed, so methods on one architecture share their dummy.

    Args:
        profile: profile name or :class:`Profile`.
        archs, methods, n_images, iterations, sizes: see :func:`study_settings`.
        seed, device: overrides of the profile.
        store: results store (default ``ResultStore(profile=<profile name>)``).
        data_root: torchvision data root.
        progress: tqdm progress bars.

        jobs_only: return the jobs (list of :class:`Job`) without running or loading any
            (the page's ``jobs()``, :mod:`wdlg_core.pages`).

    Returns:
        :class:`ArchitectureRun`.

    Raises:
        ValueError: unknown architecture/method/profile, or an input size a network cannot
            take (per-batch batch-norm needs every feature map above 1x1).
    """
    from ..data import load_images
    from .gallery import resolve_source

    p = get_profile(profile, seed=seed, device=device)
    s = study_settings(p, archs, methods, n_images, iterations, sizes)
    store = store if store is not None else ResultStore(profile=p.name)
    src = resolve_source(DATASET, s.n_images, p.split, p.source, data_root)
    n = min(s.n_images, src["count"])
    raw, labels = load_images(DATASET, n, split=p.split, source=p.source, root=data_root)  # (n, 3, 32, 32)
    jobs, originals, params = [], {}, {}
    for a in s.sizes:
        imgs = resize_images(raw, s.sizes[a])                                  # (n, 3, size, size)
        originals[a] = imgs.numpy()
        if not jobs_only:  # builds the network: seconds for the large ones
            params[a] = parameter_count(a, s.sizes[a])
        for i in range(n):
            case = Case(dataset=DATASET, indices=(i,), model=REGISTRY[a], model_seed=p.model_seed, split=p.split,
                        source=p.source, num_classes=10, images_sha256=images_fingerprint(imgs[i:i + 1]))
            for m in s.methods[a]:
                jobs.append(Job(p.attack_config(m, iterations=s.iterations[a]), case, imgs[i:i + 1], labels[i:i + 1]))
    if jobs_only:
        return jobs
    results = run_jobs(jobs, store, device=p.device, progress=progress, desc="architectures")

    rows, curves, recs = [], [], {}
    arch_of = {v: k for k, v in REGISTRY.items()}
    for job, r in zip(jobs, results):
        a, m, idx = arch_of[job.case.model], job.config.method, job.case.indices[0]
        orig = np.asarray(job.images, dtype=np.float64)
        recs.setdefault((a, m), []).append(r.reconstruction)
        its, mses = np.asarray(r.iterations), np.asarray(r.mses, dtype=float)
        curves.append(pd.DataFrame({"arch": a, "method": m, "index": idx, "iteration": its, "mse": mses}))
        n_it = int(r.config.iterations)
        rows.append({
            "arch": a, "model": job.case.model, "size": s.sizes[a], "params": params[a], "method": m, "index": idx,
            "label": int(r.true_labels[0]), "restored_label": int(r.labels[0]), "label_accuracy": r.label_accuracy,
            "iterations": n_it, "mse": r.mse, "psnr": r.psnr, "ssim": r.ssim,
            "flat_mse": float(((orig - orig.mean()) ** 2).mean()), "first_mse": float(mses[0]) if len(mses) else math.nan,
            "first_loss": r.first_loss, "final_loss": r.final_loss, "diverged": bool(r.diverged), "function_evals": int(r.function_evals),
            "time": r.wall_time, "time_per_iteration": r.wall_time / n_it,
            "time_per_eval": r.wall_time / max(int(r.function_evals), 1),
            "iterations_to_90": iterations_to_fraction(its, mses),
            "key": store.key(job.config, job.case),
            "commit": (r.meta or {}).get("provenance", {}).get("git_commit"),
        })
    table = pd.DataFrame(rows)
    curve_table = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=["arch", "method", "index", "iteration", "mse"])
    reconstructions = {k: np.concatenate(v) for k, v in recs.items()}
    return ArchitectureRun(table, curve_table, originals, reconstructions, s, p, src)


def summarize_architectures(table: pd.DataFrame) -> pd.DataFrame:
    """Per (architecture, method): means over images, in :data:`ARCHITECTURES` order.

    Returns:
        Columns arch, name, method, size, params, seed_params, seed_size, images, iterations,
        mse (mean final MSE), mse_min, mse_max, flat_mse (mean), psnr, ssim, label_accuracy,
        time_per_iteration (s), time_per_eval (s), iterations_to_90 (median), diverged (count).
    """
    rows = []
    for a in ARCHITECTURES:
        for m in dict.fromkeys(table.loc[table["arch"] == a, "method"]):
            g = table[(table["arch"] == a) & (table["method"] == m)]
            rows.append({
                "arch": a, "name": ARCH_NAMES[a], "method": m, "size": int(g["size"].iloc[0]),
                "params": int(g["params"].iloc[0]), "seed_params": SEED002[a]["model_size"],
                "seed_size": SEED002[a]["image_size"], "images": len(g), "iterations": int(g["iterations"].max()),
                "mse": float(g["mse"].mean()), "mse_min": float(g["mse"].min()), "mse_max": float(g["mse"].max()),
                "flat_mse": float(g["flat_mse"].mean()), "psnr": float(g["psnr"].mean()), "ssim": float(g["ssim"].mean()),
                "label_accuracy": float(g["label_accuracy"].mean()),
                "time_per_iteration": float(g["time_per_iteration"].mean()),
                "time_per_eval": float(g["time_per_eval"].mean()),
                "iterations_to_90": float(g["iterations_to_90"].median()), "diverged": int(g["diverged"].sum()),
            })
    return pd.DataFrame(rows)


def mse_at(curves: pd.DataFrame, arch: str, method: str, iteration: int) -> float:
    """Mean over images of the MSE recorded at ``iteration`` (the last recorded one at or
    before it). NaN if the architecture/method was not run."""
    g = curves[(curves["arch"] == arch) & (curves["method"] == method) & (curves["iteration"] <= iteration)]
    if g.empty:
        return math.nan
    last = g.sort_values("iteration").groupby("index").tail(1)
    return float(last["mse"].mean())


def seed_claims(table: pd.DataFrame, curves: pd.DataFrame, method: str = "dlg") -> pd.DataFrame:
    """Seed 002's conclusions (:data:`SEED002_CLAIMS`) against our numbers for ``method``.

    Architectures are compared at the same number of iterations (the seed: "for the same
    training steps"): the smallest budget among the architectures involved, MSE read off the
    curves there. Verdicts:

    * ``lenet_order_smaller``: ratio r = MSE(ResNet-18) / MSE(LeNet); holds if r >= 10,
      partly if 1 < r < 10, does not hold if r <= 1.
    * ``densenet_like_resnet``: holds if both are above LeNet and their ratio is within
      [1/10, 10]; does not hold otherwise.
    * ``densenet_faster``: iterations to 90% of the MSE decrease (median over images) on
      each network's own budget; holds if DenseNet-121's is smaller, does not hold if larger,
      inconclusive if either curve does not decrease or the budgets differ.
    * ``inception_fails``: holds if Inception-v3's final MSE is at least the flat-image MSE
      (no better than the original's mean colour), does not hold if it is below a tenth of
      it, partly in between; a failure on fewer iterations than the seed's 300 x 20 is
      ``inconclusive``.

    Any claim whose architectures were not run is ``inconclusive`` with the reason.
    A curve that has barely moved (MSE at the compared iteration above 90% of its start) makes
    every ordering claim that compares it ``inconclusive``: the budget was too small to say
    anything (each network a claim compares must have moved). A number that is missing (NaN,
    e.g. a curve that never decreased) makes its claim ``inconclusive`` and reads as
    :data:`MISSING` ("n/a") in the text, never "nan".

    Returns:
        One row per claim: claim, statement (the seed's words), test, at_iteration (the
        update compared at; NaN where the networks are not compared at one update), ours
        (the numbers, as text), value (the main ratio or count; NaN when missing), verdict.
    """
    t = table[table["method"] == method]
    have = set(t["arch"])
    by = {a: t[t["arch"] == a] for a in have}
    its = {a: int(by[a]["iterations"].max()) for a in have}

    def moved(a, it):
        start = float(by[a]["first_mse"].mean())
        return mse_at(curves, a, method, it) < 0.9 * start

    rows = []

    def add(key, at, ours, value, verdict):
        rows.append({"claim": key, "statement": SEED002_CLAIMS[key][0], "test": SEED002_CLAIMS[key][1],
                     "at_iteration": at, "ours": ours, "value": value, "verdict": verdict})

    def missing(key, need):
        lacking = [ARCH_NAMES[a] for a in need if a not in have]
        if lacking:
            add(key, None, f"not run: {', '.join(lacking)}", math.nan, INCONCLUSIVE)
        return bool(lacking)

    if not missing("lenet_order_smaller", ("lenet", "resnet18")):
        at = min(its["lenet"], its["resnet18"])
        le, rn = mse_at(curves, "lenet", method, at), mse_at(curves, "resnet18", method, at)
        r = _ratio(rn, le)
        v = HOLDS if r >= 10 else PARTLY if r > 1 else DOES_NOT_HOLD
        if math.isnan(r) or not (moved("lenet", at) and moved("resnet18", at)):
            v = INCONCLUSIVE
        add("lenet_order_smaller", at, f"LeNet {number_text(le)}, ResNet-18 {number_text(rn)} "
            f"(ratio {number_text(r)})", r, v)
    if not missing("densenet_like_resnet", ("lenet", "resnet18", "densenet121")):
        at = min(its["lenet"], its["resnet18"], its["densenet121"])
        le, rn, dn = (mse_at(curves, a, method, at) for a in ("lenet", "resnet18", "densenet121"))
        r = _ratio(dn, rn)
        v = HOLDS if (dn > le and rn > le and 0.1 <= r <= 10) else DOES_NOT_HOLD
        if math.isnan(r) or math.isnan(le) or not all(moved(a, at) for a in ("lenet", "resnet18", "densenet121")):
            v = INCONCLUSIVE
        add("densenet_like_resnet", at, f"DenseNet-121 {number_text(dn)}, ResNet-18 {number_text(rn)} "
            f"(ratio {number_text(r)}), LeNet {number_text(le)}", r, v)
    if not missing("densenet_faster", ("resnet18", "densenet121")):
        dn, rn = (float(by[a]["iterations_to_90"].median()) for a in ("densenet121", "resnet18"))
        if math.isnan(dn) or math.isnan(rn) or its["densenet121"] != its["resnet18"] \
                or not (moved("densenet121", its["densenet121"]) and moved("resnet18", its["resnet18"])):
            v = INCONCLUSIVE
        else:
            v = HOLDS if dn < rn else DOES_NOT_HOLD if dn > rn else INCONCLUSIVE
        add("densenet_faster", its["densenet121"] if its["densenet121"] == its["resnet18"] else None,
            f"iterations to 90% of the MSE decrease: DenseNet-121 {number_text(dn, 'g')} (of {its['densenet121']}), "
            f"ResNet-18 {number_text(rn, 'g')} (of {its['resnet18']})"
            + (f"; {MISSING}: the MSE did not decrease" if math.isnan(dn) or math.isnan(rn) else ""), dn - rn, v)
    if not missing("inception_fails", ("inception_v3",)):
        g = by["inception_v3"]
        mse, flat = float(g["mse"].mean()), float(g["flat_mse"].mean())
        r = _ratio(mse, flat)
        v = HOLDS if r >= 1 else DOES_NOT_HOLD if r < 0.1 else PARTLY
        if math.isnan(r) or (v != DOES_NOT_HOLD and its["inception_v3"] < SEED_STEPS * SEED_MAX_ITER):
            v = INCONCLUSIVE  # no value, or failing on a smaller budget than the seed's says nothing
        add("inception_fails", its["inception_v3"], f"Inception-v3 final MSE {number_text(mse)}, "
            f"flat image {number_text(flat)} (ratio {number_text(r)})", r, v)
    return pd.DataFrame(rows)


__all__ = ["ARCHITECTURES", "ARCH_NAMES", "ArchitectureRun", "DATASET", "MISSING", "REGISTRY", "SEED002",
           "SEED002_CLAIMS", "SEED_MAX_ITER", "SEED_STEPS", "STUDY", "StudySettings", "iterations_to_fraction",
           "mse_at", "number_text", "parameter_count", "resize_images", "run_architectures", "seed_claims",
           "study_settings", "summarize_architectures"]
