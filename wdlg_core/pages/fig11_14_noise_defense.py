"""Figures 11-14: Gaussian noise on the shared gradient against WDLG, and a sweep over the
noise scale sigma.

Notebook: ``notebooks/fig11_14_noise_defense.ipynb``; computations in
:mod:`wdlg_core.experiments.noise_defense`.
"""
from __future__ import annotations

from ..experiments.noise_defense import PAPER_ITERATIONS, run_panels, run_sweep
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, seed=None, device=None) -> Profile:
    """The page's profile, with the notebook's overrides.

    Raises:
        ValueError: unknown profile (the message lists valid names).
    """
    return get_profile(profile, seed=seed, device=device)


def attack_iterations(p: Profile, iterations=None) -> int:
    """WDLG's updates in the panels and the sweep: the paper's 448 iterations in the profile's
    reading (``p.budget(448)``) unless ``iterations`` is given."""
    return int(iterations or p.budget(PAPER_ITERATIONS))


def jobs(profile: str | Profile, n_images=None, iterations=None, sweep_dataset=None, sweep_sigmas=None,
         sweep_images=None, seed=None, data_root=None) -> list:
    """The panels' attacks (each dataset, its noise scales and sigma = 0) and the sweep's."""
    p = settings(profile, seed)
    its = attack_iterations(p, iterations)
    return (run_panels(p, n_images=n_images, iterations=its, data_root=data_root, jobs_only=True)
            + run_sweep(p, dataset=sweep_dataset, sigmas=sweep_sigmas, n_images=sweep_images, iterations=its,
                        data_root=data_root, jobs_only=True))
