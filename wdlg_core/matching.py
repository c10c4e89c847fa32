"""The gradient-matching objective of N independent attacks, evaluated as one computation.

Attack i has dummy data x_i (B, C, H, W), a label target t_i, and the shared gradient
dW_i it tries to match. All N attacks target the same model F (same weights). Its loss is

    L_i(x_i) = D( d loss(F(x_i), t_i) / dW ,  dW_i ),

and the optimiser needs dL_i/dx_i for every i. Because L_i depends on x_i alone,
d(sum_i L_i)/dx_i = dL_i/dx_i: one backward of the sum gives every attack's gradient.

The hard part is the inner gradient dW'_i = d loss(F(x_i), t_i) / dW *per attack* (an
ordinary backward would sum it over the N attacks). Two ways are implemented:

* ``"explicit"`` (fast path, models that are a plain sequence of Conv2d / Linear / Sigmoid /
  LeakyReLU / Flatten layers: LeNet and CNN6). The inner backward is written out with
  ordinary differentiable tensor ops, so autograd can differentiate the whole thing a second
  time w.r.t. x, and every op works on all N*B images at once. The per-attack weight
  gradients: a linear layer's as a batched matmul (sum_b delta_b a_b^T); a convolution's as
  the weight gradient of one grouped convolution with one group per attack, with a
  hand-written backward made of grouped convolutions (:class:`_PerAttackConvWeightGrad`).
* ``"vmap"`` (any model): ``torch.func.vmap`` over ``torch.func.grad`` of the training loss
  with the parameters shared (``functional_call``).
* ``"autograd"`` (any model, one attack): the plain double backward of the one-attack
  reference, ``torch.autograd.grad(..., create_graph=True)`` on the model itself. With N = 1
  there is nothing to separate, and this skips the batched paths' bookkeeping: ``"auto"``
  takes it whenever the objective holds a single attack (a single :func:`wdlg_core.run_attack`),
  which keeps one attack as fast as a hand-written DLG loop (``benchmarks/single_attack.py``).

Tests check every path against the one-attack ``wdlg_core.gradients.parameter_gradient``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import Conv2d, conv_transpose, phase_decomposable
from .gradients import training_loss
from .losses import batched_total_variation

Grads = list[torch.Tensor]
_SEQUENTIAL_OK = (nn.Conv2d, nn.Linear, nn.Sigmoid, nn.LeakyReLU, nn.Flatten)
PATHS = ("auto", "explicit", "vmap", "autograd")


def layer_sequence(model: nn.Module) -> list[nn.Module] | None:
    """The model as a flat list of layers if the explicit path supports it, else None."""
    seq = getattr(model, "sequence", None)
    layers = seq() if callable(seq) else None
    if layers is None or not all(isinstance(m, _SEQUENTIAL_OK) for m in layers):
        return None
    for m in layers:
        if isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)
                                         or tuple(m.dilation) != (1, 1)):
            return None
    return layers


def _attacks_as_groups(t: torch.Tensor, n: int) -> torch.Tensor:
    """(N*B, C, H, W) -> (B, N*C, H, W): attack n's images become channel group n (a view when B = 1)."""
    m, c, h, w = t.shape
    return t.reshape(n, m // n, c, h, w).transpose(0, 1).reshape(m // n, n * c, h, w)


def _attacks_from_groups(t: torch.Tensor, n: int) -> torch.Tensor:
    """The inverse of :func:`_attacks_as_groups`: (B, N*C, H, W) -> (N*B, C, H, W)."""
    b, nc, h, w = t.shape
    return t.reshape(b, n, nc // n, h, w).transpose(0, 1).reshape(n * b, nc // n, h, w)


class _PerAttackConvWeightGrad(torch.autograd.Function):
    """Per-attack weight gradient of a convolution, dW_n = sum over attack n's images of
    delta_b (*) a_b: (N*B, C, H, W), (N*B, O, H', W') -> (N, O, C, k, k). Dilation 1, no groups.

    The N attacks are laid out as the N groups of one grouped convolution (attack n's
    images as channel group n, its B images as the batch), so one weight gradient of that
    grouped convolution (``torch.nn.grad.conv2d_weight``, groups = N) is every attack's own
    weight gradient, summed over its B images. On a 2-core CPU (LeNet, N = 128) this took
    2.4-2.8 ms per layer against 3.7-4.5 ms for the unfolded-patch batched matmul of opacus'
    grad samplers, whose patch copy dominated.
    Backward (what the attack's gradient w.r.t. the dummy data needs): both input gradients
    are convolutions whose weights differ per attack, in the same grouped layout (a
    transposed one for the activations, by phases where faster: ``wdlg_core.conv``; a plain
    one for delta). Only first derivatives are needed: the inner backward is built from
    differentiable ops and autograd differentiates it once.
    """

    @staticmethod
    def forward(ctx, a, d, n, kernel, padding, stride):
        c, o = a.shape[1], d.shape[1]
        ab, db = _attacks_as_groups(a, n), _attacks_as_groups(d, n)     # (B, N*C, H, W), (B, N*O, H', W')
        dw = torch.nn.grad.conv2d_weight(ab, (n * o, c, *kernel), db, stride=stride, padding=padding,
                                         groups=n)                        # (N*O, C, k, k), summed over B
        ctx.save_for_backward(ab, db)
        ctx.args = (n, kernel, padding, stride)
        return dw.reshape(n, o, c, *kernel)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):                                                 # g (N, O, C, k, k)
        ab, db = ctx.saved_tensors
        n, kernel, padding, stride = ctx.args
        weights = g.reshape(-1, *g.shape[2:])                 # (N*O, C, k, k): attack n's group of O filters
        grad_a = grad_d = None
        if ctx.needs_input_grad[0]:
            grad_a = _attacks_from_groups(conv_transpose(db, weights, stride, padding, ab.shape[2:], groups=n), n)
        if ctx.needs_input_grad[1]:
            grad_d = _attacks_from_groups(F.conv2d(ab, weights, stride=stride, padding=padding, groups=n), n)
        return grad_a, grad_d, None, None, None, None


def _output_delta(z: torch.Tensor, target: torch.Tensor, loss_kind: str, b: int) -> torch.Tensor:
    """d(mean over an attack's B images of the loss) / d logits. z (N*B, K) -> (N*B, K)."""
    if loss_kind == "cross_entropy":
        y = F.one_hot(target.reshape(-1), z.shape[1]).to(z.dtype) if target.dtype == torch.long \
            else target.reshape(z.shape)
        # d/dz of -sum_k y_k log softmax(z)_k is softmax(z) * sum_k y_k - y (sum_k y_k = 1)
        return (torch.softmax(z, dim=1) * y.sum(1, keepdim=True) - y) / b
    if loss_kind == "logistic":
        return (torch.sigmoid(z) - target.reshape(z.shape).to(z.dtype)) / b
    raise ValueError(f"unknown loss_kind {loss_kind!r}; valid choices: cross_entropy, logistic")


def explicit_gradients(layers: list[nn.Module], x: torch.Tensor, target: torch.Tensor,
                       loss_kind: str) -> Grads:
    """Per-attack parameter gradients through an explicit, twice-differentiable backward.

    Args:
        layers: from :func:`layer_sequence`.
        x: (N, B, C, H, W) dummy data of N attacks.
        target: (N, B) int64 labels, or (N, B, K) soft labels (probabilities).
        loss_kind: ``"cross_entropy"`` or ``"logistic"``.

    Returns:
        One tensor (N, *param.shape) per parameter, in ``model.parameters()`` order.
    """
    n, b = x.shape[:2]
    a = x.reshape(n * b, *x.shape[2:])                          # (N*B, C, H, W)
    inputs, outputs = [], []
    for layer in layers:                                        # forward, keeping activations
        inputs.append(a)
        if isinstance(layer, nn.Conv2d) and phase_decomposable(layer.weight, layer.stride):
            # the same convolution, with a faster input gradient (wdlg_core.conv)
            a = Conv2d.apply(a, layer.weight, layer.bias, tuple(layer.stride), tuple(layer.padding))
        else:
            a = layer(a)                                        # (N*B, ...): every attack's images at once
        outputs.append(a)
    delta = _output_delta(a, target, loss_kind, b)              # (N*B, K)
    grads: list[Grads] = []
    for i in reversed(range(len(layers))):
        layer, a_in, a_out = layers[i], inputs[i], outputs[i]
        if isinstance(layer, nn.Linear):
            d = delta.reshape(n, b, -1)                          # (N, B, O)
            g = [torch.bmm(d.transpose(1, 2), a_in.reshape(n, b, -1))]  # (N, O, I): sum_b delta_b a_b^T
            if layer.bias is not None:
                g.append(d.sum(1))                               # (N, O)
            grads.append(g)
            if i == 0:                                           # the dummy data's own delta is not needed
                continue
            delta = delta @ layer.weight                         # (N*B, I)
        elif isinstance(layer, nn.Conv2d):
            w = layer.weight                                     # (O, C, k, k); delta (N*B, O, H', W')
            g = [_PerAttackConvWeightGrad.apply(a_in, delta, n, tuple(layer.kernel_size), tuple(layer.padding),
                                                tuple(layer.stride))]  # (N, O, C, k, k)
            if layer.bias is not None:
                g.append(delta.sum((2, 3)).reshape(n, b, -1).sum(1))  # (N, O)
            grads.append(g)
            if i == 0:                                           # the dummy data's own delta is not needed
                continue
            delta = conv_transpose(delta, w, tuple(layer.stride), tuple(layer.padding),
                                   a_in.shape[2:])               # (N*B, C, H, W)
        elif isinstance(layer, nn.Sigmoid):
            delta = delta * a_out * (1 - a_out)
        elif isinstance(layer, nn.LeakyReLU):
            delta = torch.where(a_in > 0, delta, delta * layer.negative_slope)
        elif isinstance(layer, nn.Flatten):
            delta = delta.reshape(a_in.shape)
    return [t for g in reversed(grads) for t in g]


def single_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, loss_kind: str) -> Grads:
    """The dummy gradient of one attack (N = 1) by a plain double-backward-ready autograd pass,
    as the one-attack reference computes it. Same contract as :func:`explicit_gradients`.

    The weights enter as fresh leaves (views of the model's own) so that their gradient can be
    taken even while the engine holds the model's ``requires_grad`` off.
    """
    from torch.func import functional_call

    if x.shape[0] != 1:
        raise ValueError(f"single_gradients takes one attack, got {x.shape[0]}")
    params = {k: v.detach().requires_grad_(True) for k, v in model.named_parameters()}
    loss = training_loss(functional_call(model, params, (x[0],)), target[0], loss_kind)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    return [g.unsqueeze(0) for g in grads]                        # (1, *param.shape) each


