"""Gradient-matching losses D(dW', dW) between the dummy gradient and the shared gradient.

Each loss takes two lists of tensors (one per model layer/parameter, same shapes) and returns
a scalar that is zero when the gradients match and is differentiable w.r.t. the dummy
gradient, so the attack can back-propagate it to the dummy data (a double backward).

=====================  ===================================================================
loss / estimator       formula and source
=====================  ===================================================================
euclidean              sum_l ||dW'_l - dW_l||^2. DLG (Zhu et al. 2019), paper Eq. 3.
wasserstein /          ||dW' - dW||_2 over all parameters at once (not squared). The
  dirac_whole          paper's Eq. 9 and Algorithm 2 take the gradient dW as one variable;
                       with one shared gradient both "distributions" of Eq. 4 are single
                       points (Dirac measures), and W1 between two points is their L2 ground
                       distance (we read Eq. 9's m samples as one per side). This is the
                       value our dual critic estimates (Eq. 7-8: at the critic's optimum the
                       gradient of D is the gradient of the critic's value). A monotone transform of DLG's loss, sqrt(euclidean): the same
                       descent direction at every point (grad ||d|| = grad ||d||^2 / (2 ||d||)),
                       other step lengths and curvature. The default of WDLG.
wasserstein / dirac    sum_l ||dW'_l - dW_l||_2: one Dirac pair per parameter tensor and
                       the layers' W1 summed, as DLG sums its loss over layers. Between 1 and
                       sqrt(L) times the whole-gradient norm for L parameter tensors; its
                       per-layer weighting gives it other descent directions than DLG, and a
                       kink at each layer's match.
wasserstein / sorted   sum_l W1(entries of dW'_l, entries of dW_l) = sum_l mean_i
                       |sort(dW'_l)_i - sort(dW_l)_i|: each layer's entries read as samples
                       of a 1-D distribution; exact W1 by sorting. Zero iff the two layers
                       hold the same multiset of values (not necessarily in the same places).
wasserstein / dual     paper Eq. 5-9 and Algorithm 2: the Kantorovich-Rubinstein dual
                       sup_f E[f(dW')] - E[f(dW)] over K-Lipschitz critics f, maximised for
                       a few steps at every attack iteration (the critic is then held fixed),
                       and the attack descends on the critic's value. Our critic is linear
                       over the whole gradient with ||w||_2 <= K: it estimates
                       K * ||dW' - dW||_2, that is K times ``dirac_whole`` (L2 ground cost).
cosine                 1 - <dW', dW> / (||dW'|| ||dW||) with dW', dW every layer's gradient
                       concatenated into one vector: one cosine per attack, over all
                       layers (Inverting Gradients, Geiping et al. 2020, Eq. 4; their code's
                       ``cost_fn="sim"`` with all layers and equal weights). In [0, 2],
                       invariant to scaling either gradient by a positive factor.
sapag                  sum_l w_l (1 - exp(-||dW'_l - dW_l||^2 / sigma_l)), a Gaussian kernel
                       per layer with sigma_l adapted to the true gradient (SAPAG, Wang et
                       al. 2020; exact choices in :func:`batched_sapag`). In [0, sum_l w_l].
=====================  ===================================================================

The total-variation prior of Inverting Gradients (:func:`total_variation`) acts on the dummy
image, not on gradients; the matching objective adds it (``AttackConfig.tv_weight``).

The dual critic. For two Dirac measures the supremum over K-Lipschitz f (Lipschitz in the L2
norm of the whole gradient) is attained by a linear function, so the critic is linear,
f(dW) = <w, dW> summed over every parameter tensor, with ||w||_2 <= K over all of them
together. Its supremum is K * ||dW' - dW||_2 at w = K (dW' - dW) / ||dW' - dW|| (Cauchy-Schwarz).
The critic is trained by projected, normalised gradient ascent (each step has length ``lr * K``
whatever the gradients' scale, then w is projected back into the ball); with the default
lr = 1 a step from the sphere halves the angle between w and its optimum; five steps from any
start in the ball reach the closed form within 1% (the worst start, about 125 degrees off,
leaves about 0.2%; tests check it). The paper does not
define its critic; this is our documented reading. An earlier version of this package clipped
each weight to [-c, c] (WGAN's clipping): that critic's supremum is c * sum ||dW' - dW||_1, a
W1 with an L1 ground cost, not the L2 ground cost we read in the paper's Eq. 4, and it is gone.
"""
from __future__ import annotations

