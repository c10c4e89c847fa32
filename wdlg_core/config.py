"""Attack configuration: one frozen dataclass per iterative attack.

An :class:`AttackConfig` says *how* to attack (method, optimiser, loss, budget); *what* is
attacked (dataset, image indices, model) is the case, recorded next to it in the results store.
The config is hashable and turns into a plain dict, so the store can key results by it.

The methods and their defaults are declared once, in :mod:`wdlg_core.methods` (a method's
loss, label restoration and optimiser defaults); this class configures the iterative ones
(dlg, idlg, wdlg, ig, sapag; R-GAP, closed form, has its own config, ``wdlg_core.rgap.RGAPConfig``).
Every loss works with every method (``loss=`` overrides the method's default), e.g.
``AttackConfig(method="idlg", loss="sapag")`` is SAPAG's distance with iDLG's label
restoration, and ``AttackConfig(method="ig")`` is Inverting Gradients with its reference
settings: Adam, lr 0.1, signed gradients, step decay of the learning rate, the dummy image
boxed to [0, 1] after each step, total-variation weight 1e-4
(:data:`wdlg_core.methods.IG_DEFAULTS`).

Store keys. The store hashes :meth:`AttackConfig.to_dict`. Fields added after version 0.3.0
(``tv_weight``, ``signed``, ``boxed``, ``lr_decay``: :data:`NEW_FIELDS`) are left out of the
dict when they hold their neutral value (0 / False) and the method's default is that neutral
value, so every dlg/idlg/wdlg configuration that does not use them keeps the dict, and hence
the store key, it had before they existed; an ig configuration always lists them.
``AttackConfig(**d)`` and ``from_dict`` rebuild the same configuration from such a dict.
``optimizer`` and ``lr`` default to ``None`` = the method's default (L-BFGS and 1.0 as before
for dlg/idlg/wdlg, Adam and 0.1 for ig) and are resolved when the config is built, so the dict
always holds the concrete values.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .methods import ITERATIVE, METHODS, NEUTRAL, get_method

OPTIMIZERS = ("lbfgs", "adam")
LINE_SEARCHES = ("none", "armijo")
LOSSES = ("euclidean", "wasserstein", "cosine", "sapag")

#: Fields added after 0.3.0 and their neutral values (see :meth:`AttackConfig.to_dict`).
NEW_FIELDS: dict = {k: NEUTRAL[k] for k in ("tv_weight", "signed", "boxed", "lr_decay")}
#: Step decay of ``lr_decay``: the learning rate is multiplied by LR_DECAY_GAMMA after
#: floor(f * iterations) steps for each f in LR_DECAY_FRACTIONS (Geiping et al.'s schedule).
LR_DECAY_FRACTIONS = (3 / 8, 5 / 8, 7 / 8)
LR_DECAY_GAMMA = 0.1
#: Wasserstein estimators of WDLG (see :mod:`wdlg_core.losses`): the whole-gradient W1 between
#: two Dirac measures (the default; the book's introduction gives the reasons), the per-layer sum
#: of such distances, the exact 1-D W1 of each layer's entries, and our reading of the paper's
#: dual critic (Eq. 5-9), which estimates the first.
ESTIMATORS = ("dirac_whole", "dirac", "sorted", "dual")

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
        method: an iterative method of the registry: ``"dlg"``, ``"idlg"``, ``"wdlg"``,
            ``"ig"`` or ``"sapag"`` (:data:`wdlg_core.methods.ITERATIVE`).
        optimizer: ``"lbfgs"`` (DLG's choice; one iteration = one L-BFGS update with a fixed
            step ``lr`` and one function evaluation, i.e. ``torch.optim.LBFGS(max_iter=1)``)
            or ``"adam"``. ``None``: the method's default (:data:`wdlg_core.methods.METHODS`: L-BFGS,
            Adam for ``ig``), resolved when the config is built.
        lr: learning rate (step size) of the optimiser; ``None``: the method's default (1.0,
            0.1 for ``ig``).
        line_search: for L-BFGS, ``"none"`` (torch's fixed step ``lr``, DLG's setting) or
            ``"armijo"`` (our batched backtracking from ``lr``: the loss never increases, so an
            attack cannot blow up after converging; one iteration then costs one or more loss
            evaluations, see ``wdlg_core.optim``).
        history_size: L-BFGS curvature pairs kept per attack (torch's and DLG's default 100).
            The batched L-BFGS reads its whole history at every step (about once on a CPU,
            twice with the eager recursion on a GPU), so its cost grows with this number
            (see ``wdlg_core.two_loop`` and ``benchmarks/attack_throughput.py``).
        iterations: number of optimiser iterations.
        seed: seed of the dummy data x' ~ N(0, 1) and dummy label y' ~ N(0, 1) (paper Table 1).
        loss: gradient-matching loss, ``"euclidean"``, ``"wasserstein"``, ``"cosine"`` or
            ``"sapag"`` (see :mod:`wdlg_core.losses`); ``None`` takes the method's default.
        estimator: Wasserstein estimator (used when the loss is ``"wasserstein"``):
            ``"dirac_whole"`` (the default: closed form, L2 norm of the whole gradient
            difference), ``"dirac"`` (sum of per-parameter-tensor L2 norms), ``"sorted"``
            (exact 1-D W1 of each layer's entries) or ``"dual"`` (the paper's
            Kantorovich-Rubinstein critic, Algorithm 2, an estimate of ``critic_bound`` times
            ``"dirac_whole"``). See :mod:`wdlg_core.losses` and the book's introduction.
        critic_steps, critic_lr, critic_bound: the dual critic's ascent steps per iteration
            (taken before the optimiser step; the optimiser then re-evaluates its start point,
            so a line search sees one fixed loss), its step length in units of the bound, and
            the bound K on ||w||_2, the critic's Lipschitz constant.
        success_mse: an attack succeeds when its final image MSE is below this value.
        snapshots: iterations (1-based) at which to keep a copy of the dummy image; the
            initial dummy is iteration 0.
        record_every: keep the loss and image MSE curve every this many iterations.
        tv_weight: weight of the total-variation prior added to the matching loss
            (:func:`wdlg_core.losses.total_variation`, images in [0, 1]); ``None``: the
            method's default (0, 1e-4 for ``ig``).
        signed: Adam steps on the sign of the objective's gradient (Geiping et al.'s
            "signed gradients"); ``None``: the method's default (False, True for ``ig``).
        boxed: project the dummy image to [0, 1] after every optimiser step (the box
            constraint; the dummy label is not projected); ``None``: the method's default.
        lr_decay: step decay of the learning rate, times 0.1 after 3/8, 5/8 and 7/8 of
            ``iterations`` (:data:`LR_DECAY_FRACTIONS`); ``None``: the method's default.

    ``signed``, ``boxed`` and ``lr_decay`` need ``optimizer="adam"``. Fields left at ``None``
    are resolved to concrete values when the config is built; see the module docstring for
    how the new fields stay out of store keys at their neutral values.

    Raises:
        ValueError: an unknown method, optimizer, loss or estimator (the message lists the
            valid names), a non-positive lr / iterations, a negative tv_weight, or signed /
            boxed / lr_decay with an optimizer other than Adam.
    """

    method: str = "wdlg"
    optimizer: str | None = None
    lr: float | None = None
    line_search: str = "none"
    history_size: int = 100
    iterations: int = 300
    seed: int = 0
    loss: str | None = None
    estimator: str = "dirac_whole"
    critic_steps: int = 5
    critic_lr: float = 1.0
    critic_bound: float = 1.0
    success_mse: float = SUCCESS_MSE
    snapshots: tuple[int, ...] = ()
    record_every: int = 1
    tv_weight: float | None = None
    signed: bool | None = None
    boxed: bool | None = None
    lr_decay: bool | None = None

    def __post_init__(self):
        method = get_method(self.method)  # unknown: the error lists every method
        if not method.iterative:
            raise ValueError(f"method {self.method!r} is {method.kind.replace('_', ' ')}, not an iterative attack: "
                             f"configure it with wdlg_core.methods.get_method({self.method!r}).config(); "
                             f"iterative methods: {', '.join(ITERATIVE)}")
        for name, default in method.defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        for name in ("signed", "boxed", "lr_decay"):
            object.__setattr__(self, name, bool(getattr(self, name)))
        object.__setattr__(self, "tv_weight", float(self.tv_weight))
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("line_search", self.line_search, LINE_SEARCHES)
        if self.line_search != "none" and self.optimizer != "lbfgs":
            raise ValueError(f"line_search {self.line_search!r} needs optimizer 'lbfgs', got {self.optimizer!r} "
                             "(pass line_search='none'; CLI: --line-search none)")
        if self.loss is not None:
            _choice("loss", self.loss, LOSSES)
        _choice("wasserstein estimator", self.estimator, ESTIMATORS)
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not (self.critic_steps >= 1 and self.critic_lr > 0 and self.critic_bound > 0):
            raise ValueError(f"the dual critic needs critic_steps >= 1, critic_lr > 0 and critic_bound > 0; got "
                             f"{self.critic_steps}, {self.critic_lr}, {self.critic_bound}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {self.history_size}")
        if self.record_every < 1:
            raise ValueError(f"record_every must be >= 1, got {self.record_every}")
        if not self.tv_weight >= 0:
            raise ValueError(f"tv_weight must be >= 0, got {self.tv_weight}")
        adam_only = [n for n in ("signed", "boxed", "lr_decay") if getattr(self, n)]
        if adam_only and self.optimizer != "adam":
            hint = (" (method 'ig' turns them on by default: pass them as False to use L-BFGS; CLI: "
                    + " ".join(f"--no-{n.replace('_', '-')}" for n in adam_only) + ")"
                    if self.method == "ig" else "")
            raise ValueError(f"{', '.join(adam_only)} need optimizer 'adam', got {self.optimizer!r}{hint}")
        object.__setattr__(self, "snapshots", tuple(sorted(set(int(s) for s in self.snapshots))))

    @property
    def matching_loss(self) -> str:
        """The gradient-matching loss actually used (the override or the method's default)."""
        return self.loss or METHODS[self.method].loss

    @property
    def label_mode(self) -> str:
        """``"joint"`` (optimise a soft dummy label) or ``"restore"`` (iDLG restoration)."""
        return METHODS[self.method].label

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field (the store hashes it).

        A field of :data:`NEW_FIELDS` is left out when it holds its neutral value (0 / False)
        and that is also the method's default, so dlg/idlg/wdlg configurations that do not use
        them keep their pre-0.3.1 dict and store key, and ``AttackConfig(**d)`` rebuilds the
        same config (an ig config always lists them: its defaults are not neutral).
        """
        d = dataclasses.asdict(self)
        d["snapshots"] = list(self.snapshots)
        for name, neutral in NEW_FIELDS.items():
            if d[name] == neutral and METHODS[self.method].defaults[name] == neutral:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AttackConfig":
        """Inverse of :meth:`to_dict` (absent new fields take the method's default)."""
        d = dict(d)
        if d.pop("critic_clip", None) is not None:  # the weight-clipped critic of versions <= 0.3.0 (gone,
            d.pop("critic_lr", None)                # see losses); its step size meant something else
        d["snapshots"] = tuple(d.get("snapshots", ()))
        return cls(**d)

    def lr_milestones(self) -> tuple[int, ...]:
        """Steps after which ``lr_decay`` multiplies the learning rate by :data:`LR_DECAY_GAMMA`.

        floor(f * iterations) for f in :data:`LR_DECAY_FRACTIONS` (Geiping et al. compute
        ``iterations // 2.667``, ``// 1.6``, ``// 1.142``, the same fractions rounded); empty
        without ``lr_decay``.
        """
        if not self.lr_decay:
            return ()
        return tuple(int(f * self.iterations) for f in LR_DECAY_FRACTIONS)

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (1-based): lr * gamma^(milestones < step)."""
        return self.lr * LR_DECAY_GAMMA ** sum(1 for m in self.lr_milestones() if m < step)

    def replace(self, **changes) -> "AttackConfig":
        """A copy with ``changes`` applied and validated again (ValueError as in the constructor)."""
        return dataclasses.replace(self, **changes)
