"""Figure 3: the inversion gallery on LeNet, DLG vs WDLG, one attack per image and method.

Notebook: ``notebooks/fig03_inversion_gallery.ipynb``; computations in
:mod:`wdlg_core.experiments.gallery`.
"""
from __future__ import annotations

from ..experiments.gallery import run_gallery
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, datasets=None, model=None, methods=None, n_images=None, iterations=None,
             seed=None, device=None) -> Profile:
    """The page's profile: ``profile`` with the notebook's overrides (None: the profile's
    value; ``n_images`` is the gallery's images per dataset, ``profile.gallery_images``).

    Raises:
        ValueError: unknown profile, dataset, model or method (the message lists valid names).
    """
    return get_profile(profile, datasets=datasets, model=model, methods=methods, gallery_images=n_images,
                       iterations=iterations, seed=seed, device=device)


def jobs(profile: str | Profile, datasets=None, model=None, methods=None, n_images=None, iterations=None,
         seed=None, data_root=None) -> list:
    """The gallery's attacks (batch size 1): one per image of each dataset and method."""
    p = settings(profile, datasets, model, methods, n_images, iterations, seed)
    return run_gallery(p, data_root=data_root, jobs_only=True)
