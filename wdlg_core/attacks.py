"""One attack contract for every method: :func:`run_attack`.

The attacker knows the model (architecture and current weights) and the shared gradient dW of
a batch of B images, and reconstructs the batch. Which method does it, and how, is declared
in the registry (:mod:`wdlg_core.methods`):

* an iterative method (DLG, iDLG, WDLG, Inverting Gradients, SAPAG) draws dummy data
  x' ~ N(0, 1) (and for DLG and SAPAG a dummy label y' ~ N(0, 1)) and minimises its
  gradient-matching loss D(dW', dW) w.r.t. x' (and y'). It runs in the batched engine
  (:mod:`wdlg_core.engine`) as a batch of one attack: there is one attack loop in the
  package. One iteration is one optimiser step (for L-BFGS one update, see
  :class:`wdlg_core.config.AttackConfig`).
* a closed-form method (R-GAP) calls its solver once.

The tests compare the engine with an independent one-attack loop written like the DLG
reference code (``tests/reference_attack.py``).
"""
from __future__ import annotations

import torch

from .config import AttackConfig
from .methods import get_method
from .result import AttackResult


def make_config(method: str, optimizer: str | None = None, iterations: int | None = None,
                seed: int = 0, **options) -> AttackConfig:
    """An :class:`AttackConfig` of an iterative method from keyword arguments (``None`` keeps
    the default).

    Raises:
        ValueError: an unknown or closed-form method, an option that is not an AttackConfig
            field (the message lists them), or an invalid value.
    """
    kw = dict(options, seed=seed)
    if optimizer is not None:
        kw["optimizer"] = optimizer
    if iterations is not None:
        kw["iterations"] = iterations
    m = get_method(method)
    if not m.iterative:
        raise ValueError(f"method {method!r} is closed form: it has no optimiser, iterations or seed "
                         f"(configure it with get_method({method!r}).config())")
    return m.config(**kw)


def check_images(images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` (B, C, H, W) in [0, 1] and ``labels`` (B,) as tensors (labels int64).

    Raises:
        ValueError: bad shapes, an empty batch, or values outside [0, 1] (or NaN).
    """
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (B, C, H, W) with B >= 1, got {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if not bool(((images >= 0) & (images <= 1)).all()):  # NaN fails both comparisons
        raise ValueError("images must lie in [0, 1] (no NaN)")
    return images, labels.long()


def run_attack(images: torch.Tensor, labels: torch.Tensor, *, method: str, model="lenet",
               optimizer: str | None = None, iterations: int | None = None, seed: int | None = None,
               model_seed: int = 0, num_classes: int | None = None, device: str = "cpu",
               defense=None, progress: bool | None = False, **options) -> AttackResult:
    """Attack one batch end to end with any registered method: the shared gradient of
    (images, labels), then the reconstruction.

    Args:
        images: (B, C, H, W) float in [0, 1].
        labels: (B,) int64 class indices (0/1 for a logistic model).
        method: a name of :data:`wdlg_core.methods.METHODS` (dlg, idlg, wdlg, ig, sapag, rgap).
        model: a model name (built with :func:`wdlg_core.models.build_model` and
            ``model_seed``) or an ``nn.Module`` (the attack runs in its dtype).
        optimizer, iterations, seed: see :class:`AttackConfig` (``None`` keeps its default;
            iterative methods only).
        num_classes: classes of a model built by name; default 10, or 100 when a label >= 10.
        device: ``"cpu"`` or ``"cuda"``.
        defense: optional callable applied to the shared gradient (list of tensors) before
            the attacker sees it (e.g. ``wdlg_core.defenses.make_defense("gaussian", sigma=0.1).bind(0)``).
        progress: a progress bar over iterations (iterative methods).
        **options: any other field of the method's config (AttackConfig: lr, estimator,
            snapshots, ...; R-GAP: label, rank_rtol, success_mse).

    Returns:
        :class:`AttackResult` (a diverged attack is a failed result, never an exception).

    Raises:
        ValueError: bad shapes, an empty batch, values outside [0, 1] (or NaN), labels outside
            ``0 .. classes - 1``, unknown method/model/option, or a device torch cannot use.
    """
    from .device import check_device
    from .engine import run_batch
    from .models import build_model

    m = get_method(method)
    if m.iterative:
        config = make_config(method, optimizer, iterations, 0 if seed is None else seed, **options)
    else:
        given = [k for k, v in (("optimizer", optimizer), ("iterations", iterations), ("seed", seed)) if v is not None]
        if given:
            raise ValueError(f"method {method!r} is closed form: it takes no {', '.join(given)}")
        config = m.config(**options)
    check_device(device)
    images, labels = check_images(images, labels)
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
    if not m.iterative:
        return m.solver(images, labels, model, config, device=device, defense=defense)
    return run_batch(model, images[None], labels[None], [config], defense=defense, progress=progress,
                     desc=m.title)[0]
