"""Table 1: the paper's settings beside the profiles'. It runs no attack.

Notebook: ``notebooks/tab01_settings.ipynb``; computations in
:mod:`wdlg_core.experiments.settings`.
"""
from __future__ import annotations

from ..profiles import Profile, get_profile


def settings(profile: str | Profile, datasets=None, model=None, methods=None, n_images=None, iterations=None,
             seed=None, device=None) -> Profile:
    """The page's profile: ``profile`` with the notebook's overrides (None: the profile's value).

    Raises:
        ValueError: unknown profile, dataset, model or method (the message lists valid names).
    """
    return get_profile(profile, datasets=datasets, model=model, methods=methods, n_images=n_images,
                       iterations=iterations, seed=seed, device=device)


def jobs(profile: str | Profile, datasets=None, model=None, methods=None, n_images=None, iterations=None,
         seed=None, data_root=None) -> list:
    """No attacks: the table compares settings (the parameters are checked all the same)."""
    settings(profile, datasets, model, methods, n_images, iterations, seed)
    return []
