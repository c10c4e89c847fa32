"""R-GAP (Zhu & Blaschko, ICLR 2021): the closed-form recursive gradient attack, and its rank analysis.

Source: the R-GAP paper (seed document ``../shared/paper/003_246e1a18733e59e2.txt`` holds its
abstract; the method below is our reading of the paper and of the authors' description of
their public code, written from scratch here).

The attack, for one image (batch size 1)
----------------------------------------
Write the network as blocks ``z_i = op_i(a_i) + b_i``, ``a_{i+1} = act_i(z_i)`` (``op_i`` a
convolution or a linear map, ``b_i`` an optional bias), ``a_0`` the image, and a last linear
block (the head) whose output are the logits. The shared gradient gives, per block,
``dW_i = delta_i a_i^T`` (for a convolution: the correlation of the layer's input with
``delta_i``), where ``delta_i = dloss/dz_i``. Both are *linear in a_i* once ``delta_i`` is known.

1. Head (last linear layer). Three cases are solved in closed form:

   * with a bias (LeNet): ``db = delta`` and ``dW = delta a^T``, so ``a = dW^T db / |db|^2``
     and ``delta = db`` exactly (the "bias attack" of Phong et al.; any loss);
   * bias-free, one logistic output (R-GAP's CNN6 and FCN3): ``W . dW = mu * k`` with
     ``mu = W a`` the logit and ``k = dloss/dmu = sigmoid(mu) - y``; writing ``t = s*mu``
     (``s = 2y - 1``) gives R-GAP's scalar equation ``-t / (1 + e^t) = W . dW``, solved here by
     bisection. For ``W . dW > 0`` the root is unique; for ``W . dW`` in (-0.2785, 0) it has two
     roots (one each side of t = 1.2785). In a bias-free LeakyReLU network the two roots give
     the same reconstruction up to a positive scale (every block is positively homogeneous),
     so the gradient cannot tell them apart: we keep the candidate whose reconstruction lies
     in the image box [0, 1] (ties: the larger one), and record ``root_ambiguous`` in the
     meta (otherwise we keep the candidate whose block below fits with the smallest
     residual; the rule used is the meta's ``root_rule``). R-GAP's demo sidesteps this by
     choosing the label opposite to the model's prediction. The label y is inferred (unless given): the wrong sign of ``k`` flips the
     sign of the head's input, which the block below cannot fit (larger residual);
   * bias-free, K > 1 outputs with cross-entropy (our ``cnn6``): every row of
     ``dW = g a^T`` is a multiple of ``a``, so ``g = alpha * v`` with a known vector ``v`` and
     one unknown scalar ``alpha``; the label is the one entry of ``g`` below zero, and
     ``alpha`` solves ``softmax(W r / alpha) - e_y = alpha v`` (``r`` a row of ``dW``), fitted
     as ``min |(softmax(W r / alpha) - e_y) / alpha - v|^2`` (divided by alpha: otherwise
     alpha -> 0 fits trivially whenever the saturated softmax picks y) on a log grid and
     refined (our extension of R-GAP's one-output case to K outputs).

2. Every block below, from the top down: the block's output ``a_{i+1}`` is known, so
   ``z_i = act^-1(a_{i+1})`` and ``delta_i = act'(z_i) * op_{i+1}^T delta_{i+1}``. The input
   ``a_i`` is the least-squares solution of the stacked linear system

       [ op_i           ] a_i = [ z_i - b_i ]      (forward constraints: one per output)
       [ D(delta_i)     ]       [ vec(dW_i) ]      (gradient constraints: one per weight)

   each group of rows weighted by the inverse norm of its right-hand side (so that the
   solution does not depend on the unobservable scale discussed above), and
   solved through its normal equations in float64 with a pivoted Cholesky factorisation,
   whose pivots give the numerical rank (pivot threshold ``rank_rtol^2 * max diag``), and the
   minimum-norm least-squares solution (LAPACK gelsy) when the system is rank deficient.
   The gradient constraints of a convolution act on each input channel separately with the
   same matrix ``D_0(delta)``, so the normal matrix is ``W^T W + I_C (x) D_0^T D_0`` and never
   needs the (large) gradient rows themselves; padded positions are known zeros, not unknowns.
   When ``D_0`` alone has full column rank (stride-1 layers whose gradient rows outnumber the
   pixels of a channel), the system's full rank is certified by ``D_0``'s singular values and
   the solution is computed matrix-free: per-channel ``D_0^+ g`` refined by preconditioned
   conjugate gradients on the whole system (:func:`_solve_separable`); strided layers leave
   ``D_0`` rank deficient (pixels between strides are read by fewer kernel offsets) and take
   the dense path.

Activations must be invertible: LeakyReLU (slope > 0), Sigmoid, Tanh, or none. ReLU is not
(its zero outputs lose the pre-activation), nor are pooling, batch norm in training mode or
skip connections: :func:`rgap_layers` raises a ValueError naming the layer.

LeNet (DLG's: strided 5x5 convolutions with biases and sigmoids) works: the biases are known
(part of the model) and move to the right-hand side, ``sigmoid^-1`` is the logit and
``sigmoid'(z) = a (1 - a)``, stride and padding only change which input pixels each output
and weight gradient sees (built into the matrices). Two limits: the logit of a saturated
sigmoid (output within ``1e-12`` of 0 or 1, or a float32 gradient rounding there) loses the
pre-activation, and the first convolution of LeNet on CIFAR-10 has as many outputs as
inputs, so its forward block alone is square and the gradient rows decide the conditioning.

Rank analysis
-------------
:func:`rank_analysis` counts, per block, the unknowns (the block's input entries), the
forward constraints (its outputs), the gradient constraints (its weights; their rank is at
most ``C_in * min(C_out k^2, H W)`` for a convolution, ``n_in`` for a linear layer: we
count that bound, "effective"), and the *virtual* constraints of the "pull-back": the
block's input is itself a function of every lower block's input, so it has at most
``min_j<i n_j`` degrees of freedom, which gives ``n_i - min_j<i n_j`` further constraints when
positive. The deficiency is ``max(0, unknowns - forward - effective - virtual)``; the
network's **rank-analysis index** is the sum of the deficiencies over the blocks: 0 means every
block is (by count) determined, so R-GAP can recover the input (the highest risk); a larger
index means more degrees of freedom that the gradient leaves open (safer). The seed document
holds only R-GAP's abstract ("we also propose a metric to measure the level of security"), so
this count is our reading of R-GAP's rank analysis and is stated in full here. With ``image=``,
the numerical rank of every system is also measured on a real reconstruction.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .config import SUCCESS_MSE

#: Activations R-GAP can invert (class names).
INVERTIBLE = ("LeakyReLU", "Sigmoid", "Tanh", "Identity")
#: Ways to obtain the label of a logistic head: infer it from the gradient, or take it as known.
LABEL_MODES = ("infer", "known")
#: Root of R-GAP's scalar equation -t/(1+e^t) = c where c is smallest (t* = 1.2785, c* = -0.2785).
_T_STAR = 1.2784645427610738
_C_STAR = -_T_STAR / (1.0 + math.exp(_T_STAR))


@dataclass(frozen=True)
class RGAPConfig:
    """How R-GAP runs (the store keys R-GAP results by this dict, ``method="rgap"``).

    R-GAP has no iterations, optimiser or seed, so it is not an
    :class:`~wdlg_core.config.AttackConfig`; its dict has ``method: "rgap"``, the closed-form
    entry of the method registry (:mod:`wdlg_core.methods`), which the store reads back as
    this class.

    Attributes:
        label: ``"infer"`` (default: the attacker reads the label off the gradient) or
            ``"known"`` (the true label is given, as in R-GAP's demo code).
        rank_rtol: relative threshold of the numerical rank (on singular values; pivots of the
            normal matrix below ``rank_rtol**2 * max diag`` count as zero).
        success_mse: success threshold on the final image MSE (as AttackConfig's).

    Raises:
        ValueError: unknown label mode (the message lists :data:`LABEL_MODES`) or
            ``rank_rtol`` outside (0, 1).
    """

    method: str = "rgap"
    label: str = "infer"
    rank_rtol: float = 1e-6
    success_mse: float = SUCCESS_MSE

    def __post_init__(self):
        if self.method != "rgap":
            raise ValueError(f"RGAPConfig.method must be 'rgap', got {self.method!r}")
        if self.label not in LABEL_MODES:
            raise ValueError(f"unknown label mode {self.label!r}; valid choices: {', '.join(LABEL_MODES)}")
        if not 0 < self.rank_rtol < 1:
            raise ValueError(f"rank_rtol must lie in (0, 1), got {self.rank_rtol}")

    def to_dict(self) -> dict:
        """Plain JSON-able dict (the store hashes it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RGAPConfig":
        return cls(**d)


# --- the network as blocks --------------------------------------------------------------------

@dataclass
class Block:
    """One linear operation (conv or linear) with the activation that follows it.

    Attributes:
        op: the ``nn.Conv2d`` or ``nn.Linear``.
        act: the activation module after it (None for the head).
        in_shape: shape of the op's input without the batch, e.g. (C, H, W) or (F,).
        out_shape: shape of its output, e.g. (O, Ho, Wo) or (K,).
        name: e.g. ``conv1``, ``fc2``.
    """

    op: nn.Module
    act: nn.Module | None
    in_shape: tuple
    out_shape: tuple
    name: str


def rgap_layers(model: nn.Module, in_shape) -> list[Block]:
    """Split ``model`` into R-GAP blocks (linear op + invertible activation), last = the head.

    Args:
        model: a network with a ``sequence()`` method listing its layers in order (lenet,
            cnn6, cnn6_binary, fcn).
        in_shape: (C, H, W) of one input.

    Returns:
        The blocks, input side first.

    Raises:
        ValueError: no ``sequence()`` (e.g. the torchvision networks, with skip connections
            or concatenations), a layer R-GAP cannot invert (ReLU, pooling, batch norm, ...),
            a convolution with groups or dilation, or a last layer that is not linear.
    """
    if not hasattr(model, "sequence"):
        raise ValueError(f"R-GAP needs a plain chain of layers (a model with sequence()); {type(model).__name__} "
                         "has none (skip connections / concatenations cannot be inverted layer by layer). "
                         "Supported here: lenet, cnn6, cnn6_binary, fcn")
    blocks: list[list] = []
    counts = {"conv": 0, "fc": 0}
    for m in model.sequence():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            kind = "conv" if isinstance(m, nn.Conv2d) else "fc"
            if kind == "conv":
                if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
                    raise ValueError(f"R-GAP here supports plain convolutions (groups 1, dilation 1, zero padding "
                                     f"given as numbers); got {m}")
            counts[kind] += 1
            blocks.append([m, None, f"{kind}{counts[kind]}"])
        elif isinstance(m, nn.Flatten):
            continue
        elif type(m).__name__ in INVERTIBLE:
            if not blocks or blocks[-1][1] is not None:
                raise ValueError(f"activation {m} does not follow a linear layer")
            if isinstance(m, nn.LeakyReLU) and not m.negative_slope > 0:
                raise ValueError(f"LeakyReLU needs a positive slope to be inverted, got {m.negative_slope}")
            blocks[-1][1] = m
        else:
            raise ValueError(f"R-GAP cannot invert layer {m} (a {type(m).__name__}); invertible activations: "
                             f"{', '.join(INVERTIBLE)} after Conv2d / Linear layers (ReLU zeroes its negative inputs "
                             "and loses them)")
    head_act = blocks[-1][1] if blocks else None
    if not blocks or not isinstance(blocks[-1][0], nn.Linear) or not (head_act is None or isinstance(head_act, nn.Identity)):
        raise ValueError("R-GAP needs a network that ends with a linear layer (the head), without activation")
    out: list[Block] = []
    x = torch.zeros(1, *[int(s) for s in in_shape], dtype=next(model.parameters()).dtype)
    with torch.no_grad():
        for op, act, name in blocks:
            if isinstance(op, nn.Linear):
                x = x.flatten(1)
            shape_in = tuple(x.shape[1:])
            x = op(x)
            out.append(Block(op, act, shape_in, tuple(x.shape[1:]), name))
            if act is not None:
                x = act(x)
    return out


def _n(shape) -> int:
    return int(np.prod(shape))


def _conv_geometry(block: Block):
    """Index arrays of a convolution: for every valid (i, j, u, v), the output position i*Wo+j,
    the kernel offset u*k2+v and the input pixel r*W+q (padding excluded)."""
    op = block.op
    _, h, w = block.in_shape
    _, ho, wo = block.out_shape
    k1, k2 = op.kernel_size
    s1, s2 = op.stride
    p1, p2 = op.padding
    i, j, u, v = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(k1), np.arange(k2), indexing="ij")
    r, q = s1 * i + u - p1, s2 * j + v - p2
    ok = (r >= 0) & (r < h) & (q >= 0) & (q < w)
    return (i * wo + j)[ok], (u * k2 + v)[ok], (r * w + q)[ok]


def forward_matrix(block: Block):
    """The block's linear op as a matrix (outputs x inputs, float64): scipy CSR for a
    convolution, a dense array for a linear layer. Bias excluded."""
    import scipy.sparse as sp

    weight = block.op.weight.detach().double().cpu().numpy()
    if isinstance(block.op, nn.Linear):
        return weight  # (K, F)
    o_ch, c_ch = weight.shape[:2]
    hw, howo = _n(block.in_shape[1:]), _n(block.out_shape[1:])
    out_pos, kpos, in_pos = _conv_geometry(block)
    wflat = weight.reshape(o_ch, c_ch, -1)                                        # (O, C, k1*k2)
    rows = (np.arange(o_ch)[:, None, None] * howo + out_pos[None, None, :])       # (O, 1, S)
    cols = (np.arange(c_ch)[None, :, None] * hw + in_pos[None, None, :])          # (1, C, S)
    vals = wflat[:, :, kpos]                                                      # (O, C, S)
    rows, cols = np.broadcast_to(rows, vals.shape).ravel(), np.broadcast_to(cols, vals.shape).ravel()
    return sp.csr_matrix((vals.ravel(), (rows, cols)), shape=(o_ch * howo, c_ch * hw))


def _gradient_matrix(block: Block, delta: np.ndarray) -> np.ndarray:
    """D_0(delta): weight gradient of one input channel as a linear function of that channel.

    Convolution: (C_out*k1*k2, H*W) with D_0[(o, u, v), r*W+q] = delta[o, i, j] where (r, q)
    is the input pixel that kernel offset (u, v) reads at output (i, j). Linear layer:
    (K, 1) = delta (each input feature is its own "channel").
    """
    if isinstance(block.op, nn.Linear):
        return delta.reshape(-1, 1)
    o_ch = block.out_shape[0]
    k = block.op.kernel_size[0] * block.op.kernel_size[1]
    out_pos, kpos, in_pos = _conv_geometry(block)
    d = np.zeros((o_ch * k, _n(block.in_shape[1:])))
    dflat = delta.reshape(o_ch, -1)
    d[(np.arange(o_ch)[:, None] * k + kpos[None, :]).ravel(), np.broadcast_to(in_pos, (o_ch, in_pos.size)).ravel()] = \
        dflat[:, out_pos].ravel()
    return d


def _channels(block: Block) -> int:
    return block.in_shape[0] if isinstance(block.op, nn.Conv2d) else _n(block.in_shape)


# --- activations ------------------------------------------------------------------------------

def _act_inverse(act: nn.Module | None, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z, act'(z)) from the activation's output a (float64)."""
    if act is None or isinstance(act, nn.Identity):
        return a, np.ones_like(a)
    if isinstance(act, nn.LeakyReLU):
        s = act.negative_slope
        neg = a < 0
        return np.where(neg, a / s, a), np.where(neg, s, 1.0)
    if isinstance(act, nn.Sigmoid):
        ac = np.clip(a, 1e-12, 1 - 1e-12)
        return np.log(ac) - np.log1p(-ac), ac * (1 - ac)
    if isinstance(act, nn.Tanh):
        ac = np.clip(a, -1 + 1e-12, 1 - 1e-12)
        return np.arctanh(ac), 1 - ac ** 2
    raise ValueError(f"cannot invert activation {act}; valid: {', '.join(INVERTIBLE)}")


# --- one block's linear system ---------------------------------------------------------------

@dataclass
class LayerSolve:
    """One block's system and its solution (per-layer report of :func:`reconstruct`).

    Attributes: name; unknowns (input entries); forward (forward constraints: outputs);
    gradient (gradient constraints: weights); rank (numerical rank of the stacked system);
    deficiency (unknowns - rank); residual (relative residual |A a - b| / |b|); seconds.
    """

    name: str
    unknowns: int
    forward: int
    gradient: int
    rank: int
    deficiency: int
    residual: float
    seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _solve_block(block: Block, fmat, z: np.ndarray, grad_w: np.ndarray, delta: np.ndarray,
                 rank_rtol: float) -> tuple[np.ndarray, LayerSolve]:
    """Least-squares input of ``block`` from its forward and gradient constraints.

    Args:
        fmat: :func:`forward_matrix` of the block; z: (n_out,) pre-activation minus bias;
        grad_w: the block's weight gradient (its parameter's shape); delta: (n_out,) dloss/dz.

    Returns:
        (a, report): a (n_in,) float64 and the :class:`LayerSolve`.
    """
    import scipy.linalg as sl
    import scipy.sparse as sp

    t0 = time.perf_counter()
    n = _n(block.in_shape)
    c = _channels(block)
    d0 = _gradient_matrix(block, delta)                                   # (m0, hw)
    hw = d0.shape[1]
    # weight gradient per input channel, rows ordered as D_0's: (m0, C)
    if isinstance(block.op, nn.Linear):
        g = grad_w.reshape(grad_w.shape[0], -1)                            # (K, F)
    else:
        g = np.moveaxis(grad_w, 1, 0).reshape(c, -1).T                     # (O*k1*k2, C)
    # weight each group of rows by 1 / |its right-hand side|: the solution is then equivariant
    # under the rescaling a -> s a, z -> s z, delta -> delta / s that the gradient cannot see
    wf = 1.0 / (float(np.linalg.norm(z)) or 1.0)
    wg = 1.0 / (float(np.linalg.norm(g)) or 1.0)
    fmat, z, d0, g = fmat * wf, z * wf, d0 * wg, g * wg
    gram = d0.T @ d0                                                       # (hw, hw)
    if d0.shape[0] >= hw > 1:
        fast = _solve_separable(fmat, z, d0, g, gram, c, rank_rtol)
        if fast is not None:
            a = fast
            rank = n
            return a, _report(block, fmat, z, d0, g, a, c, hw, grad_w, n, rank, t0)
    if sp.issparse(fmat):
        normal = (fmat.T @ fmat).toarray()
    else:
        normal = fmat.T @ fmat
    if hw == 1:
        normal[np.diag_indices(n)] += gram[0, 0]
    else:
        for ch in range(c):
            sl_ = slice(ch * hw, (ch + 1) * hw)
            normal[sl_, sl_] += gram
    rhs = np.asarray(fmat.T @ z).ravel() + (d0.T @ g).T.ravel()            # channel-major, as the unknowns
    diag_max = float(np.max(np.diag(normal))) if n else 0.0
    tol = (rank_rtol ** 2) * diag_max
    from scipy.linalg import lapack

    fac, piv, rank, info = lapack.dpstrf(normal, lower=1, tol=tol)
    if info < 0:
        raise RuntimeError(f"pivoted Cholesky failed on {block.name} (LAPACK info {info})")
    rank = int(rank)
    if rank == n:
        lower = np.tril(fac)
        p = piv - 1
        y = sl.solve_triangular(lower, rhs[p], lower=True, check_finite=False)
        y = sl.solve_triangular(lower.T, y, lower=False, check_finite=False)
        a = np.empty(n)
        a[p] = y
    else:
        a = sl.lstsq(normal, rhs, cond=rank_rtol ** 2, lapack_driver="gelsy", check_finite=False)[0]
    return a, _report(block, fmat, z, d0, g, a, c, hw, grad_w, n, rank, t0)


def _report(block, fmat, z, d0, g, a, c, hw, grad_w, n, rank, t0) -> LayerSolve:
    """The :class:`LayerSolve` of a solution ``a``: relative residual of the stacked system."""
    fwd_res = np.asarray(fmat @ a).ravel() - z
    grad_res = d0 @ a.reshape(c, hw).T - g                                  # (m0, C)
    num = float(np.sum(fwd_res ** 2) + np.sum(grad_res ** 2))
    den = float(np.sum(z ** 2) + np.sum(g ** 2)) or 1.0
    return LayerSolve(block.name, n, int(fmat.shape[0]), int(grad_w.size), rank, n - rank,
                      math.sqrt(num / den), time.perf_counter() - t0)


def _solve_separable(fmat, z, d0, g, gram, c, rank_rtol, max_iter: int = 200, tol: float = 1e-10):
    """Fast path when the gradient rows alone determine every channel (D_0 has full column rank).

    Then the stacked system has full rank n = C*H*W (certified by D_0's singular values), the
    gradient rows give a per-channel solution ``D_0^+ g_c`` (one small SVD shared by all
    channels), and preconditioned conjugate gradients on the full normal equations
    ``(W^T W + I_C (x) G) a = W^T z + D_0^T g`` refine it to the least-squares solution of the
    whole stacked system (preconditioner ``I_C (x) (G + beta I)^-1``, ``beta`` the mean diagonal
    of ``W^T W``), with matrix-vector products only. Returns None when D_0 is rank deficient.
    """
    u, sv, vt = np.linalg.svd(d0, full_matrices=False)                       # d0 = u diag(sv) vt
    if sv.size == 0 or sv[-1] <= rank_rtol * sv[0]:
        return None
    hw = d0.shape[1]
    x = (vt.T @ ((u.T @ g) / sv[:, None]))                                  # (hw, C): D_0^+ g
    a = x.T.ravel()
    fmat_t = fmat.T
    wtw_diag = np.asarray(fmat.multiply(fmat).sum(axis=0)).ravel() if hasattr(fmat, "multiply") else np.sum(fmat ** 2, 0)
    beta = float(wtw_diag.mean())
    inv = 1.0 / (sv ** 2 + beta)

    def normal(v):
        return np.asarray(fmat_t @ np.asarray(fmat @ v).ravel()).ravel() + (gram @ v.reshape(c, hw).T).T.ravel()

    def precond(r):
        return (vt.T @ (inv[:, None] * (vt @ r.reshape(c, hw).T))).T.ravel()

    rhs = np.asarray(fmat_t @ z).ravel() + (d0.T @ g).T.ravel()
    r = rhs - normal(a)
    r0 = float(np.linalg.norm(rhs)) or 1.0
    zv = precond(r)
    pdir = zv.copy()
    rz = float(r @ zv)
    for _ in range(max_iter):
        if float(np.linalg.norm(r)) <= tol * r0:
            break
        q = normal(pdir)
        step = rz / float(pdir @ q)
        a = a + step * pdir
        r = r - step * q
        zv = precond(r)
        rz_new = float(r @ zv)
        pdir = zv + (rz_new / rz) * pdir
        rz = rz_new
    return a


# --- the head ----------------------------------------------------------------------------------

def _logistic_roots(c: float) -> list[float]:
    """Solutions t of -t / (1 + e^t) = c (one for c >= 0, two for c in (c*, 0), none below c*)."""
    def f(t):
        return -t / (1.0 + math.exp(t)) - c if t < 700 else -c

    def bisect(lo, hi):
        flo = f(lo)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            fm = f(mid)
            if (fm > 0) == (flo > 0):
                lo, flo = mid, fm
            else:
                hi = mid
        return 0.5 * (lo + hi)

    if c >= 0:
        lo = -1.0
        while f(lo) < 0:  # f(t) = -t/(1+e^t) - c grows without bound as t -> -inf
            lo *= 2
        return [bisect(lo, 0.0)]
    if c < _C_STAR:
        return [_T_STAR]  # no exact root (inconsistent gradient): the closest point
    hi = _T_STAR * 2
    while f(hi) < 0:
        hi *= 2
    return [bisect(0.0, _T_STAR), bisect(_T_STAR, hi)]


def _head_candidates(block: Block, grads: dict, label: int | None, num_classes: int):
    """Candidate (a_head, delta_head, label, root_info) tuples for the head block."""
    w = block.op.weight.detach().double().cpu().numpy()                      # (K, F)
    gw = grads["weight"]
    if block.op.bias is not None:
        db = grads["bias"]
        nb = float(db @ db)
        if nb == 0:
            raise ValueError("the head's bias gradient is zero: nothing to recover (a zero loss gradient)")
        lab = int(np.argmin(db)) if num_classes > 1 else (int(db[0] < 0))
        return [(gw.T @ db / nb, db.copy(), lab, {})]
    if w.shape[0] == 1:  # R-GAP's logistic head
        if not np.any(gw):
            raise ValueError("the head's weight gradient is zero: nothing to recover")
        c = float(np.sum(w * gw))
        roots = _logistic_roots(c)
        labels = [label] if label is not None else [0, 1]
        out = []
        for y in labels:
            s = 2 * y - 1
            for t in roots:
                k = -s / (1.0 + math.exp(t))
                out.append((gw[0] / k, np.array([k]), y, {"t": t, "roots": len(roots), "c": c}))
        return out
    # bias-free multi-class cross-entropy head: g = alpha * v
    j = int(np.argmax(np.sum(gw ** 2, axis=1)))
    r = gw[j]
    rr = float(r @ r)
    if rr == 0:
        raise ValueError("the head's weight gradient is zero: nothing to recover")
    v = gw @ r / rr                                                          # v[j] = 1
    m = w @ r
    best = None
    for sign in (1.0, -1.0):
        neg = np.flatnonzero(sign * v < 0)
        if len(neg) != 1:
            continue
        y = int(neg[0])
        if label is not None and y != label:
            continue
        amax = 1.0 / float(np.max(np.abs(v)))
        onehot = np.eye(len(v))[y]

        def obj(la, sign=sign, onehot=onehot):
            alpha = sign * math.exp(la)
            logits = m / alpha
            p = np.exp(logits - logits.max())
            p /= p.sum()
            return float(np.sum(((p - onehot) / alpha - v) ** 2))  # scale-free: no spurious alpha -> 0

        grid = np.linspace(math.log(amax) - 30, math.log(amax), 600)
        vals = [obj(x) for x in grid]
        i = int(np.argmin(vals))
        from scipy.optimize import minimize_scalar

        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        res = minimize_scalar(obj, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
        la = res.x if res.fun <= vals[i] else grid[i]
        cand = (min(res.fun, vals[i]), sign * math.exp(la), y)
        if best is None or cand[0] < best[0]:
            best = cand
    if best is None:
        raise ValueError("could not read the label off the head's gradient (no single negative entry): "
                         "R-GAP's multi-class head needs one image of one class")
    fit, alpha, y = best
    return [(r / alpha, alpha * v, y, {"alpha": alpha, "head_fit": fit})]


# --- the attack --------------------------------------------------------------------------------

@dataclass
class RGAPOutcome:
    """What :func:`reconstruct` returns.

    Attributes:
        image: (C, H, W) float64 reconstruction (not clipped).
        label: the label the attacker used (inferred or given).
        layers: one :class:`LayerSolve` per block below the head (input side first).
        meta: head details: ``t``/``roots``/``root_ambiguous`` (logistic head), ``alpha``
            (multi-class bias-free head), candidates tried, seconds.
    """

    image: np.ndarray
    label: int
    layers: list[LayerSolve]
    meta: dict = field(default_factory=dict)


def _homogeneous(blocks: list[Block]) -> bool:
    return all(b.op.bias is None and (b.act is None or isinstance(b.act, (nn.LeakyReLU, nn.Identity))) for b in blocks)


def _box_violation(x: np.ndarray) -> float:
    return float(np.mean(np.maximum(-x, 0) ** 2 + np.maximum(x - 1, 0) ** 2))


def reconstruct(model: nn.Module, true_grads: list[torch.Tensor], in_shape, label: int | None = None,
                rank_rtol: float = 1e-6) -> RGAPOutcome:
    """R-GAP: recover one input image from the shared gradient, layer by layer, in closed form.

    Args:
        model: the attacked network (see :func:`rgap_layers` for what is supported); its
            weights are known to the attacker.
        true_grads: the shared gradient, one tensor per ``model.parameters()`` entry, of ONE
            image (batch size 1).
        in_shape: (C, H, W) of the image.
        label: the true label if the attacker knows it (only used by heads that cannot read
            it off the gradient unambiguously: the logistic head); None infers it.
        rank_rtol: relative singular-value threshold of the numerical rank.

    Returns:
        :class:`RGAPOutcome` (image float64 (C, H, W), label, per-layer ranks and residuals).

    Raises:
        ValueError: unsupported model (see :func:`rgap_layers`), gradients that do not match
            the parameters, or a head whose gradient is zero.
    """
    t0 = time.perf_counter()
    blocks = rgap_layers(model, in_shape)
    params = list(model.parameters())
    if len(true_grads) != len(params) or any(tuple(g.shape) != tuple(p.shape) for g, p in zip(true_grads, params)):
        raise ValueError("true_grads must hold one gradient per model parameter, with the parameter's shape")
    by_param = {id(p): g.detach().double().cpu().numpy() for p, g in zip(params, true_grads)}
    grads = [{"weight": by_param[id(b.op.weight)],
              "bias": by_param[id(b.op.bias)] if b.op.bias is not None else None} for b in blocks]
    num_classes = blocks[-1].out_shape[0]
    head = blocks[-1]
    candidates = _head_candidates(head, grads[-1], label, num_classes)
    fmats: dict[int, object] = {len(blocks) - 1: forward_matrix(head)}

    def step(i, a_above, delta_above):
        """Solve block i given block i+1's input a_above and its delta."""
        b = blocks[i]
        z, dact = _act_inverse(b.act, a_above)
        delta = dact * np.asarray(fmats[i + 1].T @ delta_above).ravel()
        if b.op.bias is not None:
            bias = b.op.bias.detach().double().cpu().numpy()
            z = z - (np.repeat(bias, _n(b.out_shape[1:])) if isinstance(b.op, nn.Conv2d) else bias)
        if i not in fmats:
            fmats[i] = forward_matrix(b)
        a, rep = _solve_block(b, fmats[i], z, grads[i]["weight"], delta, rank_rtol)
        return a, delta, rep

    meta: dict = {"candidates": len(candidates)}
    if len(blocks) == 1:
        a_top = [(c[0], c[1], c[2], c[3], None) for c in candidates]
    else:
        # candidates differ in label (sign) and/or root; the block below tells the sign apart
        scored = []
        for a_h, d_h, y, info in candidates:
            a, d, rep = step(len(blocks) - 2, a_h, d_h)
            scored.append((rep.residual, a_h, d_h, y, info, (a, d, rep)))
        scored.sort(key=lambda s: s[0])
        a_top = [(s[1], s[2], s[3], s[4], s[5]) for s in scored]
        meta["top_residuals"] = [float(s[0]) for s in scored]
    # the best fit below the head fixes the label; the other root of the logistic equation
    # (same label) fits equally well in a homogeneous network and is decided below
    a_h, d_h, y, info, first = a_top[0]
    layers: list[LayerSolve] = []
    a, delta = a_h, d_h
    for i in range(len(blocks) - 2, -1, -1):
        if i == len(blocks) - 2 and first is not None:
            a, delta, rep = first
        else:
            a, delta, rep = step(i, a, delta)
        layers.append(rep)
    layers.reverse()
    image = a.reshape(in_shape)
    meta.update({k: v for k, v in info.items()})
    if "t" in info:
        meta["root_ambiguous"] = info["roots"] > 1
        if info["roots"] > 1:
            same_label = [c for c in a_top if c[2] == y]
            if len(same_label) > 1 and _homogeneous(blocks):
                # the other root scales everything by (1 + e^t') / (1 + e^t)
                options = []
                for cand in same_label:
                    scale = (1 + math.exp(cand[3]["t"])) / (1 + math.exp(info["t"]))
                    options.append((_box_violation(image * scale), -scale, scale, cand[3]["t"]))
                viol_min = min(o[0] for o in options)
                ok = [o for o in options if o[0] <= viol_min + 1e-8]
                _, _, scale, t = min(ok, key=lambda o: o[1])
                image = image * scale
                meta["t"] = t
                meta["root_rule"] = "box [0, 1], ties to the larger scale"
            elif len(blocks) > 1:
                meta["root_rule"] = "smallest residual of the block below"
            else:
                meta["root_rule"] = "first candidate: the root in (0, 1.2785)"
    meta["seconds"] = time.perf_counter() - t0
    return RGAPOutcome(image=image, label=int(y), layers=layers, meta=meta)


def rgap_attack(images: torch.Tensor, labels: torch.Tensor, model, config: RGAPConfig | None = None,
                device: str = "cpu", defense=None):
    """R-GAP end to end on one image: shared gradient of (images, labels), reconstruction,
    metrics, as an :class:`~wdlg_core.result.AttackResult`.

    Args:
        images: (1, C, H, W) float in [0, 1]; labels: (1,) int64 (0/1 for a logistic model).
        model: an ``nn.Module`` (float32 as the client's; the attack itself runs in float64).
        config: :class:`RGAPConfig` (default ``RGAPConfig()``).
        device: where the client's gradient is computed (the attack runs on the CPU).
        defense: optional callable applied to the shared gradient (a list of per-parameter
            tensors) before the attacker sees it, as in :func:`wdlg_core.run_attack`.

    Returns:
        AttackResult with ``config`` the RGAPConfig; ``iterations`` [1] (one closed-form
        pass), ``losses`` [euclidean gradient distance of the clipped reconstruction: sum over
        parameters of squared differences], ``wall_time`` the attack's seconds, ``labels`` the
        label the attacker used, and ``meta["rgap"]`` the per-layer ranks, residuals and head
        details.

    Raises:
        ValueError: a batch of more than one image (R-GAP here reconstructs one image), images
            outside [0, 1], or an unsupported model.
    """
    from .gradients import shared_gradient
    from .result import assemble_result

    config = config or RGAPConfig()
    images = torch.as_tensor(images)
    labels = torch.as_tensor(labels).long()
    if images.ndim != 4 or images.shape[0] != 1:
        raise ValueError(f"R-GAP reconstructs one image: images must have shape (1, C, H, W), got {tuple(images.shape)}")
    if labels.shape != (1,):
        raise ValueError(f"labels must have shape (1,), got {tuple(labels.shape)}")
    if images.min() < 0 or images.max() > 1:
        raise ValueError("images must lie in [0, 1]")
    model = model.to(device)
    dtype = next(model.parameters()).dtype
    true_grads = shared_gradient(model, images.to(device, dtype), labels.to(device))
    if defense is not None:
        true_grads = defense(true_grads)
    true_grads = [g.cpu() for g in true_grads]
    model = model.cpu()
    t0 = time.perf_counter()
    out = reconstruct(model, true_grads, tuple(images.shape[1:]),
                      label=int(labels[0]) if config.label == "known" else None, rank_rtol=config.rank_rtol)
    wall = time.perf_counter() - t0
    rec = torch.from_numpy(out.image).to(dtype).unsqueeze(0)
    from .gradients import parameter_gradient

    used = torch.tensor([out.label])
    if getattr(model, "loss_kind", "cross_entropy") == "logistic":
        used_t = used.to(dtype)
    else:
        used_t = used
    rec_grads = parameter_gradient(model, rec.clamp(0, 1), used_t)
    loss = float(sum(((a - b) ** 2).sum() for a, b in zip(rec_grads, true_grads)))
    from . import metrics

    mse = float(metrics.mse(rec.clamp(0, 1), images.to(dtype)).mean())
    result = assemble_result(config, rec, used, False, images.to(dtype), labels, [1], [loss], [mse], {}, wall,
                             not np.isfinite(out.image).all(), 1, "cpu")
    result.meta = {**result.meta, "rgap": {"layers": [l.to_dict() for l in out.layers],
                                            **{k: v for k, v in out.meta.items()}}}
    return result


# --- rank analysis -------------------------------------------------------------------------------

def rank_analysis(model: nn.Module, in_shape, image: torch.Tensor | None = None, label: int | None = None):
    """R-GAP's rank analysis: per block, constraints vs unknowns, and the rank-analysis index.

    Args:
        model: a network :func:`rgap_layers` accepts.
        in_shape: (C, H, W) of one input.
        image: optional (1, C, H, W) image in [0, 1]; with it (and ``label``, default 0) the
            numerical rank of every block's system is measured on R-GAP's reconstruction of
            that image (the gradient constraints depend on the image through delta).
        label: label of ``image``.

    Returns:
        ``(table, summary)``: a pandas DataFrame with one row per block below the head
        (input side first; the head is solved in closed form) with columns layer, kind,
        in_shape, unknowns, forward (outputs), gradient (weights, R-GAP's count),
        gradient_effective (bound on their rank: C_in*min(C_out k^2, H*W) for a convolution,
        n_in for a linear layer), virtual (pull-back constraints,
        max(0, unknowns - min of the lower blocks' unknowns)), constraints (forward +
        gradient_effective + virtual), deficiency (max(0, unknowns - constraints)), and with
        ``image`` also rank, measured_deficiency, residual; and a dict summary with
        ``rank_index`` (sum of deficiencies: 0 = every block determined, R-GAP recovers the
        input), ``fully_determined`` (bool), ``unknowns`` (sum), ``layers``, and with
        ``image`` ``measured_rank_index`` (sum of measured deficiencies) and ``mse``.

    Raises:
        ValueError: unsupported model (see :func:`rgap_layers`).
    """
    import pandas as pd

    blocks = rgap_layers(model, in_shape)
    rows = []
    lower_min = math.inf
    for b in blocks[:-1]:
        n = _n(b.in_shape)
        fwd = _n(b.out_shape)
        grad = int(b.op.weight.numel())
        if isinstance(b.op, nn.Conv2d):
            k = b.op.kernel_size[0] * b.op.kernel_size[1]
            eff = b.in_shape[0] * min(b.out_shape[0] * k, _n(b.in_shape[1:]))
            kind = f"conv {b.op.kernel_size[0]}x{b.op.kernel_size[1]} s{b.op.stride[0]} p{b.op.padding[0]}"
        else:
            eff = n
            kind = "linear"
        virtual = int(max(0, n - lower_min)) if math.isfinite(lower_min) else 0
        cons = fwd + eff + virtual
        rows.append({"layer": b.name, "kind": kind, "in_shape": "x".join(str(s) for s in b.in_shape),
                     "unknowns": n, "forward": fwd, "gradient": grad, "gradient_effective": eff,
                     "virtual": virtual, "constraints": cons, "deficiency": max(0, n - cons)})
        lower_min = min(lower_min, n)
    table = pd.DataFrame(rows)
    summary = {"layers": len(rows), "unknowns": int(table["unknowns"].sum()) if rows else 0,
               "rank_index": int(table["deficiency"].sum()) if rows else 0}
    summary["fully_determined"] = summary["rank_index"] == 0
    if image is not None:
        result = rgap_attack(image, torch.tensor([0 if label is None else int(label)]), model,
                             RGAPConfig(label="known"))
        layers = result.meta["rgap"]["layers"]
        table["rank"] = [l["rank"] for l in layers]
        table["measured_deficiency"] = [l["deficiency"] for l in layers]
        table["residual"] = [l["residual"] for l in layers]
        summary["measured_rank_index"] = int(table["measured_deficiency"].sum())
        summary["mse"] = result.mse
    return table, summary


# --- storing R-GAP results ------------------------------------------------------------------------

def run_rgap_cached(store, config: RGAPConfig, case, images, labels, model, defense=None) -> tuple:
    """Load (config, case) from ``store`` or run :func:`rgap_attack` (with ``defense``) and save it.

    Returns:
        (result, computed): computed is True when the attack ran now.
    """
    result = store.load(config, case)  # the record's config dict names method "rgap": an RGAPConfig
    if result is not None:
        store.loaded += 1
        return result, False
    result = rgap_attack(images, labels, model, config, defense=defense)
    store.save(result, case, config=config.to_dict())
    store.computed += 1
    return result, True


__all__ = ["INVERTIBLE", "LABEL_MODES", "Block", "LayerSolve", "RGAPConfig", "RGAPOutcome", "forward_matrix",
           "rank_analysis", "reconstruct", "rgap_attack", "rgap_layers", "run_rgap_cached"]
