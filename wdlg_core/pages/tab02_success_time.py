"""Table 2: success rate and running time, DLG vs WDLG, with confidence intervals.

Notebook: ``notebooks/tab02_success_time.ipynb``; computations in
:mod:`wdlg_core.experiments.success`.
"""
from __future__ import annotations

from ..experiments.success import run_success
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
         seed=None, confidence=0.95, bootstrap_seed=0, data_root=None) -> list:
    """Table 2's attacks: one per image of each dataset and method (``confidence`` and
    ``bootstrap_seed`` change the statistics, not the attacks)."""
    return run_success(settings(profile, datasets, model, methods, n_images, iterations, seed),
                       data_root=data_root, jobs_only=True)