import torch

from .config import ESTIMATORS, LOSSES

Grads = list[torch.Tensor]

# sqrt(s + EPS) - sqrt(EPS): an L2 norm that is zero at zero and twice differentiable there.
_EPS = 1e-20

# Every loss is written once, batched: each tensor of ``dummy`` and ``true`` carries a leading
# axis of N independent attacks, (N, *param.shape), and the loss returns (N,), entry i
# depending on attack i only. The one-attack functions below add and remove that axis.


def _check(dummy: Grads, true: Grads):
    if len(dummy) != len(true):
        raise ValueError(f"gradient lists differ in length: {len(dummy)} vs {len(true)}")
    for i, (d, t) in enumerate(zip(dummy, true)):
        if d.shape != t.shape:
            raise ValueError(f"layer {i}: dummy gradient shape {tuple(d.shape)} != true {tuple(t.shape)}")


def _per_attack(fn):
    """The one-attack version of a batched loss: scalar from lists of unbatched tensors."""
    def single(dummy: Grads, true: Grads) -> torch.Tensor:
        _check(dummy, true)
        return fn([d[None] for d in dummy], [t[None] for t in true])[0]
    single.__name__, single.__doc__ = fn.__name__.replace("batched_", ""), fn.__doc__
    return single


def batched_euclidean(dummy: Grads, true: Grads) -> torch.Tensor:
    """DLG's loss: sum over layers of squared L2 differences (paper Eq. 3). (N,), >= 0."""
    return sum(((d - t) ** 2).flatten(1).sum(1) for d, t in zip(dummy, true))


def batched_wasserstein_dirac_whole(dummy: Grads, true: Grads) -> torch.Tensor:
    """W1 between two Dirac measures over the whole gradient: ||dW' - dW||_2, all parameters at once.

    The paper's Eq. 4 with the gradient as one variable (Eq. 9, Algorithm 2) and one shared
    gradient: W1 between two points is their L2 ground distance. Equal to sqrt of DLG's
    :func:`batched_euclidean`, so its gradient points the same way as DLG's (see the module
    docstring). Smoothed as sqrt(s + 1e-20) - 1e-10: exactly zero at a match and twice
    differentiable everywhere. (N,), >= 0, in gradient units.
    """
    return torch.sqrt(batched_euclidean(dummy, true) + _EPS) - _EPS ** 0.5


def batched_wasserstein_dirac(dummy: Grads, true: Grads) -> torch.Tensor:
    """W1 between two Dirac measures per layer, summed: sum_l ||dW'_l - dW_l||_2.

    Each parameter tensor's gradient is one point, so each layer contributes its own W1 (the
    L2 distance); this is not the L2 norm of the whole gradient difference (see the module
    docstring).

    Smoothed as sqrt(s + 1e-20) - 1e-10 so that it is exactly zero at a match and twice
    differentiable everywhere. (N,), >= 0, in gradient units.
    """
    return sum(torch.sqrt(((d - t) ** 2).flatten(1).sum(1) + _EPS) - _EPS ** 0.5 for d, t in zip(dummy, true))


def batched_wasserstein_sorted(dummy: Grads, true: Grads) -> torch.Tensor:
    """Exact 1-D W1 between the empirical distributions of each layer's gradient entries.

    For n entries per layer with weight 1/n each, W1 = mean_i |a_(i) - b_(i)| over sorted
    values. Summed over layers. (N,), >= 0, in gradient units.
    """
    return sum((torch.sort(d.flatten(1), dim=1).values - torch.sort(t.flatten(1), dim=1).values).abs().mean(1)
               for d, t in zip(dummy, true))


