"""Seed 002: DLG, iDLG and WDLG on LeNet, ResNet-18, DenseNet-121 and Inception-v3.

Notebook: ``notebooks/architectures.ipynb``; computations in
:mod:`wdlg_core.experiments.architectures` (its ``STUDY`` gives each profile's scale).
"""
from __future__ import annotations

from ..experiments.architectures import run_architectures
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, seed=None, device=None) -> Profile:
    """The page's profile (the study's scale is resolved by ``study_settings``).

    Raises:
        ValueError: unknown profile (the message lists valid names).
    """
    return get_profile(profile, seed=seed, device=device)


def jobs(profile: str | Profile, archs=None, methods=None, n_images=None, iterations=None, sizes=None, seed=None,
         data_root=None) -> list:
    """One attack per architecture, image and method."""
    return run_architectures(settings(profile, seed), archs=archs, methods=methods, n_images=n_images,
                             iterations=iterations, sizes=sizes, data_root=data_root, jobs_only=True)
