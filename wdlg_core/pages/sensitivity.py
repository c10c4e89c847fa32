"""Sensitivity: the paper's conclusions under its open choices (optimiser, learning rate,
Wasserstein estimator, iteration reading, success threshold).

Notebook: ``notebooks/sensitivity.ipynb``; computations in
:mod:`wdlg_core.experiments.sensitivity` (its :func:`~wdlg_core.experiments.sensitivity.scale`
gives each profile's default settings, datasets, images and iterations).
"""
from __future__ import annotations

from ..experiments.sensitivity import run_sensitivity
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, seed=None, device=None) -> Profile:
    """The page's baseline profile (the page's scale is resolved by ``run_sensitivity``).

    Raises:
        ValueError: unknown profile (the message lists valid names).
    """
    return get_profile(profile, seed=seed, device=device)


def jobs(profile: str | Profile, settings=None, datasets=None, n_images=None, iterations=None, seed=None,
         data_root=None) -> list:
    """One attack per image, method and setting (``settings``: names of
    :data:`~wdlg_core.experiments.sensitivity.SETTINGS`)."""
    return run_sensitivity(get_profile(profile, seed=seed), settings=settings, datasets=datasets, n_images=n_images,
                           iterations=iterations, data_root=data_root, jobs_only=True)