def batched_cosine(dummy: Grads, true: Grads) -> torch.Tensor:
    """Inverting Gradients' loss: 1 - cosine similarity of the concatenated gradients.

    1 - sum_l <dW'_l, dW_l> / (sqrt(sum_l ||dW'_l||^2) sqrt(sum_l ||dW_l||^2)): one cosine per
    attack over all layers together (Geiping et al. 2020, Eq. 4; reference code
    ``reconstruction_costs(cost_fn="sim", indices="def", weights="equal")``). (N,), in [0, 2],
    0 iff dW' is a positive multiple of dW; unchanged when either gradient is scaled by a
    positive factor. Squared norms are clamped at 1e-30 before the square root so that a zero
    gradient gives 1 (not NaN).
    """
    dot = sum((d * t).flatten(1).sum(1) for d, t in zip(dummy, true))
    dd = sum((d * d).flatten(1).sum(1) for d in dummy)
    tt = sum((t * t).flatten(1).sum(1) for t in true)
    return 1 - dot / (dd.clamp_min(1e-30).sqrt() * tt.clamp_min(1e-30).sqrt())


def sapag_sigma(true: Grads) -> list[torch.Tensor]:
    """SAPAG's adaptive kernel widths: sigma_l = n_l * Var(dW_l), one per layer and attack.

    ``true``: tensors (N, *param.shape). Var is the population variance of layer l's n_l
    entries in attack i's true gradient, so sigma_l = sum_j (dW_lj - mean_l)^2, in squared
    gradient units; clamped below at the smallest positive normal number of the dtype so that
    a constant layer gives a step kernel (0 at a match, 1 elsewhere) instead of 0/0.
    Returns a list of (N,) tensors.
    """
    out = []
    for t in true:
        flat = t.flatten(1)
        var = ((flat - flat.mean(1, keepdim=True)) ** 2).sum(1)
        out.append(var.clamp_min(torch.finfo(t.dtype).tiny))
    return out


def batched_sapag(dummy: Grads, true: Grads, weights=None) -> torch.Tensor:
    """SAPAG's Gaussian-kernel distance, summed over layers. (N,), in [0, sum_l w_l].

    D = sum_l w_l (1 - exp(-||dW'_l - dW_l||^2 / sigma_l)),  sigma_l = n_l Var(dW_l)

    where l runs over the model's parameter tensors (weights and biases separately, as every
    loss here), n_l is the number of entries of layer l and Var(dW_l) the (population)
    variance of the entries of the *true* gradient of that layer (:func:`sapag_sigma`).

    Source and choices. SAPAG (Wang et al., "SAPAG: A Self-Adaptive Privacy Attack From
    Gradients", arXiv 2009.06228 / IJCNN 2022; seed document 004, of which we hold only the
    abstract): "an adaptive Gaussian kernel of gradient difference as a distance measure"
    that "exploits not only the gradients but also the variance of gradients" and "the DNN
    architecture". The companion's issue text fixes the form above with sigma_l "adapted
    from the variance of layer l's true gradient". No public code exists. What the text
    leaves open, and our choice:

    * sigma_l: n_l Var(dW_l) rather than Var(dW_l). The squared distance sums n_l entries,
      so with sigma_l = Var the exponent at a random start is about 2 n_l (hundreds to
      millions) and the kernel is saturated (loss = sum w_l, zero gradient); with n_l Var it
      is O(1) at the start (a dummy gradient of the true gradient's spread gives about 2)
      and the kernel is in its sensitive range. The layer size is where "the architecture"
      enters. sigma_l is fixed by the true gradient (computed once per evaluation from it),
      not by the dummy.
    * w_l: 1 for every layer (equal weights; the abstract gives none), so the bound is the
      number of parameter tensors. ``weights`` (a sequence of L floats) overrides them.
    * no 2 in the denominator (exp(-d^2 / sigma) as in the issue's statement).
    """
    sig = sapag_sigma(true)
    w = [1.0] * len(true) if weights is None else list(weights)
    if len(w) != len(true):
        raise ValueError(f"sapag needs one weight per layer: got {len(w)} weights for {len(true)} layers")
    return sum(wl * (1 - torch.exp(-((d - t) ** 2).flatten(1).sum(1) / s))
               for wl, d, t, s in zip(w, dummy, true, sig))


def batched_total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation of each attack's dummy images. x (N, B, C, H, W) -> (N,).

    TV = mean |x[..., h, w+1] - x[..., h, w]| + mean |x[..., h+1, w] - x[..., h, w]|, the
    means over all of an attack's B images, channels and pixel pairs (Geiping et al. 2020,
    the TV term of Eq. 4; their ``inversefed.metrics.total_variation`` uses these means).
    >= 0, in image units (images in [0, 1]); 0 for a constant image.
    """
    if x.ndim != 5:
        raise ValueError(f"x must have shape (N, B, C, H, W), got {tuple(x.shape)}")
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """One attack's :func:`batched_total_variation`: x (B, C, H, W) -> scalar."""
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    return batched_total_variation(x[None])[0]


