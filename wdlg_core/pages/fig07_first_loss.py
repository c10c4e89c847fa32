"""Figure 7: the gradient-matching loss of the first iteration, DLG vs WDLG.

Notebook: ``notebooks/fig07_first_loss.ipynb``; computations in
:mod:`wdlg_core.experiments.convergence`.
"""
from __future__ import annotations

from ..experiments import convergence as cv
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, datasets=None, model=None, n_images=None, seed=None, device=None) -> Profile:
    """The page's profile: DLG and WDLG on ``datasets`` (default
    :data:`~wdlg_core.experiments.convergence.FIRST_LOSS_DATASETS`), with the notebook's overrides.

    Raises:
        ValueError: unknown profile, dataset or model (the message lists valid names).
    """
    return get_profile(profile, datasets=datasets or cv.FIRST_LOSS_DATASETS, model=model, methods=("dlg", "wdlg"),
                       n_images=n_images, seed=seed, device=device)


def jobs(profile: str | Profile, datasets=None, model=None, n_images=None, dummies=None, seed=None,
         data_root=None) -> list:
    """One ``iterations=1`` attack per image, dummy seed and method."""
    p = settings(profile, datasets, model, n_images, seed)
    return cv.run_first_loss(p, datasets=p.datasets, dummies=dummies, data_root=data_root, jobs_only=True)
