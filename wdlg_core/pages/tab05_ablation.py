"""Table 5: the ablation DLG -> iDLG -> WDLG on LeNet and CIFAR-10.

Notebook: ``notebooks/tab05_ablation.ipynb``; computations in
:mod:`wdlg_core.experiments.ablation`.
"""
from __future__ import annotations

from ..experiments.ablation import run_ablation
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, n_images=None, iterations=None, seed=None, device=None) -> Profile:
    """The page's profile: ``profile`` with the notebook's overrides (None: the profile's value).

    Raises:
        ValueError: unknown profile (the message lists valid names).
    """
    return get_profile(profile, n_images=n_images, iterations=iterations, seed=seed, device=device)


def jobs(profile: str | Profile, n_images=None, iterations=None, seed=None, data_root=None) -> list:
    """The ablation's attacks: DLG, iDLG and WDLG on each CIFAR-10 image (batch size 1)."""
    return run_ablation(settings(profile, n_images, iterations, seed), data_root=data_root, jobs_only=True)
