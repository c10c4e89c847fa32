"""The replication summary: every claim of the paper, the paper's value beside ours, with a
verdict. It runs no attack: it reads the other pages' results files.

Notebook: ``notebooks/replication_summary.ipynb``; computations in
:mod:`wdlg_core.experiments.summary`.
"""
from __future__ import annotations

from ..profiles import Profile, get_profile


def jobs(profile: str | Profile) -> list:
    """No attacks."""
    get_profile(profile)
    return []