euclidean = _per_attack(batched_euclidean)
wasserstein_dirac_whole = _per_attack(batched_wasserstein_dirac_whole)
wasserstein_dirac = _per_attack(batched_wasserstein_dirac)
wasserstein_sorted = _per_attack(batched_wasserstein_sorted)
cosine = _per_attack(batched_cosine)
sapag = _per_attack(batched_sapag)


class BatchedDualCritic:
    """The paper's critic estimator of W1 (Eq. 5-9, Algorithm 2) for N attacks, one critic each.

    The critic of attack i is linear over the whole gradient, f_i(dW) = sum_l <w_il, dW_l>, with
    ||w_i||_2 <= K over all its parameter tensors together: a K-Lipschitz function in the L2
    norm of the gradient. Its supremum in Eq. 6, the Kantorovich-Rubinstein dual between the two
    Dirac measures at dW' and dW, is K * ||dW' - dW||_2 (Cauchy-Schwarz): K times
    :func:`batched_wasserstein_dirac_whole`, W1 with the L2 ground cost of Eq. 4.

    ``update(dummy, true)`` trains the critics: ``steps`` steps of projected, normalised
    gradient ascent on Q(w) = <w, dW' - dW>, w <- P_K(w + lr K (dW' - dW) / ||dW' - dW||),
    P_K the projection onto the ball ||w||_2 <= K. Each step has length lr * K whatever the
    scale of the gradients (which shrinks by orders of magnitude during an attack); with lr = 1
    a step from the sphere halves the angle between w and its optimum. The attacks call it
    once per iteration at the current dummy data, before the optimiser step ("maximised for a
    few steps per attack iteration"); the optimiser then evaluates its start point again under
    the new critic (:meth:`wdlg_core.optim.BatchedLBFGS.objective_changed`), so a line search
    sees one function. The critics start at w = 0 (value 0 until the first update) and keep
    their weights from one iteration to the next, as WGAN keeps its critic.

    Calling the critic returns its value with w fixed: (N,), differentiable w.r.t. the dummy
    gradient, in gradient units times K, at most K * ||dW' - dW||_2 and negative when w points
    away from the difference (as it can at a trial point of a line search).

    Args:
        steps: ascent steps per update (WGAN's n_critic).
        lr: step length in units of K (> 0). 1 reaches the optimum in one step from w = 0.
        bound: K, the bound on ||w||_2 (the Lipschitz constant; 1 in the paper's Eq. 5).

    Raises:
        ValueError: steps < 1, lr <= 0 or bound <= 0.
    """

    def __init__(self, steps: int = 5, lr: float = 1.0, bound: float = 1.0):
        if steps < 1 or lr <= 0 or bound <= 0:
            raise ValueError(f"critic needs steps >= 1, lr > 0, bound > 0; got {steps}, {lr}, {bound}")
        self.steps, self.lr, self.bound = steps, lr, bound
        self.weights: Grads | None = None

    def _init(self, true: Grads):
        if self.weights is None:
            self.weights = [torch.zeros_like(t) for t in true]

    @staticmethod
    def _norm(tensors: Grads) -> torch.Tensor:
        """(N,) L2 norm over all tensors of each attack."""
        return torch.sqrt(sum((t * t).flatten(1).sum(1) for t in tensors))

    #: the critics are per-attack state: the matching objective passes ``rows`` (see below)
    per_attack_state = True

    @torch.no_grad()
    def update(self, dummy: Grads, true: Grads, rows: torch.Tensor | None = None) -> None:
        """Train the critics at the current dummy gradient (see the class docstring).

        ``rows``: int64 indices of the attacks that ``dummy`` and ``true`` hold (in that order),
        when they hold only some of the N (the others' critics are untouched); None: all.
        An attack whose gradients already match (difference 0) keeps its critic.
        """
        if self.weights is None and rows is not None:
            raise ValueError("the first critic update must cover every attack (rows=None)")
        self._init(true)
        weights = self.weights if rows is None else [w[rows] for w in self.weights]
        diff = [d.detach() - t for d, t in zip(dummy, true)]   # the critic's gradient, dQ/dw
        size = self._norm(diff)                                # (n,)
        scale = torch.where(size > 0, self.lr * self.bound / size.clamp_min(torch.finfo(size.dtype).tiny), 0.0)
        for _ in range(self.steps):
            for w, g in zip(weights, diff):
                w.add_(g * scale.view(-1, *[1] * (g.ndim - 1)))
            shrink = (self.bound / self._norm(weights).clamp_min(torch.finfo(size.dtype).tiny)).clamp(max=1)
            for w in weights:
                w.mul_(shrink.view(-1, *[1] * (w.ndim - 1)))
        if rows is not None:
            for w, new in zip(self.weights, weights):
                w[rows] = new

    def __call__(self, dummy: Grads, true: Grads, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The critics' values (n,) for the attacks ``rows`` (int64 indices; None: all N)."""
        self._init(true)
        weights = self.weights if rows is None else [w[rows] for w in self.weights]
        return sum((w * (d - t)).flatten(1).sum(1) for w, d, t in zip(weights, dummy, true))


class DualCritic(BatchedDualCritic):
    """One attack's :class:`BatchedDualCritic`: unbatched gradient lists, scalar value."""

    def update(self, dummy: Grads, true: Grads) -> None:
        """Train the critic at one attack's dummy gradient (tensors shaped like the parameters)."""
        _check(dummy, true)
        super().update([d[None] for d in dummy], [t[None] for t in true])

    def __call__(self, dummy: Grads, true: Grads) -> torch.Tensor:
        _check(dummy, true)
        return super().__call__([d[None] for d in dummy], [t[None] for t in true])[0]


def dual_closed_form(dummy: Grads, true: Grads, bound: float = 1.0) -> torch.Tensor:
    """The supremum the :class:`DualCritic` approaches: bound * ||dW' - dW||_2 (one attack, scalar).

    Written plainly (one flat vector, ``torch.linalg.vector_norm``), independent of the
    estimators above, for the tests.
    """
    _check(dummy, true)
    return bound * torch.linalg.vector_norm(torch.cat([(d - t).flatten() for d, t in zip(dummy, true)]))


#: What each Wasserstein estimator's loss value is, in words (for the pages' notes on units).
ESTIMATOR_UNITS = {
    "dirac_whole": "the L2 norm (not squared) of the whole gradient difference, the square root of DLG's loss",
    "dirac": "a sum of per-layer L2 norms (not squared) of the gradient differences",
    "sorted": "a sum of per-layer 1-D W1 distances between the sorted gradient entries",
    "dual": "the critic's value, K times the L2 norm of the whole gradient difference once it is trained",
}


def make_loss(loss: str = "euclidean", estimator: str = "dirac_whole", *, critic_steps: int = 5,
              critic_lr: float = 1.0, critic_bound: float = 1.0, batched: bool = False):
    """A gradient-matching loss ``f(dummy_grads, true_grads) -> scalar`` by name.

    Args:
        loss: ``"euclidean"``, ``"wasserstein"``, ``"cosine"`` or ``"sapag"``.
        estimator: for the Wasserstein loss, ``"dirac_whole"``, ``"dirac"``, ``"sorted"`` or
            ``"dual"``.
        critic_*: the dual critic's settings (see :class:`DualCritic`).
        batched: return the batched form ((N, ...) tensors in, (N,) out) instead of the
            one-attack form (scalar out).

    Returns:
        A callable; for ``"dual"`` a fresh stateful critic (use one per attack or batch).

    Raises:
        ValueError: unknown loss or estimator (the message lists the valid names).
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid choices: {', '.join(LOSSES)}")
    if loss == "wasserstein" and estimator not in ESTIMATORS:
        raise ValueError(f"unknown wasserstein estimator {estimator!r}; valid choices: {', '.join(ESTIMATORS)}")
    if loss == "wasserstein" and estimator == "dual":
        return (BatchedDualCritic if batched else DualCritic)(critic_steps, critic_lr, critic_bound)
    name = f"wasserstein_{estimator}" if loss == "wasserstein" else loss
    return globals()[("batched_" if batched else "") + name]
