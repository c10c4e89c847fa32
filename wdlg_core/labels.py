"""Label restoration: read the true label off the shared gradient (iDLG, Zhao et al. 2020).

For cross-entropy with softmax, the gradient of the last linear layer's weight row k is
(p_k - y_k) * a, where a >= 0 is the previous layer's (sigmoid) activation and p the softmax
output. Only the true class has p_k - y_k < 0, so its row sums to a negative number and every
other row to a positive one. iDLG takes the class whose row sum is smallest.

For a batch of B > 1 images (gradient averaged over the batch) we take the B classes with the
smallest row sums: exact when the B labels are distinct and each true row stays negative, a
heuristic otherwise (repeated labels are not recovered). This extension is ours.

The rule needs a >= 0, which LeNet's sigmoids guarantee; after CNN6's LeakyReLU the
activations can be negative and the restored label can be wrong (label accuracy is reported
with every result).
"""
from __future__ import annotations

import torch
from torch import nn


def last_linear_index(model: nn.Module) -> int:
    """Index, in ``list(model.parameters())``, of the weight of the model's last linear layer.

    Raises:
        ValueError: the model has no ``nn.Linear`` layer.
    """
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError(f"{type(model).__name__} has no linear layer: label restoration needs one")
    weight = linear[-1].weight
    for i, p in enumerate(model.parameters()):
        if p is weight:
            return i
    raise ValueError("the last linear layer's weight is not among the model's parameters")


def restore_labels(model: nn.Module, true_grads: list[torch.Tensor], batch_size: int = 1) -> torch.Tensor:
    """Restore the labels of the attacked batch from the shared gradient.

    Args:
        model: the attacked network (a softmax/cross-entropy classifier with a final linear layer).
        true_grads: the shared gradient, one tensor per parameter.
        batch_size: B, the number of images behind the gradient.

    Returns:
        (B,) int64 labels, sorted by row sum (most negative first).

    Raises:
        ValueError: the model has a logistic (1-output) head, which iDLG's rule does not cover,
            or B exceeds the number of classes.
    """
    if getattr(model, "loss_kind", "cross_entropy") != "cross_entropy":
        raise ValueError("iDLG label restoration needs a cross-entropy (multi-class) head; "
                         f"{type(model).__name__} uses {model.loss_kind!r}: use method 'dlg'")
    row_sums = true_grads[last_linear_index(model)].sum(dim=1)  # (K,)
    if batch_size > row_sums.numel():
        raise ValueError(f"cannot restore {batch_size} labels from {row_sums.numel()} classes")
    return torch.argsort(row_sums)[:batch_size].to(torch.long)
