"""Table 4: batch size 1 against 4 on CIFAR-10, DLG vs WDLG.

Notebook: ``notebooks/tab04_batch_size.ipynb``; computations in
:mod:`wdlg_core.experiments.batches`.
"""
from __future__ import annotations

from ..experiments.batches import run_batch_sweep
from ..profiles import Profile, get_profile

#: The paper's Table 4 methods.
METHODS = ("dlg", "wdlg")


def settings(profile: str | Profile, iterations=None, seed=None, device=None) -> Profile:
    """The page's profile: ``profile`` with the notebook's overrides (None: the profile's value).

    Raises:
        ValueError: unknown profile (the message lists valid names).
    """
    return get_profile(profile, iterations=iterations, seed=seed, device=device)


def jobs(profile: str | Profile, methods=None, n_single=None, n_batches=None, iterations=None, seed=None,
         data_root=None) -> list:
    """The images alone (the first ``n_single``) and the batches of four with distinct labels."""
    return run_batch_sweep(settings(profile, iterations, seed), methods=tuple(methods or METHODS), n_single=n_single,
                           n_batches=n_batches, data_root=data_root, jobs_only=True)
