"""Table 3: DLG, R-GAP and WDLG (and SAPAG, Inverting Gradients) on LeNet and CNN6, MNIST and
CIFAR-10.

Notebook: ``notebooks/tab03_method_comparison.ipynb``; computations in
:mod:`wdlg_core.experiments.comparison`. R-GAP is not an optimisation attack: it is solved
when the page renders (cached in the store), so it is not among the jobs.
"""
from __future__ import annotations

from ..experiments.comparison import run_comparison
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, seed=None, device=None) -> Profile:
    """The page's profile (the quick profile's own small scale is resolved by ``run_comparison``).

    Raises:
        ValueError: unknown profile (the message lists valid names).
    """
    return get_profile(profile, seed=seed, device=device)


def jobs(profile: str | Profile, n_images=None, iterations=None, methods=None, seed=None, data_root=None) -> list:
    """The optimisation attacks (DLG, WDLG, SAPAG, Inverting Gradients) per network, dataset and image."""
    return run_comparison(settings(profile, seed), n_images=n_images, iterations=iterations, methods=methods,
                          data_root=data_root, jobs_only=True)
