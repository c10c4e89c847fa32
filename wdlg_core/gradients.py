"""The gradient a client shares, and the dummy gradient an attacker computes.

Both are ``list[Tensor]``, one tensor per model parameter in ``model.parameters()`` order,
each with that parameter's shape: the mean over the B images of the training loss's
gradient (federated SGD, paper Eq. 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def training_loss(logits: torch.Tensor, target: torch.Tensor, loss_kind: str = "cross_entropy") -> torch.Tensor:
    """The model's training loss, mean over the batch.

    Args:
        logits: (B, K) model outputs (K = 1 for a logistic model).
        target: hard labels (B,) int64, or soft labels (B, K) probabilities (DLG's dummy
            label after softmax; for the logistic loss (B,) or (B, 1) probabilities of class 1).
        loss_kind: ``"cross_entropy"`` or ``"logistic"`` (the model's ``loss_kind``).

    Returns:
        Scalar tensor.
    """
    if loss_kind == "cross_entropy":
        if target.dtype == torch.long:
            return F.cross_entropy(logits, target)
        return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()  # soft-label cross-entropy (DLG)
    if loss_kind == "logistic":
        return F.binary_cross_entropy_with_logits(logits.reshape(-1), target.reshape(-1).to(logits.dtype))
    raise ValueError(f"unknown loss_kind {loss_kind!r}; valid choices: cross_entropy, logistic")


def parameter_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                       create_graph: bool = False) -> list[torch.Tensor]:
    """Gradient of the training loss on (x, target) w.r.t. every model parameter.

    Args:
        model: the attacked network (its ``loss_kind`` attribute picks the loss).
        x: (B, C, H, W) input images (real or dummy).
        target: labels as in :func:`training_loss`.
        create_graph: keep the graph so the result can be differentiated w.r.t. ``x``
            (what every gradient-matching attack needs: a double backward).

    Returns:
        One tensor per parameter, same shapes as the parameters.
    """
    params = [p for p in model.parameters()]
    loss = training_loss(model(x), target, getattr(model, "loss_kind", "cross_entropy"))
    return list(torch.autograd.grad(loss, params, create_graph=create_graph))


def shared_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """The shared (true) gradient of a batch: what a federated client sends to the server.

    Args:
        model: the network at its current weights.
        images: (B, C, H, W) float32 in [0, 1].
        labels: (B,) int64 class indices (for a logistic model: 0 or 1).

    Returns:
        Detached gradients, one per parameter (mean over the B images).

    Raises:
        ValueError: images not 4-D, or labels not of shape (B,).
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if getattr(model, "loss_kind", "cross_entropy") == "logistic":
        labels = labels.float()
    return [g.detach() for g in parameter_gradient(model, images, labels)]
