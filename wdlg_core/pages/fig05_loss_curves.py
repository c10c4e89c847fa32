"""Figure 5: the gradient-matching loss against the iteration, DLG vs WDLG (CIFAR-10).

Notebook: ``notebooks/fig05_loss_curves.ipynb``; computations in
:mod:`wdlg_core.experiments.convergence`. Figure 6 (:mod:`.fig06_mse_curves`) reads the same
attacks.
"""
from __future__ import annotations

from ..experiments import convergence as cv
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, dataset=None, model=None, methods=None, n_images=None, iterations=None,
             seed=None, device=None) -> Profile:
    """The page's profile: one dataset (default :data:`~wdlg_core.experiments.convergence.CURVE_DATASET`),
    with the notebook's overrides (None: the profile's value).

    Raises:
        ValueError: unknown profile, dataset, model or method (the message lists valid names).
    """
    return get_profile(profile, datasets=(dataset or cv.CURVE_DATASET,), model=model, methods=methods,
                       n_images=n_images, iterations=iterations, seed=seed, device=device)


def jobs(profile: str | Profile, dataset=None, model=None, methods=None, n_images=None, iterations=None,
         record_every=None, seed=None, data_root=None) -> list:
    """The curves' attacks: one per image and method, recording every ``record_every`` iterations."""
    p = settings(profile, dataset, model, methods, n_images, iterations, seed)
    return cv.run_convergence(p, dataset=p.datasets[0], record_every=record_every, data_root=data_root,
                              jobs_only=True)
