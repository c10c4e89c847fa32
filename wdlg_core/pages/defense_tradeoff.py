"""Defences: attack success against model accuracy and privacy budget (noise, DP-SGD, pruning).

Notebook: ``notebooks/defense_tradeoff.ipynb``; computations in
:mod:`wdlg_core.experiments.defense_tradeoff`. Training the utility models is not an attack:
it runs (and is cached) when the page renders.
"""
from __future__ import annotations

from ..experiments.defense_tradeoff import run_tradeoff
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, device=None) -> Profile:
    """The page's profile.

    Raises:
        ValueError: unknown profile (the message lists valid names).
    """
    return get_profile(profile, device=device)


def jobs(profile: str | Profile, n_images=None, iterations=None, epochs=None, data_root=None) -> list:
    """WDLG on the MNIST images under every defence setting (``epochs`` changes training only)."""
    return run_tradeoff(settings(profile), n_images=n_images, iterations=iterations, data_root=data_root,
                        jobs_only=True)
