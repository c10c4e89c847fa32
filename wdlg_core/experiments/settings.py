"""Paper Table 1: the paper's training settings next to the settings each profile uses.

No attacks: :func:`settings_table` compares :data:`wdlg_core.paper.TABLE1` with the
profiles of :mod:`wdlg_core.profiles` (and a run's own overrides) and says why each setting
differs; :func:`image_sources` lists, per dataset, which image source a profile reads and how
many images it attacks, from :func:`wdlg_core.data.describe_sources`.
"""
from __future__ import annotations

import inspect
import math

import pandas as pd

from ..config import AttackConfig
from ..data import DATASETS, DataSourceError, describe_sources
from ..paper import FIGURE11_ITERATIONS, TABLE1, TABLE2_ITERATIONS
from ..profiles import Profile, get_profile
from .gallery import DATASET_NAMES, METHOD_NAMES, resolve_source
from .success import PAPER_MACHINE

#: The paper's datasets (Table 1), as our dataset names.
PAPER_DATASETS = tuple(k for name in TABLE1["datasets"].split(", ")
                       for k, v in DATASET_NAMES.items() if v == name)


def line_search_defaults() -> dict:
    """Armijo constants of :class:`wdlg_core.optim.BatchedLBFGS` (its signature's defaults):
    ``max_ls`` (trial steps per iteration), ``c1`` (sufficient decrease), ``shrink``."""
    from ..optim import BatchedLBFGS

    params = inspect.signature(BatchedLBFGS.__init__).parameters
    return {k: params[k].default for k in ("max_ls", "c1", "shrink")}


def _names(keys, table) -> str:
    return ", ".join(table.get(k, k) for k in keys)


def _profile_values(p: Profile) -> dict[str, str]:
    """One profile's value per setting (strings, in the order of :func:`settings_table`)."""
    config = p.attack_config(p.methods[0])
    psnr = 10 * math.log10(1 / p.success_mse)
    return {
        "learning rate": (f"{p.lr:g} (first trial step of each line search)" if p.line_search == "armijo"
                          else f"{p.lr:g} (fixed step)"),
        "optimizer": f"{'L-BFGS' if p.optimizer == 'lbfgs' else p.optimizer}, history {config.history_size}",
        "line search": p.line_search,
        "iterations": str(p.iterations),
        "images": f"{p.n_images} per dataset for statistics, {p.gallery_images} in galleries (capped by the source)",
        "model": p.model,
        "initialisation": f"x' ~ N(0, 1), y' ~ N(0, 1), dummy seed {p.seed} for every method",
        "weights": f"random: every weight and bias ~ U(-0.5, 0.5), model seed {p.model_seed}",
        "datasets": _names(p.datasets, DATASET_NAMES),
        "methods": _names(p.methods, METHOD_NAMES),
        "success": f"final image MSE < {p.success_mse:g} (PSNR > {psnr:.0f} dB)",
        "Wasserstein estimator (WDLG)": p.estimator,
        "device": p.device,
    }


