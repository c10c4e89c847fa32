"""Image fidelity and attack success on images in [0, 1].

MSE and PSNR are computed here (one line each); SSIM comes from scikit-image
(``structural_similarity`` with ``data_range=1``, Gaussian-free 7x7 window, channels averaged).
For a batch of B > 1 reconstructions the dummy images come out in any order:
:func:`match_order` pairs each original with its closest reconstruction (Hungarian matching
on pairwise MSE) before any metric is taken.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from skimage.metrics import structural_similarity

from .config import SUCCESS_MSE


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def mse(a, b) -> np.ndarray:
    """Per-image mean squared error. a, b: (B, C, H, W) in [0, 1]. Returns (B,)."""
    a, b = _np(a).astype(np.float64), _np(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return ((a - b) ** 2).reshape(a.shape[0], -1).mean(axis=1)


def psnr(a, b) -> np.ndarray:
    """Per-image PSNR in dB for peak value 1: 10 log10(1 / MSE); inf for identical images. (B,)."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse(a, b))


def ssim(a, b) -> np.ndarray:
    """Per-image structural similarity in [-1, 1] (scikit-image, data_range 1). (B,)."""
    a, b = _np(a).astype(np.float64), _np(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return np.array([structural_similarity(x, y, data_range=1.0, channel_axis=0) for x, y in zip(a, b)])


def match_order(reconstruction, originals) -> np.ndarray:
    """Order of reconstructions that best matches the originals (min total MSE).

    Returns perm (B,) such that ``reconstruction[perm[b]]`` is paired with ``originals[b]``.
    """
    r, o = _np(reconstruction), _np(originals)
    b = r.shape[0]
    if b == 1:
        return np.zeros(1, dtype=np.int64)
    cost = ((o.reshape(b, 1, -1) - r.reshape(1, b, -1)) ** 2).mean(axis=2)  # (B orig, B recon)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)].astype(np.int64)


def success(mse_value: float, threshold: float = SUCCESS_MSE) -> bool:
    """An attack succeeds when its image MSE is finite and below ``threshold``."""
    return bool(math.isfinite(mse_value) and mse_value < threshold)


def label_accuracy(predicted, true) -> float:
    """Fraction of the true labels that the attacker recovered, as multisets (both (B,)).

    For B = 1 this is 1.0 or 0.0. For B > 1 the order is irrelevant: restored labels are not
    tied to particular images.
    """
    from collections import Counter

    p, t = Counter(_np(predicted).tolist()), Counter(_np(true).tolist())
    return sum((p & t).values()) / max(1, sum(t.values()))
