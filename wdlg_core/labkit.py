"""Helpers of the course labs (``course/labs/``): the check cells, a plain gradient-matching
loop that runs the student's own loss, and a chain network that R-GAP can walk through.

The labs call :mod:`wdlg_core` for everything around the one idea the student writes; these
are the few pieces the package did not have in a form a newcomer can read in one sitting.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn


class CheckFailed(AssertionError):
    """A lab's check did not pass; the message says what was expected and gives a hint."""


def check(condition: bool, what: str, hint: str) -> None:
    """Assert ``condition`` for a lab's check cell.

    Args:
        condition: the property the student's result must have.
        what: what was checked, in words (printed when it passes).
        hint: what to look at when it fails.

    Raises:
        CheckFailed: (an AssertionError) ``condition`` is false; the message holds ``what``
            and ``hint``.
    """
    if not bool(condition):
        raise CheckFailed(f"check failed: {what}\nHint: {hint}")
    print(f"ok: {what}")


def _as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], torch.Tensor):
        return np.concatenate([t.detach().cpu().double().numpy().ravel() for t in x])
    return np.asarray(x, dtype=np.float64)


def check_close(got, expected, what: str, hint: str, rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """Assert that ``got`` equals ``expected`` within ``atol + rtol * |expected|`` elementwise.

    Args:
        got, expected: numbers, arrays, tensors, or lists of tensors (a gradient: compared
            entry by entry over all its tensors); the same shape after flattening lists.
        what: what was compared, in words; hint: what to look at when it fails.
        rtol, atol: relative and absolute tolerance (``numpy.isclose``'s).

    Raises:
        CheckFailed: a shape mismatch, a NaN, or a difference beyond the tolerance (the message
            gives the largest difference, ``what`` and ``hint``).
    """
    if got is None:
        raise CheckFailed(f"check failed: {what}: got None (did the function return its result?)\nHint: {hint}")
    a, b = _as_array(got), _as_array(expected)
    if a.shape != b.shape:
        raise CheckFailed(f"check failed: {what}: shape {a.shape}, expected {b.shape}\nHint: {hint}")
    if not np.all(np.isclose(a, b, rtol=rtol, atol=atol)):
        worst = float(np.nanmax(np.abs(a - b))) if np.isfinite(a).all() else math.nan
        raise CheckFailed(f"check failed: {what}: largest difference {worst:.3g} (tolerance rtol={rtol:g}, "
                          f"atol={atol:g})\nHint: {hint}")
    print(f"ok: {what}")


def minimise(objective: Callable[..., torch.Tensor], variables: Sequence[torch.Tensor], steps: int = 40,
             updates_per_step: int = 5, lr: float = 1.0, snapshot_every: int = 0, history_size: int = 100) -> dict:
    """Minimise ``objective(*variables)`` with L-BFGS, DLG's optimiser.

    A readable stand-in, for the labs, for the package's attack loop (:mod:`wdlg_core.engine`), which takes its
    gradient-matching loss by name: here the objective is any function the student writes
    (usually the gradient-matching loss between the dummy gradient and the shared gradient).
    Each step is one call of ``torch.optim.LBFGS.step`` with up to ``updates_per_step``
    L-BFGS updates (torch's ``max_iter``; DLG's reference code keeps torch's default, 20) and
    a strong-Wolfe line search, which keeps the updates stable; the L-BFGS memory carries over
    from one step to the next. Torch may stop a step early once the loss stops changing.

    Args:
        objective: returns a scalar tensor, differentiable w.r.t. ``variables``.
        variables: the tensors to optimise (the dummy data first, e.g. (1, 1, 28, 28), then for
            DLG the dummy label scores (1, K)); updated in place.
        steps: number of steps (>= 1), so at most ``steps * updates_per_step`` updates.
        updates_per_step: L-BFGS updates per step (>= 1).
        lr: L-BFGS step size (DLG's 1.0).
        snapshot_every: keep a copy of ``variables[0]`` (clipped to [0, 1]) before step 0 and
            after every this many steps (0: none).
        history_size: L-BFGS memory (curvature pairs).

    Returns:
        ``{"losses": [loss before step 0, after step 1, ...], "snapshots": {step: (B, C, H, W)
        numpy}, "diverged": bool}``; a NaN/inf loss stops the loop (``diverged`` True).

    Raises:
        ValueError: steps < 1, updates_per_step < 1 or lr <= 0.
    """
    if steps < 1 or updates_per_step < 1 or lr <= 0:
        raise ValueError(f"minimise needs steps >= 1, updates_per_step >= 1 and lr > 0, got {steps}, "
                         f"{updates_per_step}, {lr}")
    variables = [v.requires_grad_(True) for v in variables]
    opt = torch.optim.LBFGS(variables, lr=lr, max_iter=updates_per_step, history_size=history_size,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective(*variables)
        loss.backward()
        return loss

    def snapshot():
        return variables[0].detach().clamp(0, 1).cpu().numpy()

    losses, snapshots, diverged = [], {}, False
    if snapshot_every:
        snapshots[0] = snapshot()
    for step in range(1, steps + 1):
        loss = float(opt.step(closure).detach())  # the loss before this step's updates
        losses.append(loss)
        if not math.isfinite(loss):
            diverged = True
            break
        if snapshot_every and step % snapshot_every == 0:
            snapshots[step] = snapshot()
    if not diverged:
        final = float(objective(*variables).detach())
        losses.append(final)
        diverged = not math.isfinite(final)
    return {"losses": losses, "snapshots": snapshots, "diverged": diverged}


class Chain(nn.Sequential):
    """A plain chain of layers (``nn.Sequential``) that the package's R-GAP accepts.

    :func:`wdlg_core.rgap.rgap_layers` walks a model through its ``sequence()``; this adds it
    to ``nn.Sequential``, plus the ``loss_kind`` that :func:`wdlg_core.gradients.shared_gradient`
    reads (cross-entropy over the last layer's K outputs). Input (B, C, H, W), output (B, K).

    Example: ``Chain(nn.Flatten(), nn.Linear(784, 100, bias=False), nn.LeakyReLU(0.2),
    nn.Linear(100, 10))``.
    """

    loss_kind = "cross_entropy"

    def sequence(self) -> list[nn.Module]:
        """The layers in order."""
        return list(self)