def settings_table(run: Profile | None = None, profiles=("quick", "paper")) -> pd.DataFrame:
    """The paper's Table 1 next to each profile's settings, with why they differ.

    Args:
        run: the profile a notebook runs with, overrides applied; when it differs from the
            named profile it was derived from, a column "this run" is added.
        profiles: profile names shown as columns.

    Returns:
        Columns: setting, paper (Table 1, or what the paper says elsewhere, or "not given"),
        one column per profile (``"<name> profile"``), optionally "this run", and
        explanation. Values are strings.

    Raises:
        ValueError: unknown profile name.
    """
    ls = line_search_defaults()
    shown = {name: _profile_values(get_profile(name)) for name in profiles}
    add_run = run is not None and (run.name not in profiles or run.to_dict() != get_profile(run.name).to_dict())
    quick, paper = get_profile("quick"), get_profile("paper")
    default = AttackConfig()
    paper_col = {
        "learning rate": f"{TABLE1['learning rate']:g}",
        "optimizer": "not given",
        "line search": "not given",
        "iterations": (f"{TABLE1['iterations']} ({TABLE2_ITERATIONS} in Table 2 and Figures 8-14; "
                       f"{FIGURE11_ITERATIONS} in the text on Figure 11)"),
        "images": f"{TABLE1['images']}",
        "model": TABLE1["model"],
        "initialisation": TABLE1["initialisation"],
        "weights": TABLE1["weights"],
        "datasets": TABLE1["datasets"],
        "methods": "DLG, WDLG (iDLG in the ablation, Table 5)",
        "success": "not given: an image counts when it \"converges\"",
        "Wasserstein estimator (WDLG)": "Kantorovich-Rubinstein critic (Algorithm 2)",
        "device": f"not in Table 1; Section 4: {PAPER_MACHINE}",
    }
    why = {
        "learning rate": (f"The paper's fixed step {TABLE1['learning rate']:g} (with an unnamed optimiser) was too slow "
                          f"for colour images within these budgets, and a fixed step of {default.lr:g} (DLG's) blows up "
                          "on some images after reaching them (measured while building the companion, see "
                          "wdlg_core.profiles). The profiles start every line search at "
                          f"step {quick.lr:g} and shorten it until the loss decreases enough."),
        "optimizer": ("The paper does not name its optimiser. DLG, the code WDLG builds on, uses L-BFGS, and so do the "
                      f"profiles (curvature history {default.history_size}, DLG's and torch's default)."),
        "line search": (f"One iteration = one L-BFGS update with Armijo backtracking: try step {quick.lr:g}, multiply it "
                        f"by {ls['shrink']:g} until the loss falls by at least {ls['c1']:g} x step x slope, at most "
                        f"{ls['max_ls']} trials. An iteration therefore costs one or more loss evaluations (counted "
                        "per attack), and the loss never increases."),
        "iterations": (f"The paper profile uses Table 2's {paper.iterations}. The quick profile runs {quick.iterations} "
                       "on fewer images: grey images are reconstructed within a few hundred iterations, colour images "
                       "need thousands (measured: Figure 3 page)."),
        "images": (f"The paper profile asks for {paper.n_images} per dataset, the quick profile for {quick.n_images}; "
                   "both attack the first images of a source in index order, and no more than the source holds "
                   "(table of image sources below)."),
        "model": "DLG's LeNet: three 5x5 sigmoid convolutions and one linear layer (wdlg_core.models).",
        "initialisation": ("As Table 1. Image i of a sweep uses the same dummy seed for every method, so DLG and WDLG "
                           "start from the same dummy image."),
        "weights": "Random, untrained weights as in the paper; the uniform range is DLG's reference code.",
        "datasets": ("The profiles attack the four datasets of the paper's Figure 3 and Table 2; CIFAR-10 (Tables 3-5) "
                     "is attacked on the pages of those tables."),
        "methods": "DLG and WDLG as in Table 2; iDLG is added where the paper's ablation needs it.",
        "success": ("The paper counts an attack successful when its loss falls below a threshold it does not give "
                    "(Section 4.4). The companion counts an attack successful when the final image MSE "
                    "is below the threshold, a level at which the reconstruction is visually indistinguishable."),
        "Wasserstein estimator (WDLG)": (
            "With one shared gradient both measures are single points (our reading of the paper's m samples), and W1 "
            "between two points is their L2 distance. The paper's Eq. 9 and Algorithm 2 take the gradient as one "
            "variable, so the profiles use "
            f"'{default.estimator}': the L2 norm of the whole gradient difference over all parameters (not squared), "
            "the value our reading of the paper's critic estimates. Its gradient points the same way as DLG's squared "
            "loss; L-BFGS's curvature pairs and step lengths differ. The critic itself is the estimator 'dual': the "
            "paper does not define it; ours "
            f"is linear with ||w||_2 <= K (K = {default.critic_bound:g}), trained for {default.critic_steps} "
            "projected ascent steps per iteration, and reaches K x that norm. The sensitivity page also runs "
            "'dirac' (one distance per parameter tensor, summed) and 'sorted' (exact 1-D W1 of each layer's entries) "
            "(wdlg_core.losses)."),
        "device": ("The quick profile is sized for a CPU, the paper profile for a GPU. The results store treats a CPU "
                   "and a GPU result of the same case as the same experiment (the device is recorded with each)."),
    }
    rows = []
    for setting in paper_col:
        row = {"setting": setting, "paper": paper_col[setting]}
        for name in profiles:
            row[f"{name} profile"] = shown[name][setting]
        if add_run:
            row["this run"] = _profile_values(run)[setting]
        row["explanation"] = why[setting]
        rows.append(row)
    return pd.DataFrame(rows)


def image_sources(profiles: dict[str, Profile], data_root=None, datasets=None) -> pd.DataFrame:
    """Per dataset: what the paper attacked, what sources exist here, and what each profile reads.

    Args:
        profiles: column label -> profile (overrides applied).
        data_root: torchvision data root (see :func:`wdlg_core.data.data_root`).
        datasets: datasets to list (default: the paper's Table 1 datasets, then any other
            dataset a profile attacks).

    Returns:
        Columns: dataset, paper images (Table 1), available here ("source/split: count; ..."
        from :func:`wdlg_core.data.describe_sources`), then per profile label the source it
        reads and the images it attacks ("source/split, n of requested"), or why none.
    """
    if datasets is None:
        datasets = list(PAPER_DATASETS) + [d for p in profiles.values() for d in p.datasets if d not in PAPER_DATASETS]
        datasets = list(dict.fromkeys(datasets))
    rows = []
    for ds in datasets:
        avail = describe_sources(ds, root=data_root)
        plan = source_plan(profiles, ds, data_root)
        row = {"dataset": DATASET_NAMES.get(ds, ds),
               "paper images": str(TABLE1["images"]) if ds in PAPER_DATASETS else "-",
               "image shape (C, H, W)": str(DATASETS[ds].shape),
               "available here": "; ".join(f"{r['source']}/{r['split']}: {r['count']}" for r in avail) or "none"}
        for label, src in plan.items():
            if src is None:
                row[label] = "not in the profile's datasets"
            elif not src["source"]:
                row[label] = "no source"
            else:
                row[label] = f"{src['source']}/{src['split']}, {src['attacked']} of {src['requested']}"
        rows.append(row)
    return pd.DataFrame(rows)


def source_plan(profiles: dict[str, Profile], dataset: str, data_root=None) -> dict[str, dict | None]:
    """Which source each profile reads for ``dataset`` and how many images it attacks.

    Returns:
        label -> None when the profile does not attack ``dataset``, else ``{"source",
        "split", "requested", "attacked"}`` (source "" and 0 attacked when no source holds it).
    """
    out = {}
    for label, p in profiles.items():
        if dataset not in p.datasets:
            out[label] = None
            continue
        try:
            src = resolve_source(dataset, p.n_images, p.split, p.source, data_root)
        except DataSourceError:
            out[label] = {"source": "", "split": "", "requested": p.n_images, "attacked": 0}
            continue
        out[label] = {"source": src["source"], "split": src["split"], "requested": p.n_images,
                      "attacked": min(p.n_images, src["count"])}
    return out
