"""Figure 4: the inversion gallery on CNN6, DLG vs WDLG.

Notebook: ``notebooks/fig04_inversion_gallery_cnn6.ipynb``; computations in
:mod:`wdlg_core.experiments.gallery`. CNN6 costs about six times LeNet per iteration, so the
quick profile attacks fewer images for fewer iterations (:data:`CNN6_QUICK`).
"""
from __future__ import annotations

from ..experiments.gallery import CNN6_QUICK, run_gallery
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, datasets=None, methods=None, n_images=None, iterations=None, seed=None,
             device=None) -> Profile:
    """The page's profile: model CNN6, with the notebook's overrides (None: the profile's value;
    in the quick profile :data:`CNN6_QUICK`'s images and iterations).

    Raises:
        ValueError: unknown profile, dataset or method (the message lists valid names).
    """
    quick = get_profile(profile).name == "quick"
    return get_profile(profile, datasets=datasets, model="cnn6", methods=methods, seed=seed, device=device,
                       gallery_images=n_images or (CNN6_QUICK["gallery_images"] if quick else None),
                       iterations=iterations or (CNN6_QUICK["iterations"] if quick else None))


def jobs(profile: str | Profile, datasets=None, methods=None, n_images=None, iterations=None, seed=None,
         data_root=None) -> list:
    """The CNN6 gallery's attacks: one per image of each dataset and method."""
    return run_gallery(settings(profile, datasets, methods, n_images, iterations, seed), data_root=data_root,
                       jobs_only=True)
