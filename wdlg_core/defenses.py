"""Defences: transforms of the shared gradient applied before the attacker sees it.

A client in federated learning sends the gradient of its training loss, a list of
per-parameter tensors (one per model parameter, each shaped like that parameter). A defence
changes that list before it leaves the client; the attack then matches the *defended*
gradient. Every defence here protects the same thing, the private training images (and
labels) behind one shared gradient, and is recorded in the results store by its
:meth:`Defense.to_dict` (``Case.defense``), so a defended attack never shares a key with an
undefended one.

=========  =================================================================================
name       transform (parameter, unit, source)
=========  =================================================================================
gaussian   g + N(0, sigma^2) on every entry; sigma in gradient units (the paper's Section
           4.5, "Gaussian differential privacy noise", sigma = 2, 4, 10; DLG Section 5).
laplace    g + Laplace(0, b) on every entry; scale b in gradient units (DLG Section 5).
dpsgd      clip the whole gradient to L2 norm C, then add N(0, (z C)^2) on every entry;
           C in gradient units, z (noise multiplier) unitless (Abadi et al. 2016, DP-SGD;
           the (epsilon, delta) comes from opacus' accountant, :func:`dp_epsilon`).
prune      zero the fraction p of entries of smallest magnitude in each parameter's
           gradient, p in [0, 1) (DLG Section 5, "gradient compression/pruning").
quantize   round to fp16, or to int8 with one symmetric scale per parameter tensor
           (max |g| / 127), deterministic rounding to nearest.
compose    the above in sequence (``Compose``), sharing one random stream.
=========  =================================================================================

Randomness: noise is drawn on the CPU from a ``torch.Generator`` seeded per attack
(:func:`noise_seed` of the attack's dummy seed and case), then moved to the gradient's device
and dtype, so an attack sees the same noisy gradient alone or inside a batch of the engine,
on a CPU or a GPU. ``Defense.bind(seed)`` gives the one-argument callable the engine takes.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Callable, Mapping, Sequence

import torch

Grads = list  # list[torch.Tensor]: one tensor per model parameter, shaped like it

#: Accountants of :func:`dp_epsilon` (opacus names).
ACCOUNTANTS = ("rdp", "prv")
#: Quantisation formats of :class:`Quantize`.
QUANT_FORMATS = ("fp16", "int8")


def _finite_number(name: str, value, low: float = 0.0, low_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < low or (low_open and v == low):
        raise ValueError(f"{name} must be a finite number {'>' if low_open else '>='} {low:g}, got {value!r}")
    return v


class Defense:
    """Base class: a transform of one attack's shared gradient.

    Subclasses implement :meth:`apply` and set ``name``; ``params()`` returns the
    JSON-able parameters recorded in results.
    """

    name = "defense"

    def params(self) -> dict:
        """The defence's parameters as a JSON-able dict (e.g. ``{"sigma": 0.01}``)."""
        return {}

    def to_dict(self) -> dict:
        """``{"name": ..., **params}``: JSON-able, recorded in ``Case.defense``."""
        return {"name": self.name, **self.params()}

    def apply(self, grads: Sequence[torch.Tensor], generator: torch.Generator) -> Grads:
        """The defended gradient, one new tensor per entry of ``grads`` (shapes kept); random
        draws come from ``generator`` (CPU). Subclasses implement it; :meth:`__call__` seeds it."""
        raise NotImplementedError

    def __call__(self, grads: Sequence[torch.Tensor], seed: int = 0) -> Grads:
        """The defended gradient: a new list, ``grads`` is left unchanged.

        Args:
            grads: per-parameter tensors (any shapes, float dtype, any device).
            seed: seed of the noise (same seed, same noise).
        """
        return self.apply(list(grads), torch.Generator().manual_seed(int(seed)))

    def bind(self, seed: int) -> Callable[[Sequence[torch.Tensor]], Grads]:
        """A one-argument callable ``grads -> defended grads`` with the noise of ``seed``
        (what :class:`wdlg_core.engine.BatchedAttack` and ``run_attack`` take)."""
        def defend(grads):
            return self(grads, seed)
        defend.defense = self  # type: ignore[attr-defined]
        return defend

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Defense) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))


