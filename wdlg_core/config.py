"""Attack configuration: one frozen dataclass per attack, and the paper's settings as presets.

An :class:`AttackConfig` says *how* to attack (method, optimiser, loss, budget); *what* is
attacked (dataset, image indices, model) is the case, recorded next to it in the results store.
The config is hashable and turns into a plain dict, so the store can key results by it.

Method table (paper Section 3, PAPER_NOTES "The method in one paragraph"):

======  ==========================  ===================================================
method  gradient-matching loss      label
======  ==========================  ===================================================
dlg     euclidean (Zhu et al. 2019) dummy label optimised jointly (soft, through softmax)
idlg    euclidean                   restored from the last layer (Zhao et al. 2020)
wdlg    wasserstein (paper Eq. 4-9) restored as in iDLG (paper Algorithm 2)
======  ==========================  ===================================================
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

#: method -> (default gradient-matching loss, how the label is obtained)
METHODS: dict[str, dict[str, str]] = {
    "dlg": {"loss": "euclidean", "label": "joint"},
    "idlg": {"loss": "euclidean", "label": "restore"},
    "wdlg": {"loss": "wasserstein", "label": "restore"},
}
OPTIMIZERS = ("lbfgs", "adam")
LINE_SEARCHES = ("none", "armijo")
LOSSES = ("euclidean", "wasserstein")
ESTIMATORS = ("dirac", "sorted", "dual")

#: Default success threshold on image MSE (images in [0, 1]): MSE < 1e-3 is PSNR > 30 dB,
#: the level at which a reconstruction is visually indistinguishable from the original.
#: The paper counts an attack successful when it "converges" without giving a threshold.
SUCCESS_MSE = 1e-3


def _choice(kind: str, value: str, valid) -> str:
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid choices: {', '.join(sorted(valid))}")
    return value


@dataclass(frozen=True)
class AttackConfig:
    """How one gradient-inversion attack runs.

    Attributes:
        method: ``"dlg"``, ``"idlg"`` or ``"wdlg"`` (see :data:`METHODS`).
        optimizer: ``"lbfgs"`` (DLG's choice; one iteration = one L-BFGS update with a fixed
            step ``lr`` and one function evaluation, i.e. ``torch.optim.LBFGS(max_iter=1)``)
            or ``"adam"``.
        lr: learning rate (step size) of the optimiser.
        line_search: for L-BFGS, ``"none"`` (torch's fixed step ``lr``, DLG's setting) or
            ``"armijo"`` (our batched backtracking from ``lr``: the loss never increases, so an
            attack cannot blow up after converging; one iteration then costs one or more loss
            evaluations, see ``wdlg_core.optim``).
        history_size: L-BFGS curvature pairs kept per attack (torch's and DLG's default 100).
            The batched L-BFGS reads its whole history twice per step, so on a CPU its cost
            grows with this number (see ``benchmarks/attack_throughput.py``).
        iterations: number of optimiser iterations.
        seed: seed of the dummy data x' ~ N(0, 1) and dummy label y' ~ N(0, 1) (paper Table 1).
        loss: gradient-matching loss; ``None`` takes the method's default.
        estimator: Wasserstein estimator (used when the loss is ``"wasserstein"``): ``"dirac"``
            (closed form, per-layer L2 norm), ``"sorted"`` (exact 1-D W1 of the entries) or
            ``"dual"`` (the paper's Kantorovich-Rubinstein critic, Algorithm 2).
        critic_steps, critic_lr, critic_clip: the dual critic's ascent steps per function
            evaluation, its step size, and the WGAN weight-clipping bound c (Lipschitz constant).
        success_mse: an attack succeeds when its final image MSE is below this value.
        snapshots: iterations (1-based) at which to keep a copy of the dummy image; the
            initial dummy is iteration 0.
        record_every: keep the loss and image MSE curve every this many iterations.

    Raises:
        ValueError: an unknown method, optimizer, loss or estimator (the message lists the
            valid names), or a non-positive lr / iterations.
    """

    method: str = "wdlg"
    optimizer: str = "lbfgs"
    lr: float = 1.0
    line_search: str = "none"
    history_size: int = 100
    iterations: int = 300
    seed: int = 0
    loss: str | None = None
    estimator: str = "dirac"
    critic_steps: int = 5
    critic_lr: float = 0.005
    critic_clip: float = 0.01
    success_mse: float = SUCCESS_MSE
    snapshots: tuple[int, ...] = ()
    record_every: int = 1

    def __post_init__(self):
        _choice("method", self.method, METHODS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("line_search", self.line_search, LINE_SEARCHES)
        if self.line_search != "none" and self.optimizer != "lbfgs":
            raise ValueError(f"line_search {self.line_search!r} needs optimizer 'lbfgs'")
        if self.loss is not None:
            _choice("loss", self.loss, LOSSES)
        _choice("wasserstein estimator", self.estimator, ESTIMATORS)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {self.history_size}")
        if self.record_every < 1:
            raise ValueError(f"record_every must be >= 1, got {self.record_every}")
        object.__setattr__(self, "snapshots", tuple(sorted(set(int(s) for s in self.snapshots))))

    @property
    def matching_loss(self) -> str:
        """The gradient-matching loss actually used (the override or the method's default)."""
        return self.loss or METHODS[self.method]["loss"]

    @property
    def label_mode(self) -> str:
        """``"joint"`` (optimise a soft dummy label) or ``"restore"`` (iDLG restoration)."""
        return METHODS[self.method]["label"]

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field (the store hashes it)."""
        d = dataclasses.asdict(self)
        d["snapshots"] = list(self.snapshots)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AttackConfig":
        d = dict(d)
        d["snapshots"] = tuple(d.get("snapshots", ()))
        return cls(**d)

    def replace(self, **changes) -> "AttackConfig":
        return dataclasses.replace(self, **changes)


#: Named settings. ``paper_table1`` is the paper's Table 1 (lr 0.1, 500 iterations; the
#: optimiser is not stated: we take DLG's L-BFGS, the code WDLG builds on). ``dlg_reference``
#: is the original DLG code (L-BFGS, lr 1, 300 steps). ``paper_table2`` uses 448 iterations.
PRESETS: dict[str, dict] = {
    "paper_table1": {"optimizer": "lbfgs", "lr": 0.1, "iterations": 500},
    "paper_table2": {"optimizer": "lbfgs", "lr": 0.1, "iterations": 448},
    "dlg_reference": {"optimizer": "lbfgs", "lr": 1.0, "iterations": 300},
}


def preset(name: str, **overrides) -> AttackConfig:
    """An :class:`AttackConfig` from a named preset, with ``overrides`` applied.

    Raises:
        ValueError: unknown preset (the message lists the valid names).
    """
    _choice("preset", name, PRESETS)
    return AttackConfig(**{**PRESETS[name], **overrides})
