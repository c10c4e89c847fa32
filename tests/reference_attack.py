"""The one-attack-at-a-time reference loop: the oracle the batched engine is tested against.

Written like the DLG reference code (``torch.optim`` on one attack; one iteration is one
optimiser step). Without a line search (``line_search="none"``) a step has one loss
evaluation; for L-BFGS that is ``torch.optim.LBFGS(max_iter=1)`` with a fixed step ``lr``.
With ``line_search="armijo"`` the step is the single-problem L-BFGS of
``reference_lbfgs.LBFGSReference``. Adam runs ``torch.optim.Adam``, with Inverting Gradients'
signed gradients, ``torch.optim.lr_scheduler.MultiStepLR`` and the box constraint when the
config asks for them. The package runs every attack through ``wdlg_core.engine``; tests
compare it with this loop, which shares none of the engine's optimiser, objective or
recording code (only the loss functions, the label restoration and the final metrics).
"""
from __future__ import annotations

import math
import time

import torch
from torch import nn

from reference_lbfgs import LBFGSReference
from wdlg_core import metrics
from wdlg_core.attacks import make_config
from wdlg_core.config import LR_DECAY_GAMMA, AttackConfig
from wdlg_core.gradients import parameter_gradient, shared_gradient
from wdlg_core.labels import restore_labels
from wdlg_core.losses import make_loss, total_variation
from wdlg_core.models import build_model, num_outputs
from wdlg_core.result import AttackResult, assemble_result