def _noise_like(g: torch.Tensor, generator: torch.Generator, kind: str = "normal") -> torch.Tensor:
    """Standard noise of ``g``'s shape, drawn on the CPU in float32 (device-independent),
    returned on ``g``'s device and dtype. ``kind``: ``normal`` or ``laplace`` (unit scale)."""
    if kind == "normal":
        z = torch.randn(g.shape, generator=generator, dtype=torch.float32)
    else:  # inverse CDF of Laplace(0, 1) from U(-1/2, 1/2)
        u = torch.rand(g.shape, generator=generator, dtype=torch.float64) - 0.5
        z = (-torch.sign(u) * torch.log1p(-2 * u.abs())).float()
    return z.to(g.device, g.dtype)


class GaussianNoise(Defense):
    """Add N(0, sigma^2) independently to every gradient entry.

    Protects: the private images behind the shared gradient (the noise hides the gradient's
    fine structure). Args: ``sigma`` >= 0, standard deviation in the gradient's own units (the
    paper's sigma = 2, 4, 10, Section 4.5; compare it with the gradient's typical entry, e.g.
    its mean absolute value, which depends on model, data and training state and is measured
    on the noise page). Source: the paper Section 4.5; DLG (Zhu et al. 2019) Section 5.

    Raises: ValueError for a negative or non-finite sigma.
    """

    name = "gaussian"

    def __init__(self, sigma: float):
        self.sigma = _finite_number("sigma", sigma)

    def params(self):
        return {"sigma": self.sigma}

    def apply(self, grads, generator):
        return [g + self.sigma * _noise_like(g, generator) for g in grads]


class LaplaceNoise(Defense):
    """Add Laplace(0, b) noise (density exp(-|x|/b) / 2b, std b*sqrt(2)) to every entry.

    Protects: the private images behind the shared gradient. Args: ``scale`` b >= 0, in
    gradient units. Source: DLG (Zhu et al. 2019) Section 5 (Laplacian noise).

    Raises: ValueError for a negative or non-finite scale.
    """

    name = "laplace"

    def __init__(self, scale: float):
        self.scale = _finite_number("scale", scale)

    def params(self):
        return {"scale": self.scale}

    def apply(self, grads, generator):
        return [g + self.scale * _noise_like(g, generator, "laplace") for g in grads]


def global_norm(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """L2 norm of all entries of all tensors together (a 0-d tensor, float64)."""
    return torch.sqrt(sum((g.detach().double() ** 2).sum().cpu() for g in grads))


class DPSGD(Defense):
    """DP-SGD's Gaussian mechanism on one shared gradient: clip to norm C, add N(0, (z C)^2).

    The gradient (all parameters together, as one vector) is scaled by min(1, C / ||g||_2)
    ("flat" clipping, opacus' default), then every entry gets Gaussian noise of standard
    deviation ``noise_multiplier * clip``. With batch size 1 this is exactly one step of
    DP-SGD's mechanism. For a batch of B > 1 images the engine only has the batch's mean
    gradient, and this differs from DP-SGD in two ways: (1) it clips the mean gradient, where
    DP-SGD clips each image's own gradient to C (so C does not bound one image's contribution
    and the (epsilon, delta) guarantee of :meth:`epsilon` does not follow); (2) it adds noise
    of std z C to the mean, where DP-SGD adds N(0, (z C)^2) to the sum of the clipped
    gradients and divides by B, i.e. std z C / B on the mean (here B times more noise).

    Protects: every single training example, with the (epsilon, delta) guarantee of
    :meth:`epsilon`. Args: ``clip`` C > 0 (gradient L2-norm units), ``noise_multiplier``
    z >= 0 (unitless; noise std = z C). Source: Abadi et al., "Deep Learning with Differential
    Privacy", CCS 2016, Algorithm 1; opacus ``DPOptimizer``.

    Raises: ValueError for C <= 0 or z < 0 (or non-finite values).
    """

    name = "dpsgd"

    def __init__(self, clip: float, noise_multiplier: float):
        self.clip = _finite_number("clip", clip, low_open=True)
        self.noise_multiplier = _finite_number("noise_multiplier", noise_multiplier)

    def params(self):
        return {"clip": self.clip, "noise_multiplier": self.noise_multiplier}

    def clipped(self, grads: Sequence[torch.Tensor]) -> Grads:
        """``grads`` scaled to global L2 norm at most ``clip`` (unchanged when already inside)."""
        norm = float(global_norm(grads))
        factor = min(1.0, self.clip / (norm + 1e-12))
        return [g * factor for g in grads]

    def apply(self, grads, generator):
        std = self.noise_multiplier * self.clip
        return [g + std * _noise_like(g, generator) for g in self.clipped(grads)]

    def epsilon(self, sample_rate: float, steps: int, delta: float, accountant: str = "rdp") -> float:
        """(epsilon, delta)-DP of ``steps`` releases at sampling rate ``sample_rate``
        (see :func:`dp_epsilon`)."""
        return dp_epsilon(self.noise_multiplier, sample_rate, steps, delta, accountant)


def dp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
               accountant: str = "rdp") -> float:
    """epsilon of the subsampled Gaussian mechanism, from opacus' accountant.

    Args:
        noise_multiplier: z, noise std divided by the clipping norm (> 0 for a finite epsilon).
        sample_rate: q in (0, 1], probability that one example is in a step's batch
            (batch size / dataset size for Poisson sampling; 1 for one release of one
            client's gradient).
        steps: number of noisy releases (>= 1).
        delta: the delta of (epsilon, delta)-DP, in (0, 1).
        accountant: ``"rdp"`` (Renyi DP, Mironov 2017; opacus ``RDPAccountant``) or
            ``"prv"`` (privacy random variables, Gopi et al. 2021; opacus ``PRVAccountant``).

    Returns:
        epsilon (float); ``inf`` for ``noise_multiplier == 0``.

    Raises:
        ValueError: parameters outside the ranges above or an unknown accountant.
    """
    from opacus.accountants import PRVAccountant, RDPAccountant

    z = _finite_number("noise_multiplier", noise_multiplier)
    q = _finite_number("sample_rate", sample_rate, low_open=True)
    if q > 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    d = _finite_number("delta", delta, low_open=True)
    if d >= 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {accountant!r}; valid choices: {', '.join(ACCOUNTANTS)}")
    if z == 0:
        return math.inf
    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    acc.history = [(z, q, int(steps))]
    return float(acc.get_epsilon(delta=d))


