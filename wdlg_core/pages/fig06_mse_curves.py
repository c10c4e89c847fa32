"""Figure 6: the image MSE against the iteration, DLG vs WDLG (CIFAR-10).

Notebook: ``notebooks/fig06_mse_curves.ipynb``. The attacks are Figure 5's
(:mod:`.fig05_loss_curves`), with the same parameters.
"""
from __future__ import annotations

from .fig05_loss_curves import jobs, settings

__all__ = ["jobs", "settings"]
