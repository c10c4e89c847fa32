"""Strided transposed convolutions as one plain convolution and a pixel shuffle.

The gradient of a convolution w.r.t. its input is a transposed convolution. On a CPU,
PyTorch's (oneDNN) transposed convolution is slow when it has few output channels and a
stride: for LeNet's first layer (3 channels, stride 2) at N = 128 attacks it took 6.6 ms,
against 2.1 ms for the decomposition below, the largest single cost of the batched
gradient-matching objective (``wdlg_core.matching``).

The decomposition ("sub-pixel" convolution): output pixel Y = s*u + r of a stride-s
transposed convolution only meets the kernel taps k with k = r + p - s*e for integer
offsets e, so each of the s*s phases (r_h, r_w) is an ordinary stride-1 convolution of the
input with a sub-kernel, and the s*s phase outputs interleave into the full output
(``F.pixel_shuffle``). All phases run as one convolution with s*s times the output channels.

Used where it measured faster: on a CPU, stride > 1 and fewer output than input channels per
group (the first layer's input gradient). Elsewhere :func:`conv_transpose` is
``F.conv_transpose2d``. Tests compare both with ``F.conv_transpose2d``.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


@lru_cache(maxsize=None)
def _phase_taps(stride: int, padding: int, kernel: int) -> tuple[torch.Tensor, int]:
    """Kernel tap of each (phase r, sub-kernel position t), ``kernel`` where there is none.

    Returns (idx (stride, T) int64, P): sub-kernel t of phase r reads input pixel u + t - P
    for output pixel stride*u + r, with weight tap idx[r, t].
    """
    offsets = {(r, k): (r + padding - k) // stride for r in range(stride) for k in range(kernel)
               if (r + padding - k) % stride == 0}
    lo, hi = min(offsets.values()), max(offsets.values())
    idx = torch.full((stride, hi - lo + 1), kernel, dtype=torch.long)
    for (r, k), e in offsets.items():
        idx[r, e - lo] = k
    return idx, -lo


def phase_decomposable(weight: torch.Tensor, stride, groups: int = 1) -> bool:
    """Whether :func:`conv_transpose` uses the decomposition for this transposed convolution:
    a CPU tensor (where it was measured; a GPU keeps cuDNN's own), an equal stride > 1 on
    both axes and fewer output channels (weight.shape[1]) than input channels per group
    (weight.shape[0] // groups)."""
    return weight.device.type == "cpu" and stride[0] == stride[1] > 1 and weight.shape[1] < weight.shape[0] // groups


def conv_transpose(d: torch.Tensor, weight: torch.Tensor, stride, padding, out_hw, groups: int = 1) -> torch.Tensor:
    """``F.conv_transpose2d`` (dilation 1) with the output size given, by phases where faster.

    Args:
        d: (B, G*O, H', W') input (the gradient w.r.t. a convolution's output).
        weight: (G*O, C, kh, kw), the convolution's weight.
        stride, padding: pairs of ints, the convolution's.
        out_hw: (H, W), the size of the convolution's input, which the result takes.
        groups: G.

    Returns:
        (B, G*C, H, W). Differentiable w.r.t. d and weight.
    """
    out_hw = tuple(out_hw)
    if not phase_decomposable(weight, stride, groups):
        out_pad = [size - ((i - 1) * st - 2 * p + k) for size, i, st, p, k
                   in zip(out_hw, d.shape[2:], stride, padding, weight.shape[2:])]
        return F.conv_transpose2d(d, weight, stride=stride, padding=padding, output_padding=out_pad, groups=groups)
    s = stride[0]
    go, c = weight.shape[:2]
    (idx_h, ph), (idx_w, pw) = (_phase_taps(s, p, k) for p, k in zip(padding, weight.shape[2:]))
    # (G, O, C, kh+1, kw+1), the extra tap zero -> (G, O, C, s, Th, s, Tw) -> (G*C*s*s, O, Th, Tw)
    wp = F.pad(weight, (0, 1, 0, 1)).reshape(groups, go // groups, c, *(k + 1 for k in weight.shape[2:]))
    sub = wp[:, :, :, idx_h[:, :, None, None], idx_w[None, None, :, :]]
    sub = sub.permute(0, 2, 3, 5, 1, 4, 6).reshape(groups * c * s * s, go // groups, *sub.shape[4::2])
    # phase pixel u needs input pixels u - P .. u - P + T - 1, for u < ceil(out / s): pad (or crop) to that
    pads = []
    for size, i, t, p in ((out_hw[1], d.shape[3], sub.shape[3], pw), (out_hw[0], d.shape[2], sub.shape[2], ph)):
        pads += [p, -(-size // s) - i + t - 1 - p]
    z = F.conv2d(F.pad(d, pads), sub, groups=groups)                    # (B, G*C*s*s, ceil(H/s), ceil(W/s))
    return F.pixel_shuffle(z, s)[:, :, :out_hw[0], :out_hw[1]]          # (B, G*C, H, W)


class Conv2d(torch.autograd.Function):
    """``F.conv2d`` (dilation 1, groups 1) whose input gradient is :func:`conv_transpose`.

    Forward: x (B, C, H, W), weight (O, C, kh, kw), bias (O,) or None -> (B, O, H', W').
    First derivatives only (``once_differentiable``): the gradient-matching objective
    backpropagates through its forward pass once.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.args = (stride, padding)
        return F.conv2d(x, weight, bias, stride=stride, padding=padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):                                                # g (B, O, H', W')
        x, weight = ctx.saved_tensors
        stride, padding = ctx.args
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = conv_transpose(g, weight, stride, padding, x.shape[2:])
        if ctx.needs_input_grad[1]:
            gw = torch.nn.grad.conv2d_weight(x, weight.shape, g, stride=stride, padding=padding)
        if ctx.needs_input_grad[2]:                                       # False when bias is None
            gb = g.sum((0, 2, 3))
        return gx, gw, gb, None, None