class Prune(Defense):
    """Zero the fraction ``ratio`` of entries of smallest magnitude, per parameter tensor.

    In each tensor of n entries, the floor(ratio * n) entries of smallest |g| are set to 0
    (ties broken by position, so the count is exact). Protects: the private images, by
    sending a sparse gradient (DLG found pruning above 20% defends their setting). Args:
    ``ratio`` p in [0, 1), unitless. Source: DLG (Zhu et al. 2019) Section 5, Figure 7.

    Raises: ValueError for p outside [0, 1).
    """

    name = "prune"

    def __init__(self, ratio: float):
        p = _finite_number("ratio", ratio)
        if p >= 1:
            raise ValueError(f"ratio must be in [0, 1) (the fraction of entries set to zero), got {ratio!r}")
        self.ratio = p

    def params(self):
        return {"ratio": self.ratio}

    def apply(self, grads, generator):
        out = []
        for g in grads:
            k = int(math.floor(self.ratio * g.numel()))
            flat = g.flatten().clone()
            if k:
                order = torch.sort(flat.abs(), stable=True).indices  # smallest first
                flat[order[:k]] = 0
            out.append(flat.reshape(g.shape))
        return out


class Quantize(Defense):
    """Round the gradient to a low-precision format (deterministic, no noise).

    ``fp16``: cast to IEEE half precision and back (values beyond 65504 become inf).
    ``int8``: per tensor, scale s = max |g| / 127, g -> round(g / s) * s (levels -127..127).
    Protects: the private images only through the rounding error. Args: ``format`` one of
    :data:`QUANT_FORMATS`. Source: the usual communication-compression schemes (e.g.
    QSGD, Alistarh et al. 2017, without its stochastic rounding).

    Raises: ValueError for an unknown format.
    """

    name = "quantize"

    def __init__(self, format: str):
        if format not in QUANT_FORMATS:
            raise ValueError(f"unknown quantisation format {format!r}; valid choices: {', '.join(QUANT_FORMATS)}")
        self.format = format

    def params(self):
        return {"format": self.format}

    def apply(self, grads, generator):
        if self.format == "fp16":
            return [g.half().to(g.dtype) for g in grads]
        out = []
        for g in grads:
            scale = g.abs().max() / 127
            out.append(g.clone() if float(scale) == 0 else torch.round(g / scale).clamp(-127, 127) * scale)
        return out


