"""Figures 8-10: the recovery process over the paper's 448 iterations, WDLG with batch size 1
and 4, DLG with batch size 4.

Notebook: ``notebooks/fig08_10_recovery.ipynb``; computations in
:mod:`wdlg_core.experiments.batches`.
"""
from __future__ import annotations

from ..experiments.batches import FIGURE_ITERATIONS, FIGURE_SNAPSHOTS, run_batch_sweep
from ..profiles import Profile, get_profile


def settings(profile: str | Profile, iterations=None, seed=None, device=None) -> Profile:
    """The page's profile: the paper's 448 iterations in the profile's reading
    (``profile.budget(448)`` L-BFGS updates) unless ``iterations`` is given.

    Raises:
        ValueError: unknown profile (the message lists valid names).
    """
    base = get_profile(profile)
    return get_profile(profile, iterations=iterations or base.budget(FIGURE_ITERATIONS), seed=seed, device=device)


def snapshot_iterations(profile: str | Profile, p: Profile, snapshots=None) -> list[int]:
    """The iterations at which the figures show the dummy: ``snapshots`` (default the paper's
    0, 50, 100, 200, 300, 448 in the profile's reading), those within ``p.iterations``, and the last."""
    per = get_profile(profile).updates_per_iteration
    chosen = snapshots if snapshots is not None else [s * per for s in FIGURE_SNAPSHOTS]
    return sorted({int(s) for s in chosen if 0 <= int(s) <= p.iterations} | {p.iterations})


def jobs(profile: str | Profile, n_batches=None, iterations=None, snapshots=None, seed=None, data_root=None) -> list:
    """The batches of four (DLG, WDLG) and each of their images alone, with snapshots."""
    p = settings(profile, iterations, seed)
    return run_batch_sweep(p, methods=("dlg", "wdlg"), n_batches=n_batches, singles="batch_members",
                           snapshots=snapshot_iterations(profile, p, snapshots), data_root=data_root, jobs_only=True)