def vmap_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, loss_kind: str) -> Grads:
    """Per-attack parameter gradients with ``torch.func`` (any model). Same contract as
    :func:`explicit_gradients`."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def attack_loss(p, xb, tb):  # one attack: xb (B, C, H, W)
        return training_loss(functional_call(model, (p, buffers), (xb,)), tb, loss_kind)

    g = vmap(grad(attack_loss), in_dims=(None, 0, 0))(params, x, target)
    return [g[k] for k in params]


class MatchingObjective:
    """L_i(x_i) for N attacks on one model (see the module docstring).

    Args:
        model: the shared network (its weights are not optimised).
        true_grads: the N shared gradients, one tensor (N, *param.shape) per parameter.
        loss_fn: a batched gradient-matching loss (``losses.make_loss(..., batched=True)``).
        path: ``"explicit"``, ``"vmap"``, ``"autograd"`` (one attack only) or ``"auto"``
            (autograd for a single attack, else explicit when the model allows it, else vmap).
        tv_weight: weight of the total-variation prior on the dummy images
            (:func:`wdlg_core.losses.batched_total_variation`; Inverting Gradients), >= 0.

    Call: ``objective(x, target, rows=None) -> (N,)`` with x (N, B, C, H, W) and target (N, B)
    int64 or (N, B, K) probabilities (or n < N of them, the attacks ``rows``); differentiable
    w.r.t. x and a soft target. The value is
    ``loss_fn(dummy gradients, true gradients) + tv_weight * TV(x)``.

    Raises:
        ValueError: unknown path, ``"explicit"`` for a model it does not support, or a
            negative tv_weight.
    """

    def __init__(self, model: nn.Module, true_grads: Grads, loss_fn, path: str = "auto", tv_weight: float = 0.0):
        if path not in PATHS:
            raise ValueError(f"unknown path {path!r}; valid choices: {', '.join(PATHS)}")
        if not tv_weight >= 0:
            raise ValueError(f"tv_weight must be >= 0, got {tv_weight}")
        self.tv_weight = float(tv_weight)
        if true_grads and len({g.shape[0] for g in true_grads}) != 1:
            raise ValueError("every true-gradient tensor needs the same leading attack axis N")
        self.model, self.true_grads, self.loss_fn = model, true_grads, loss_fn
        self.loss_kind = getattr(model, "loss_kind", "cross_entropy")
        n = true_grads[0].shape[0] if true_grads else None
        if path == "autograd" and n not in (1, None):  # None: no true gradients yet (computing them)
            raise ValueError(f"the autograd path evaluates one attack; this objective holds {n}: use path='auto'")
        if path == "autograd" or (path == "auto" and n == 1):
            self.layers, self.path = None, "autograd"
            return
        self.layers = layer_sequence(model) if path != "vmap" else None
        if path == "explicit" and self.layers is None:
            raise ValueError(f"the explicit path needs a plain layer sequence; {type(model).__name__} "
                             "has other layers: use path='vmap'")
        self.path = "explicit" if self.layers is not None else "vmap"

    def dummy_gradients(self, x: torch.Tensor, target: torch.Tensor) -> Grads:
        """The N dummy gradients dW'_i, one tensor (N, *param.shape) per parameter, with a graph
        for the double backward; x (N, B, C, H, W), target (N, B) int64 or (N, B, K)."""
        if self.path == "explicit":
            return explicit_gradients(self.layers, x, target, self.loss_kind)
        if self.path == "autograd":
            return single_gradients(self.model, x, target, self.loss_kind)
        return vmap_gradients(self.model, x, target, self.loss_kind)

    def true_gradients(self, rows: torch.Tensor | None = None) -> Grads:
        """The shared gradients of the attacks ``rows`` (int64 indices; None: all N)."""
        return self.true_grads if rows is None else [g[rows] for g in self.true_grads]

    def __call__(self, x: torch.Tensor, target: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(n,) values for x (n, B, C, H, W) of the attacks ``rows`` (int64 indices into the N,
        in x's order; None: x holds all N attacks)."""
        true = self.true_gradients(rows)
        if getattr(self.loss_fn, "per_attack_state", False):  # the dual critics: one per attack
            value = self.loss_fn(self.dummy_gradients(x, target), true, rows=rows)
        else:
            value = self.loss_fn(self.dummy_gradients(x, target), true)
        if self.tv_weight > 0:
            value = value + self.tv_weight * batched_total_variation(x)
        return value