class Compose(Defense):
    """Apply defences in order (e.g. prune, then add noise), sharing one random stream.

    Raises: ValueError for an empty sequence or an element that is not a :class:`Defense`.
    """

    name = "compose"

    def __init__(self, steps: Sequence[Defense]):
        steps = list(steps)
        if not steps or not all(isinstance(s, Defense) for s in steps):
            raise ValueError("Compose needs a non-empty sequence of Defense objects")
        self.steps = steps

    def params(self):
        return {"steps": [s.to_dict() for s in self.steps]}

    def apply(self, grads, generator):
        for s in self.steps:
            grads = s.apply(grads, generator)
        return grads


#: Registry of :func:`make_defense`: name -> class.
DEFENSES: dict[str, type] = {"gaussian": GaussianNoise, "laplace": LaplaceNoise, "dpsgd": DPSGD,
                             "prune": Prune, "quantize": Quantize, "compose": Compose}


def make_defense(name: str, **params) -> Defense:
    """A defence by name, e.g. ``make_defense("gaussian", sigma=10)``.

    ``compose`` takes ``steps``: a list of :class:`Defense` or of dicts as written by
    :meth:`Defense.to_dict`.

    Raises:
        ValueError: unknown name (the message lists :data:`DEFENSES`), wrong or missing
            parameters (the message names the expected ones), or values out of range.
    """
    if name not in DEFENSES:
        raise ValueError(f"unknown defense {name!r}; valid names: {', '.join(sorted(DEFENSES))}")
    if name == "compose":
        steps = params.pop("steps", None)
        if params or steps is None:
            raise ValueError("compose takes exactly one parameter, steps")
        return Compose([s if isinstance(s, Defense) else defense_from_dict(s) for s in steps])
    cls = DEFENSES[name]
    import inspect

    expected = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    if sorted(params) != sorted(expected):
        raise ValueError(f"defense {name!r} takes parameters {expected}, got {sorted(params)}")
    return cls(**params)


def defense_from_dict(d: Mapping | Defense | None) -> Defense | None:
    """Inverse of :meth:`Defense.to_dict` (None and Defense objects pass through)."""
    if d is None or isinstance(d, Defense):
        return d
    d = dict(d)
    if "name" not in d:
        raise ValueError(f"a defense dict needs a 'name' (one of {', '.join(sorted(DEFENSES))}), got {d}")
    return make_defense(d.pop("name"), **d)


def noise_seed(seed: int, case: Mapping) -> int:
    """Seed of one attack's defence noise: a 63-bit integer from sha256 of the attack's dummy
    seed and its case dict (``Case.to_dict()``), so equal attacks draw equal noise wherever
    they run, and different images or seeds draw independent noise."""
    text = json.dumps({"seed": int(seed), "case": dict(case)}, sort_keys=True, separators=(",", ":"))
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


def sequential(defenses: Sequence[Callable] | Callable | None, n: int) -> Callable | None:
    """One callable for :class:`wdlg_core.engine.BatchedAttack` from N per-attack callables.

    ``BatchedAttack`` applies its ``defense`` to attack 0, 1, ..., N-1 in order; the returned
    callable hands call i to ``defenses[i]`` (a single callable or None passes through).

    Raises:
        ValueError: ``len(defenses) != n``, or (when called) more than N calls.
    """
    if defenses is None or callable(defenses):
        return defenses
    defenses = list(defenses)
    if len(defenses) != n:
        raise ValueError(f"got {len(defenses)} per-attack defenses for {n} attacks")
    if all(d is None for d in defenses):
        return None
    state = {"i": 0}

    def defend(grads):
        i = state["i"]
        if i >= n:
            raise ValueError(f"per-attack defenses called more than {n} times")
        state["i"] = i + 1
        return grads if defenses[i] is None else defenses[i](grads)
    return defend


__all__ = ["ACCOUNTANTS", "Compose", "DEFENSES", "DPSGD", "Defense", "GaussianNoise", "LaplaceNoise", "Prune",
           "QUANT_FORMATS", "Quantize", "defense_from_dict", "dp_epsilon", "global_norm", "make_defense",
           "noise_seed", "sequential"]
