"""Table 1: the paper's settings beside the profiles'. It runs no attack.

Notebook: ``notebooks/tab01_settings.ipynb``; computations in
:mod:`wdlg_core.experiments.settings`. Its parameters are Table 2's, resolved the same way.
"""
from __future__ import annotations

from ..profiles import Profile
from .tab02_success_time import settings


def jobs(profile: str | Profile, datasets=None, model=None, methods=None, n_images=None, iterations=None,
         seed=None, data_root=None) -> list:
    """No attacks: the table compares settings (the parameters are checked all the same)."""
    settings(profile, datasets, model, methods, n_images, iterations, seed)
    return []


__all__ = ["jobs", "settings"]
