"""DLG, iDLG and WDLG: one optimisation attack, three configurations.

The attacker knows the model (architecture and current weights) and the shared gradient dW of
a batch of B images. It draws dummy data x' ~ N(0, 1) (and for DLG a dummy label
y' ~ N(0, 1)), and minimises a gradient-matching loss D(dW', dW) between the dummy gradient
dW' = d loss(F(x'), y') / dW and dW, w.r.t. x' (and y'):

* DLG (Zhu et al. 2019, paper Algorithm 1): euclidean loss, x' and the soft label
  softmax(y') optimised jointly.
* iDLG (Zhao et al. 2020): the label is restored from dW first (:mod:`wdlg_core.labels`),
  then x' alone is optimised with the euclidean loss.
* WDLG (the paper, Algorithm 2): iDLG's label restoration and the Wasserstein loss
  (:mod:`wdlg_core.losses`).
* Inverting Gradients (Geiping et al. 2020, ``method="ig"``): iDLG's label restoration
  (Geiping et al. take the label as known; for one image the restoration recovers it), the
  cosine loss over all layers plus a total-variation prior on the dummy image, Adam on signed
  gradients with step decay of the learning rate (``torch.optim.lr_scheduler.MultiStepLR``
  here), and the dummy image projected to [0, 1] after every step.
* Any of these with another loss, e.g. SAPAG's Gaussian-kernel distance (``loss="sapag"``).

This module is the one-attack-at-a-time reference, written like the DLG reference code
(``torch.optim`` on one attack). One iteration is one optimiser step. Without a line search
(``line_search="none"``) it has one loss evaluation; for L-BFGS that is
``torch.optim.LBFGS(max_iter=1)`` with a fixed step ``lr`` (DLG's reference calls ``step``
with 20 inner iterations; ours counts each of them as an iteration). With
``line_search="armijo"`` (the profiles' default for L-BFGS) the step is our backtracking
L-BFGS, :class:`wdlg_core.optim.LBFGSReference`, which may evaluate the loss several times.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from . import metrics
from .config import LR_DECAY_GAMMA, AttackConfig
from .gradients import parameter_gradient, shared_gradient
from .labels import restore_labels
from .losses import make_loss, total_variation
from .models import build_model
from .optim import LBFGSReference
from .result import AttackResult


def make_config(method: str, optimizer: str | None = None, iterations: int | None = None,
                seed: int = 0, **options) -> AttackConfig:
    """An :class:`AttackConfig` from keyword arguments (``None`` keeps the default).

    Raises:
        ValueError: an option that is not an AttackConfig field (the message lists them), or
            an invalid value.
    """
    fields = AttackConfig.__dataclass_fields__
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"unknown attack option(s) {unknown}; valid options: {', '.join(fields)}")
    kw = dict(options, method=method, seed=seed)
    if optimizer is not None:
        kw["optimizer"] = optimizer
    if iterations is not None:
        kw["iterations"] = iterations
    return AttackConfig(**kw)


def _num_outputs(model: nn.Module) -> int:
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError(f"{type(model).__name__} has no linear output layer")
    return linear[-1].out_features


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
    y0 = torch.randn(b, _num_outputs(model), generator=gen).to(device, dtype)             # (B, K)
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


def assemble_result(config: AttackConfig, dummy: torch.Tensor, labels: torch.Tensor, labels_follow_images: bool,
                    ground_truth: torch.Tensor, true_labels: torch.Tensor, recorded: list[int],
                    losses: list[float], mses: list[float], snapshots: dict, wall: float, diverged: bool,
                    evals: int, device) -> AttackResult:
    """Final metrics and an :class:`AttackResult` from one attack's raw outcome.

    Shared by this reference loop and the batched engine. ``dummy`` (B, C, H, W) is the last
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


def run_attack(images: torch.Tensor, labels: torch.Tensor, *, method: str, model="lenet",
               optimizer: str | None = None, iterations: int | None = None, seed: int = 0,
               model_seed: int = 0, num_classes: int | None = None, device: str = "cpu",
               defense=None, **options) -> AttackResult:
    """Attack one batch end to end: shared gradient of (images, labels), then inversion.

    Args:
        images: (B, C, H, W) float in [0, 1].
        labels: (B,) int64 class indices.
        method: ``"dlg"``, ``"idlg"``, ``"wdlg"`` or ``"ig"``.
        model: a model name (built with :func:`wdlg_core.models.build_model` and
            ``model_seed``) or an ``nn.Module`` (the attack runs in its dtype).
        optimizer, iterations, seed: see :class:`AttackConfig` (``None`` keeps its default).
        num_classes: classes of a model built by name; default 10, or 100 when a label >= 10.
        device: ``"cpu"`` or ``"cuda"``.
        defense: optional callable applied to the shared gradient (list of tensors) before
            the attacker sees it.
        **options: any other :class:`AttackConfig` field (lr, estimator, snapshots, ...).

    Returns:
        :class:`AttackResult`.

    Raises:
        ValueError: bad shapes, an empty batch, values outside [0, 1] (or NaN), labels outside
            ``0 .. classes - 1``, unknown method/model/option, or a device torch cannot use.
    """
    from .experiments import check_device

    config = make_config(method, optimizer, iterations, seed, **options)
    check_device(device)
    images = torch.as_tensor(images)
    labels = torch.as_tensor(labels)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (B, C, H, W) with B >= 1, got {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if not bool(((images >= 0) & (images <= 1)).all()):  # NaN fails both comparisons
        raise ValueError("images must lie in [0, 1] (no NaN)")
    labels = labels.long()
    if isinstance(model, str):
        k = num_classes or (10 if int(labels.max()) < 10 else 100)
        model = build_model(model, tuple(images.shape[1:]), k, seed=model_seed)
    model = model.to(device)
    images = images.to(device, next(model.parameters()).dtype)  # float32 unless the model is float64
    with torch.no_grad():
        outputs = model(images[:1]).shape[-1]  # (1, K)
    classes = 2 if getattr(model, "loss_kind", "cross_entropy") == "logistic" else outputs  # logistic: 0/1
    if int(labels.min()) < 0 or int(labels.max()) >= classes:
        raise ValueError(f"labels must lie in 0 .. {classes - 1} (the model's classes), got {labels.tolist()}")
    labels = labels.to(device)
    true_grads = shared_gradient(model, images, labels)
    if defense is not None:
        true_grads = defense(true_grads)
    return invert_gradient(model, true_grads, config, tuple(images.shape), images, labels)
