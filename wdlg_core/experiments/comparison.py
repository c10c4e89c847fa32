"""Paper Table 3: image MSE (mean +/- std) of DLG, R-GAP and WDLG on LeNet and CNN6, MNIST and
CIFAR-10, measured here on the same images, plus SAPAG and Inverting Gradients and the time
per attack.

The paper does not say how it obtained its R-GAP row; here every method attacks the same
images of the same randomly initialised network:

* optimisation attacks through :func:`wdlg_core.experiments.run_jobs` (batched engine, results
  store): DLG, WDLG, SAPAG (``method="sapag"``: SAPAG's Gaussian-kernel
  distance with DLG's joint optimisation of the label) and Inverting Gradients (``method="ig"``: cosine
  distance, TV prior, Adam with step decay, box [0, 1]); every one of them starts from the same
  dummy (the profile's seed);
* R-GAP (:mod:`wdlg_core.rgap`), closed form, on the CPU, stored under its own config
  (``method: "rgap"``).

Networks. LeNet is DLG's (biases, sigmoids, 10 classes); MNIST enters it as 1x28x28. CNN6 is
R-GAP's body with our 10-class bias-free head (``cnn6``), so that DLG, WDLG (whose iDLG label
restoration needs a multi-class head), SAPAG, IG and R-GAP all attack one network. R-GAP's own
CNN6 has one logistic output; with ``rgap_binary`` the table also has R-GAP on that network
(``cnn6_binary``) with the binary label "class >= 5". CNN6 takes 3x32x32 inputs (its first
convolution is 3 -> 12 in R-GAP's code), so MNIST digits are replicated to three channels and
zero-padded from 28 to 32 pixels (2 on each side): :func:`prepare_images`, and their MSE is
taken over that 3x32x32 image, padding included (the attack reconstructs all of it). The paper does not
say how it fed MNIST to CNN6, nor which head or label it used; its images, weights and
iteration budget are not given either, so only orders of magnitude and orderings compare.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..paper import TABLE3
from ..profiles import Profile, get_profile
from ..store import Case, ResultStore
from . import MISSING, Job, check_device, count_or_default, images_fingerprint, number_text, run_jobs
from .batches import interval_mean
from .success import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, verdict

#: Table 3's columns, in the paper's order: (model, dataset).
CASES = (("lenet", "mnist"), ("cnn6", "mnist"), ("lenet", "cifar10"), ("cnn6", "cifar10"))
#: Table 3's rows (the paper's methods).
PAPER_METHODS = ("dlg", "rgap", "wdlg")
#: Every method of the page, in display order ("rgap_binary": R-GAP on R-GAP's 1-output CNN6).
METHODS = ("dlg", "wdlg", "rgap", "rgap_binary", "sapag", "ig")
#: The page's iterative (optimisation) methods, run by the batched engine.
OPTIMISATION = ("dlg", "wdlg", "sapag", "ig")
LABELS = {"dlg": "DLG", "wdlg": "WDLG", "rgap": "R-GAP", "rgap_binary": "R-GAP (1-output CNN6)",
          "sapag": "SAPAG", "ig": "Inverting Gradients"}
CASE_LABELS = {c: f"{'LeNet' if c[0] == 'lenet' else 'CNN6'} + {'MNIST' if c[1] == 'mnist' else 'CIFAR-10'}"
               for c in CASES}
#: Quick-profile scale of this page (the CPU budget of the whole book): images per case and
#: iterations of the optimisation attacks per model (None: the profile's). CNN6 costs about
#: six times LeNet per iteration on a CPU, so it gets a smaller budget in the quick profile.
#: The paper profile takes both from the profile.
QUICK = {"n_images": 3, "iterations": {"lenet": None, "cnn6": 100}}


def prepare_images(images, model: str):
    """The images as ``model`` takes them.

    Args:
        images: (N, C, H, W) float32 in [0, 1].
        model: ``lenet`` (unchanged) or ``cnn6`` / ``cnn6_binary`` (1-channel images are
            replicated to 3 channels and 28-pixel images zero-padded to 32x32, 2 pixels per side).

    Returns:
        (N, C', H', W') float32 tensor in [0, 1].

    Raises:
        ValueError: an unknown model or an image size CNN6 cannot take (not 28 or 32 pixels).
    """
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(images)
    if model == "lenet":
        return x
    if model not in ("cnn6", "cnn6_binary"):
        raise ValueError(f"unknown model {model!r} for Table 3; valid choices: lenet, cnn6, cnn6_binary")
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[-1] == 28:
        x = F.pad(x, (2, 2, 2, 2))
    if tuple(x.shape[1:]) != (3, 32, 32):
        raise ValueError(f"CNN6 takes 3x32x32 images; got {tuple(x.shape[1:])}")
    return x.contiguous()


def binary_labels(labels):
    """R-GAP's binary label for the 1-output CNN6: 1 for classes 5-9, 0 for classes 0-4."""
    return (labels >= 5).long()


@dataclass
class Comparison:
    """What :func:`run_comparison` returns.

    Attributes:
        table: one row per attack: model, dataset, method, index, label, mse, psnr (dB), ssim,
            success, label_accuracy, time (s per attack), iterations (None for R-GAP), key.
        originals: (model, dataset) -> (N, C, H, W) images as the model takes them.
        reconstructions: (model, dataset, method) -> (N, C, H, W) final reconstructions.
        rgap_layers: (model, dataset, index) -> R-GAP's per-layer reports (rank, residual...).
        profile: the effective profile; n_images: this page's scale; iterations: model ->
            iterations of the optimisation attacks (see :attr:`iterations_text`).
        methods: the methods run (the optional ones only when available).
    """

    table: pd.DataFrame
    originals: dict
    reconstructions: dict
    rgap_layers: dict
    profile: Profile
    n_images: int
    iterations: dict
    methods: tuple = field(default_factory=tuple)

    @property
    def iterations_text(self) -> str:
        """``"448"`` when every model ran the same budget, else ``"1500 (LeNet), 200 (CNN6)"``."""
        values = set(self.iterations.values())
        if len(values) == 1:
            return str(values.pop())
        return ", ".join(f"{its} ({'LeNet' if m == 'lenet' else 'CNN6'})" for m, its in self.iterations.items())


def available_methods() -> tuple[str, ...]:
    """:data:`METHODS` of this page that the method registry holds (``rgap_binary`` is R-GAP
    on another network)."""
    from ..methods import METHODS as REGISTRY

    return tuple(m for m in METHODS if m.removesuffix("_binary") in REGISTRY)


def attack_config(p: Profile, method: str, iterations: int):
    """The AttackConfig of an optimisation method of this page (dlg, wdlg, sapag, ig).

    Raises:
        ValueError: a method that is not an optimisation attack of this page.
    """
    if method in OPTIMISATION:
        return p.attack_config(method, iterations=iterations)
    raise ValueError(f"unknown optimisation method {method!r}; valid choices: {', '.join(OPTIMISATION)}")


def run_comparison(profile: str | Profile = "quick", n_images=None, iterations=None, methods=None,
                   store: ResultStore | None = None, device=None, data_root=None,
                   progress: bool | None = True,
                   jobs_only: bool = False) -> Comparison:
    """Attack the first ``n_images`` test images of MNIST and CIFAR-10 on LeNet and CNN6 with
    every method (batch size 1).

    Args:
        profile: a profile name or :class:`Profile`; settings left None come from it, except
            that the quick profile uses :data:`QUICK` (images per case, iterations).
        n_images: images per (model, dataset); capped by the data source.
        iterations: iterations of the optimisation attacks.
        methods: subset of :func:`available_methods` (default: all of them).
        store: results store (default ``ResultStore(profile=<profile name>)``).
        device: torch device of the optimisation attacks (R-GAP always runs on the CPU).
        data_root: torchvision data root.
        progress: progress bars.

        jobs_only: return the jobs (list of :class:`Job`) without running or loading any
            (the page's ``jobs()``, :mod:`wdlg_core.pages`).

    Returns:
        :class:`Comparison`.

    Raises:
        ValueError: a method that is not available (the message lists the available ones).
    """
    import torch

    from ..data import dataset_info, load_images
    from ..models import build_model
    from ..rgap import RGAPConfig, run_rgap_cached
    from .gallery import resolve_source

    p = get_profile(profile, device=device)
    quick = p.name == "quick"
    n_images = count_or_default(n_images, QUICK["n_images"] if quick else p.n_images, "n_images")
    if iterations is not None:
        its = count_or_default(iterations, None, "iterations")
        per_model = {m: its for m, _ in CASES}
    else:
        per_model = {m: int((QUICK["iterations"].get(m) if quick else None) or p.iterations) for m, _ in CASES}
    avail = available_methods()
    methods = tuple(methods or avail)
    bad = [m for m in methods if m not in avail]
    if bad:
        raise ValueError(f"method(s) {bad} not available; valid choices here: {', '.join(avail)}")
    if not jobs_only:
        check_device(p.device)
    store = store or ResultStore(profile=p.name)
    opt = [m for m in methods if m in OPTIMISATION]

    jobs, meta, originals, cases = [], [], {}, {}
    for model, ds in CASES:
        info = dataset_info(ds)
        src = resolve_source(ds, n_images, p.split, p.source, data_root)
        n = min(n_images, src["count"])
        raw, labels = load_images(ds, n, split=p.split, source=p.source, root=data_root)
        images = prepare_images(raw, model)
        originals[(model, ds)] = images.numpy()
        for i in range(n):
            case = Case(dataset=ds, indices=(i,), model=model, model_seed=p.model_seed, split=p.split,
                        source=p.source, num_classes=info.num_classes,
                        images_sha256=images_fingerprint(images[i:i + 1]))
            cases[(model, ds, i)] = (case, images[i:i + 1], labels[i:i + 1])
            for m in opt:
                jobs.append(Job(attack_config(p, m, per_model[model]), case, images[i:i + 1], labels[i:i + 1]))
                meta.append((model, ds, m, i, int(labels[i])))
    if jobs_only:
        return jobs
    results = run_jobs(jobs, store, device=p.device, progress=progress, desc="Table 3") if jobs else []

    rows, recs, layers = [], {}, {}

    def add(model, ds, method, i, label, res, key, its):
        rows.append({"model": model, "dataset": ds, "method": method, "index": i, "label": label,
                     "mse": res.mse, "psnr": res.psnr, "ssim": res.ssim, "success": res.success,
                     "label_accuracy": res.label_accuracy, "time": res.wall_time, "iterations": its, "key": key})
        recs.setdefault((model, ds, method), []).append(res.reconstruction[0])

    for (model, ds, m, i, label), job, res in zip(meta, jobs, results):
        add(model, ds, m, i, label, res, store.key(job.config, job.case), per_model[model])

    torch_threads = torch.get_num_threads()
    for method in [m for m in methods if m in ("rgap", "rgap_binary")]:
        cfg = RGAPConfig(success_mse=p.success_mse)
        for (model, ds, i), (case, image, label) in cases.items():
            if method == "rgap_binary":
                if model != "cnn6":
                    continue
                case = Case(**{**case.to_dict(), "indices": case.indices, "model": "cnn6_binary", "num_classes": 1})
                label = binary_labels(label)
            net = build_model(case.model, tuple(image.shape[1:]), case.num_classes or 10, seed=case.model_seed)
            res, _ = run_rgap_cached(store, cfg, case, image, label, net)
            add(model, ds, method, i, int(label[0]), res, store.key(cfg.to_dict(), case), None)
            layers[(model, ds, i, method)] = res.meta.get("rgap", {}).get("layers", [])
    torch.set_num_threads(torch_threads)
    table = pd.DataFrame(rows)
    reconstructions = {k: np.stack(v) for k, v in recs.items()}
    return Comparison(table, originals, reconstructions, layers, p, n_images, per_model, methods)


def summarize(table: pd.DataFrame, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean +/- std of the image MSE per (method, case), with a bootstrap interval of the mean,
    the time per attack and the paper's Table 3 values.

    Returns:
        One row per (method, model, dataset) present: method, label, model, dataset, case,
        attacks, mse_mean, mse_std (sample std, ddof 1; NaN for one attack), mse_low,
        mse_high (bootstrap interval of the mean; NaN below three attacks), mse_median,
        success_rate, time_mean (s per attack), paper_mean, paper_std (NaN where the paper
        has no value: SAPAG, IG, the 1-output R-GAP).
    """
    rows = []
    for method in METHODS:
        for model, ds in CASES:
            g = table[(table["method"] == method) & (table["model"] == model) & (table["dataset"] == ds)]
            if g.empty:
                continue
            mean, lo, hi = interval_mean(g["mse"], confidence, seed)
            paper = TABLE3.get(method, {}).get((model, ds), (math.nan, math.nan))
            rows.append({"method": method, "label": LABELS[method], "model": model, "dataset": ds,
                         "case": CASE_LABELS[(model, ds)], "attacks": len(g), "mse_mean": mean,
                         "mse_std": float(g["mse"].std(ddof=1)) if len(g) > 1 else math.nan,
                         "mse_low": lo, "mse_high": hi, "mse_median": float(g["mse"].median()),
                         "success_rate": float(g["success"].mean()), "time_mean": float(g["time"].mean()),
                         "paper_mean": paper[0], "paper_std": paper[1]})
    return pd.DataFrame(rows)


def claims(summary: pd.DataFrame) -> pd.DataFrame:
    """Table 3's orderings, per case: the paper's and ours.

    Claims checked (lower MSE is better): "WDLG beats DLG" and "WDLG beats R-GAP" (the paper's
    numbers give WDLG below DLG in all four columns and below R-GAP in two of four; its text
    claims parity with R-GAP, "almost consistent", so that row orders its means). Ours is
    judged on the bootstrap intervals of the mean MSE with
    :func:`wdlg_core.experiments.success.verdict` (inconclusive below three attacks).

    Returns:
        One row per (claim, case): claim, case, model, dataset, paper_a, paper_b (the paper's
        means), paper ("holds" / "does not hold" by the paper's own means), ours_a, ours_b
        (our means), ours_direction ("holds" when our mean of the first is lower), verdict.
    """
    rows = []
    by = summary.set_index(["method", "model", "dataset"])
    for a, b in (("wdlg", "dlg"), ("wdlg", "rgap")):
        for model, ds in CASES:
            if (a, model, ds) not in by.index or (b, model, ds) not in by.index:
                continue
            ra, rb = by.loc[(a, model, ds)], by.loc[(b, model, ds)]
            pa, pb = TABLE3[a][(model, ds)][0], TABLE3[b][(model, ds)][0]
            rows.append({
                "claim": f"{LABELS[a]} beats {LABELS[b]}", "case": CASE_LABELS[(model, ds)], "model": model,
                "dataset": ds, "paper_a": pa, "paper_b": pb, "paper": HOLDS if pa < pb else DOES_NOT_HOLD,
                "ours_a": float(ra["mse_mean"]), "ours_b": float(rb["mse_mean"]),
                "ours_direction": HOLDS if ra["mse_mean"] < rb["mse_mean"] else DOES_NOT_HOLD,
                "verdict": verdict((ra["mse_low"], ra["mse_high"]), (rb["mse_low"], rb["mse_high"]),
                                   higher_is_better=False),
            })
    return pd.DataFrame(rows)


def display_table(summary: pd.DataFrame, paper: bool = False) -> pd.DataFrame:
    """Table 3's layout: one row per method, one column per case, "mean ± std" strings (ours,
    or the paper's with ``paper=True``; "n/a" where there is no value)."""
    def fmt(m, s):
        if number_text(m) == MISSING:
            return MISSING
        return f"{m:.3g} ± {s:.2g}" if not math.isnan(s) else f"{m:.3g}"

    out = {}
    for method in [m for m in METHODS if m in set(summary["method"])]:
        row = {}
        for model, ds in CASES:
            g = summary[(summary["method"] == method) & (summary["model"] == model) & (summary["dataset"] == ds)]
            if g.empty:
                row[CASE_LABELS[(model, ds)]] = MISSING
                continue
            r = g.iloc[0]
            row[CASE_LABELS[(model, ds)]] = fmt(r["paper_mean"], r["paper_std"]) if paper else fmt(r["mse_mean"], r["mse_std"])
        out[LABELS[method]] = row
    return pd.DataFrame(out).T


def display_time_success(summary: pd.DataFrame) -> pd.DataFrame:
    """Time per attack and success rate in :func:`display_table`'s layout: one row per method,
    columns ("time per attack (s)", case) with 2 decimals and ("success rate", case) as a
    percentage; "n/a" where a method did not attack a case (e.g. the 1-output R-GAP on LeNet)
    or the value is NaN, as in :func:`display_table`."""
    blocks = {"time per attack (s)": ("time_mean", ".2f"), "success rate": ("success_rate", ".0%")}
    out = {}
    for method in [m for m in METHODS if m in set(summary["method"])]:
        row = {}
        for block, (col, spec) in blocks.items():
            for model, ds in CASES:
                g = summary[(summary["method"] == method) & (summary["model"] == model) & (summary["dataset"] == ds)]
                row[(block, CASE_LABELS[(model, ds)])] = MISSING if g.empty else number_text(g.iloc[0][col], spec)
        out[LABELS[method]] = row
    return pd.DataFrame.from_dict(out, orient="index")


__all__ = ["CASES", "CASE_LABELS", "Comparison", "INCONCLUSIVE", "LABELS", "METHODS", "PAPER_METHODS", "QUICK",
           "attack_config", "available_methods", "binary_labels", "claims", "display_table", "display_time_success",
           "prepare_images", "run_comparison", "summarize"]
