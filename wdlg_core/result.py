"""What one attack returns: :class:`AttackResult`, and its round trip to JSON + arrays.

The results store (``wdlg_core.store``) writes ``to_record()``'s scalars/curves as JSON and
its arrays as NPZ (no pickle) and rebuilds the result with ``from_record``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import metrics
from .methods import config_from_dict

if TYPE_CHECKING:
    from .config import AttackConfig


@dataclass
class AttackResult:
    """The outcome of one gradient-inversion attack on a batch of B images.

    Arrays are numpy, images in [0, 1] (the dummy data clipped to the image range).

    Attributes:
        config: the configuration that produced it: an :class:`AttackConfig`, or a
            closed-form method's config (``wdlg_core.rgap.RGAPConfig``).
        reconstruction: (B, C, H, W) float32, reordered so that row b matches original b.
        true_labels: (B,) int64 labels of the attacked images.
        labels: (B,) int64 labels the attacker ends with (restored by iDLG, or the argmax of
            DLG's optimised soft label), in the order of ``reconstruction``.
        iterations: (T,) int iteration numbers at which ``losses`` and ``mses`` were recorded
            (0 = the initial dummy).
        losses: (T,) gradient-matching loss at those iterations (loss units of the method).
        mses: (T,) image MSE between clipped dummy and original at those iterations.
        snapshots: {iteration: (B, C, H, W)} copies of the clipped dummy (the attack's dtype,
            float32 unless the model is float64).
        first_loss: gradient-matching loss of the initial dummy (paper Figure 7).
        wall_time: seconds spent in the attack (excluding the shared-gradient computation);
            for attacks run by the batched engine, the batch's time divided by its size N.
        iterations_to_success: first recorded iteration whose MSE is below
            ``config.success_mse``, or None.
        diverged: True if the loss or the dummy became NaN/inf; the attack then stopped
            and counts as failed.
        mse, psnr, ssim: final fidelity (mean over the B images; PSNR in dB for peak 1).
        success: ``mse < config.success_mse`` and not diverged.
        label_accuracy: fraction of the B labels the attacker got right.
        function_evals: number of gradient-matching loss evaluations.
        meta: free-form provenance (versions, device, case description).
    """

    config: AttackConfig
    reconstruction: np.ndarray
    true_labels: np.ndarray
    labels: np.ndarray
    iterations: np.ndarray
    losses: np.ndarray
    mses: np.ndarray
    snapshots: dict[int, np.ndarray]
    first_loss: float
    wall_time: float
    iterations_to_success: int | None
    diverged: bool
    mse: float
    psnr: float
    ssim: float
    success: bool
    label_accuracy: float
    function_evals: int
    meta: dict = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        """Gradient-matching loss at the last recorded iteration (NaN if none)."""
        return float(self.losses[-1]) if len(self.losses) else math.nan

    def summary(self) -> dict:
        """Scalars only: one row of a tidy results table."""
        return {
            "method": self.config.method,
            "mse": self.mse,
            "psnr": self.psnr,
            "ssim": self.ssim,
            "success": self.success,
            "label_accuracy": self.label_accuracy,
            "first_loss": self.first_loss,
            "final_loss": self.final_loss,
            "iterations_to_success": self.iterations_to_success,
            "diverged": self.diverged,
            "wall_time": self.wall_time,
            "function_evals": self.function_evals,
        }

    # --- serialisation (used by the results store) -------------------------------------
    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Split into a JSON-able dict (scalars, curves, config) and named arrays."""
        scalars = {k: _jsonable(v) for k, v in self.summary().items() if k not in ("method", "final_loss")}
        doc = {
            "config": self.config.to_dict(),
            **scalars,
            "iterations": self.iterations.tolist(),
            "losses": [_jsonable(float(v)) for v in self.losses],
            "mses": [_jsonable(float(v)) for v in self.mses],
            "true_labels": self.true_labels.tolist(),
            "labels": self.labels.tolist(),
            "snapshot_iterations": sorted(int(k) for k in self.snapshots),
            "meta": self.meta,
        }
        arrays = {"reconstruction": self.reconstruction}
        for k, v in self.snapshots.items():
            arrays[f"snapshot_{int(k)}"] = v
        return doc, arrays

    @classmethod
    def from_record(cls, doc: dict, arrays: dict[str, np.ndarray]) -> "AttackResult":
        """Inverse of :meth:`to_record`."""
        def num(v):  # None is NaN; infinities are stored as the strings "inf" / "-inf"
            return math.nan if v is None else float(v)
        return cls(
            config=config_from_dict(doc["config"]),
            reconstruction=np.asarray(arrays["reconstruction"]),
            true_labels=np.asarray(doc["true_labels"], dtype=np.int64),
            labels=np.asarray(doc["labels"], dtype=np.int64),
            iterations=np.asarray(doc["iterations"], dtype=np.int64),
            losses=np.asarray([num(v) for v in doc["losses"]], dtype=np.float64),
            mses=np.asarray([num(v) for v in doc["mses"]], dtype=np.float64),
            snapshots={int(k): np.asarray(arrays[f"snapshot_{int(k)}"]) for k in doc["snapshot_iterations"]},
            first_loss=num(doc["first_loss"]),
            wall_time=float(doc["wall_time"]),
            iterations_to_success=doc["iterations_to_success"],
            diverged=bool(doc["diverged"]),
            mse=num(doc["mse"]),
            psnr=num(doc["psnr"]),
            ssim=num(doc["ssim"]),
            success=bool(doc["success"]),
            label_accuracy=float(doc["label_accuracy"]),
            function_evals=int(doc["function_evals"]),
            meta=doc.get("meta", {}),
        )


def _jsonable(v):
    """JSON has no NaN/inf: NaN becomes None, +-inf the strings "inf"/"-inf" (float() reads them)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return None
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else v
    return v


def assemble_result(config: AttackConfig, dummy: torch.Tensor, labels: torch.Tensor, labels_follow_images: bool,
                    ground_truth: torch.Tensor, true_labels: torch.Tensor, recorded: list[int],
                    losses: list[float], mses: list[float], snapshots: dict, wall: float, diverged: bool,
                    evals: int, device) -> AttackResult:
    """Final metrics and an :class:`AttackResult` from one attack's raw outcome.

    Used by the batched engine and by closed-form solvers (R-GAP). ``dummy`` (B, C, H, W) is the last
    finite dummy data; it is clipped to [0, 1] and reordered to match ``ground_truth``;
    ``labels`` (B,) are reordered with it when ``labels_follow_images`` (DLG's per-image dummy
    labels) and kept as they are otherwise (restored labels are not tied to images).
    """
    rec = dummy.detach().clamp(0, 1)
    order = metrics.match_order(rec, ground_truth)
    rec = rec[order]
    if labels_follow_images:
        labels = labels[torch.as_tensor(order, device=labels.device)]
    mse = float(metrics.mse(rec, ground_truth).mean())
    iters_ok = next((i for i, m in zip(recorded, mses) if m < config.success_mse), None)
    return AttackResult(
        config=config,
        reconstruction=rec.cpu().numpy().astype(np.float32),
        true_labels=true_labels.cpu().numpy().astype(np.int64),
        labels=labels.cpu().numpy().astype(np.int64),
        iterations=np.asarray(recorded, dtype=np.int64),
        losses=np.asarray(losses, dtype=np.float64),
        mses=np.asarray(mses, dtype=np.float64),
        snapshots=snapshots,
        first_loss=losses[0] if losses else math.nan,
        wall_time=wall,
        iterations_to_success=None if diverged else iters_ok,
        diverged=diverged,
        mse=mse,
        psnr=float(metrics.psnr(rec, ground_truth).mean()),
        ssim=float(metrics.ssim(rec, ground_truth).mean()),
        success=not diverged and metrics.success(mse, config.success_mse),
        label_accuracy=metrics.label_accuracy(labels, true_labels),
        function_evals=evals,
        meta={"device": str(device)},
    )