def invert_gradient(model: nn.Module, true_grads: list[torch.Tensor], config: AttackConfig,
                    shape: tuple[int, int, int, int], ground_truth: torch.Tensor,
                    true_labels: torch.Tensor) -> AttackResult:
    """Reconstruct a batch from its shared gradient (the attacker's side).

    Args:
        model: the attacked network at the weights the gradient was computed with.
        true_grads: the (possibly defended) shared gradient, one tensor per parameter.
        config: how to attack.
        shape: (B, C, H, W) of the batch behind the gradient (the attacker knows B and the
            input shape).
        ground_truth: (B, C, H, W) the real images, used only to measure fidelity.
        true_labels: (B,) the real labels, used only to score label restoration.

    Returns:
        An :class:`AttackResult`. A NaN/inf loss stops the attack and marks it diverged
        (failed); the last dummy whose loss was finite is reported.
    """
    device, dtype = true_grads[0].device, true_grads[0].dtype
    b = shape[0]
    gen = torch.Generator().manual_seed(config.seed)  # drawn in float32 on the CPU, whatever the device
    x0 = torch.randn(*shape, generator=gen).to(device, dtype)                             # (B, C, H, W)
    y0 = torch.randn(b, num_outputs(model), generator=gen).to(device, dtype)             # (B, K)
    logistic = getattr(model, "loss_kind", "cross_entropy") == "logistic"
    dx = x0.numel()

    # The optimised variables as one flat vector: the dummy data, then DLG's dummy label
    # (torch.optim.LBFGS flattens its parameters the same way; Adam is elementwise).
    if config.label_mode == "joint":
        v = torch.cat([x0.flatten(), y0.flatten()]).requires_grad_(True)
        restored = None
    else:
        v = x0.flatten().clone().requires_grad_(True)
        restored = restore_labels(model, true_grads, b)

    def unpack(flat):
        x = flat[:dx].view(shape)
        if restored is not None:
            return x, restored
        yl = flat[dx:].view(b, -1)
        return x, torch.sigmoid(yl) if logistic else torch.softmax(yl, dim=-1)

    dummy_x = v[:dx].view(shape)  # a view: follows every update of v

    loss_fn = make_loss(config.matching_loss, config.estimator, critic_steps=config.critic_steps,
                        critic_lr=config.critic_lr, critic_bound=config.critic_bound)
    critic = getattr(loss_fn, "update", None)  # the dual estimator's critic: trained once per iteration
    evals = 0

    def matching_loss(flat):
        nonlocal evals
        evals += 1
        x, target = unpack(flat)
        value = loss_fn(parameter_gradient(model, x, target, create_graph=True), true_grads)
        if config.tv_weight > 0:  # Inverting Gradients' prior on the dummy image
            value = value + config.tv_weight * total_variation(x)
        return value

    def closure(flat=None):  # loss and its gradient w.r.t. the dummy variables only
        flat = (v if flat is None else flat).detach().requires_grad_(True)
        loss = matching_loss(flat)
        return loss.detach(), torch.autograd.grad(loss, flat)[0]

    if config.line_search == "armijo":  # our own algorithm: its single-problem reference
        opt = LBFGSReference(v, lr=config.lr, history_size=config.history_size, line_search="armijo")
        step = lambda: opt.step(closure)  # noqa: E731
    else:
        opt = (torch.optim.LBFGS([v], lr=config.lr, max_iter=1, history_size=config.history_size)
               if config.optimizer == "lbfgs" else torch.optim.Adam([v], lr=config.lr))
        # step decay (AttackConfig.lr_decay): torch's scheduler, stepped after every step
        scheduler = (torch.optim.lr_scheduler.MultiStepLR(opt, list(config.lr_milestones()), gamma=LR_DECAY_GAMMA)
                     if config.lr_decay else None)

        def torch_closure():
            loss, grad = closure()
            v.grad = grad.sign() if config.signed else grad  # signed gradients (Adam only)
            return loss

        def step():
            loss = opt.step(torch_closure)
            if scheduler is not None:
                scheduler.step()
            if config.boxed:  # box constraint: the dummy image back into [0, 1]
                with torch.no_grad():
                    v[:dx].clamp_(0, 1)
            return loss

    def image_mse(x):
        rec = torch.nan_to_num(x.detach(), nan=0.0).clamp(0, 1)
        return float(metrics.mse(rec[metrics.match_order(rec, ground_truth)], ground_truth).mean())

    recorded, losses, mses, snapshots = [], [], [], {}
    if 0 in config.snapshots:
        snapshots[0] = dummy_x.detach().clamp(0, 1).cpu().numpy()
    last_ok = v.detach().clone()  # the last point whose loss was finite (reported on divergence)
    diverged = False
    start = time.perf_counter()
    for it in range(1, config.iterations + 1):
        mse_before = image_mse(dummy_x) if (it - 1) % config.record_every == 0 else None
        if critic is not None:
            x, target = unpack(v.detach())
            critic(parameter_gradient(model, x, target), true_grads)
            if hasattr(opt, "objective_changed"):  # our L-BFGS caches its start point (torch's does not)
                opt.objective_changed()
        before = v.detach().clone()
        loss = float(step().detach())  # the loss at x_(it-1); then x moves to x_it
        if mse_before is not None:
            recorded.append(it - 1), losses.append(loss), mses.append(mse_before)
        if math.isfinite(loss):
            last_ok = before
        if not math.isfinite(loss) or getattr(opt, "diverged", False):
            diverged = True
            break
        if it in config.snapshots:
            snapshots[it] = dummy_x.detach().clamp(0, 1).cpu().numpy()
    if not diverged:  # the loss at the final point costs one more evaluation
        if critic is not None:  # under the final point's own critic, like every other point
            x, target = unpack(v.detach())
            critic(parameter_gradient(model, x, target), true_grads)
        final = float(closure()[0])
        recorded.append(config.iterations), losses.append(final), mses.append(image_mse(dummy_x))
        diverged = not math.isfinite(final)
        if not diverged:
            last_ok = v.detach().clone()
    wall = time.perf_counter() - start

    if restored is not None:
        labels = restored
    else:
        yl = last_ok[dx:].view(b, -1)
        labels = (yl > 0).long().reshape(-1) if logistic else yl.argmax(-1)
    return assemble_result(config, last_ok[:dx].view(shape), labels, restored is None, ground_truth, true_labels,
                           recorded, losses, mses, snapshots, wall, diverged, evals, device)


def reference_attack(images: torch.Tensor, labels: torch.Tensor, *, method: str, model="lenet",
                     optimizer: str | None = None, iterations: int | None = None, seed: int = 0,
                     model_seed: int = 0, num_classes: int | None = None, device: str = "cpu",
                     defense=None, **options) -> AttackResult:
    """:func:`wdlg_core.run_attack`'s contract (iterative methods), run by :func:`invert_gradient`.

    images (B, C, H, W) in [0, 1], labels (B,); no input checks (the package's run_attack has them).
    """
    config = make_config(method, optimizer, iterations, seed, **options)
    images, labels = torch.as_tensor(images), torch.as_tensor(labels).long()
    if isinstance(model, str):
        k = num_classes or (10 if int(labels.max()) < 10 else 100)
        model = build_model(model, tuple(images.shape[1:]), k, seed=model_seed)
    model = model.to(device)
    images = images.to(device, next(model.parameters()).dtype)
    labels = labels.to(device)
    true_grads = shared_gradient(model, images, labels)
    if defense is not None:
        true_grads = defense(true_grads)
    return invert_gradient(model, true_grads, config, tuple(images.shape), images, labels)
