"""The method registry: every attack of the companion, declared once.

An entry says what a method *is*: its kind (an iterative gradient-matching attack, or a
closed-form solver), its default gradient-matching loss or its solver, how it obtains the
label, and the optimiser defaults it brings. Everything else reads this table: the attack
configuration (:class:`wdlg_core.config.AttackConfig` takes its defaults from it), the one
attack contract :func:`wdlg_core.run_attack`, the results store (which config class a record
holds), the CLI (``wdlg attack --method``), the profiles and the pages (display names).

======  ===========  ==========================  =========================================
method  kind         loss / solver               label
======  ===========  ==========================  =========================================
dlg     iterative    euclidean (paper Eq. 3)     joint: a soft dummy label optimised with
                                                 the dummy data (Zhu et al. 2019)
idlg    iterative    euclidean                   restored from the last layer's weight
                                                 gradient (Zhao et al. 2020)
wdlg    iterative    wasserstein (Eq. 4-9)       restored as in iDLG (paper Algorithm 2)
ig      iterative    cosine + TV prior; Adam on  restored as in iDLG (Geiping et al. 2020
                     signed gradients, boxed,    take it as known; for one image iDLG's
                     step decay                  rule recovers it)
sapag   iterative    sapag (Gaussian kernel per  joint, as DLG (Wang et al. 2022)
                     layer)
rgap    closed form  R-GAP's layer-by-layer      inferred from the sign of the output
                     linear solve (rgap.py)      layer's gradient (Zhu & Blaschko 2021)
======  ===========  ==========================  =========================================

Adding a method is one :class:`Method` entry in :data:`METHODS`, its loss in
:mod:`wdlg_core.losses` (iterative) or its solver (closed form), and tests; CONTRIBUTING.md
walks through an example. This module imports nothing else of the package at import time, so
every other module may import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

KINDS = ("iterative", "closed_form")
LABEL_MODES = ("joint", "restore", "infer")

#: Optimiser defaults of the DLG family: L-BFGS with step 1 (DLG's reference code), no prior,
#: plain gradients, no box, no decay. The neutral values of AttackConfig's later fields.
NEUTRAL = MappingProxyType({"optimizer": "lbfgs", "lr": 1.0, "tv_weight": 0.0, "signed": False, "boxed": False,
                            "lr_decay": False})


@dataclass(frozen=True)
class Method:
    """One attack method.

    Attributes:
        name: the registry key, used in configs, store records, the CLI and the pages.
        title: display name (figures, tables, reports).
        kind: ``"iterative"`` (gradient matching from dummy data, run by the batched engine)
            or ``"closed_form"`` (a solver, no iterations, no seed).
        label: ``"joint"`` (a dummy label optimised jointly), ``"restore"`` (iDLG's rule from
            the last layer, :mod:`wdlg_core.labels`) or ``"infer"`` (the solver reads it).
        loss: default gradient-matching loss of an iterative method (a name of
            :data:`wdlg_core.config.LOSSES`); None for a closed-form method.
        defaults: optimiser defaults of an iterative method (keys of :data:`NEUTRAL`); the
            AttackConfig fields left as None take them.
        solver: ``solver(images, labels, model, config, device, defense) -> AttackResult``
            for a closed-form method; None for an iterative one.
        config_class: for a closed-form method, ``() -> type``, the class of its
            configuration (imported when asked, so this module stays import-free).
        reference: the paper (and reference code) the method follows.
    """

    name: str
    title: str
    kind: str
    label: str
    loss: str | None = None
    defaults: Mapping = field(default_factory=lambda: NEUTRAL)
    solver: Callable | None = None
    config_class: Callable[[], type] | None = None
    reference: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: unknown kind {self.kind!r}; valid kinds: {', '.join(KINDS)}")
        if self.label not in LABEL_MODES:
            raise ValueError(f"method {self.name!r}: unknown label mode {self.label!r}; "
                             f"valid modes: {', '.join(LABEL_MODES)}")
        if (self.kind == "iterative") != (self.loss is not None) or (self.kind == "closed_form") != (
                self.solver is not None and self.config_class is not None):
            raise ValueError(f"method {self.name!r}: an iterative method needs a loss, a closed-form method a solver "
                             "and a config class")
        object.__setattr__(self, "defaults", MappingProxyType({**NEUTRAL, **self.defaults}))

    @property
    def iterative(self) -> bool:
        return self.kind == "iterative"

    def config(self, **options):
        """The method's configuration with ``options`` (an AttackConfig for an iterative
        method, the solver's config class for a closed-form one).

        Raises:
            ValueError: an option the config class does not have (the message lists them),
                or an invalid value.
        """
        import dataclasses

        if self.iterative:
            from .config import AttackConfig as cls
        else:
            cls = self.config_class()
        fields = [f.name for f in dataclasses.fields(cls) if f.name != "method"]
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for method {self.name!r}; valid options: "
                             f"{', '.join(fields)}")
        return cls(method=self.name, **options)

    def config_from_dict(self, d: Mapping):
        """Inverse of the config's ``to_dict`` (the store keeps config dicts)."""
        if self.iterative:
            from .config import AttackConfig

            return AttackConfig.from_dict(d)
        return self.config_class().from_dict(d)


def _rgap_solver(images, labels, model, config, device="cpu", defense=None):
    from .rgap import rgap_attack

    return rgap_attack(images, labels, model, config, device=device, defense=defense)


def _rgap_config():
    from .rgap import RGAPConfig

    return RGAPConfig


#: Inverting Gradients as their reference code runs it (JonasGeiping/invertinggradients,
#: ``reconstruct_image.py`` "ours" and ``inversefed/options.py``): Adam, lr 0.1, signed
#: gradients, MultiStepLR at 3/8, 5/8, 7/8 of the iterations with gamma 0.1, boxed, TV weight
#: 1e-4. Their dummy lives in normalised space; ours is the image in [0, 1], so on CIFAR
#: (std about 0.25) the same numbers mean steps about 4x larger and a TV prior about 4x weaker.
IG_DEFAULTS = {"optimizer": "adam", "lr": 0.1, "tv_weight": 1e-4, "signed": True, "boxed": True, "lr_decay": True}

#: Every method, by name (display order).
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("dlg", "DLG", "iterative", "joint", loss="euclidean",
           reference="Zhu, Liu, Han: Deep Leakage from Gradients, NeurIPS 2019 (mit-han-lab/dlg)"),
    Method("idlg", "iDLG", "iterative", "restore", loss="euclidean",
           reference="Zhao, Mopuri, Bilen: iDLG, arXiv:2001.02610, 2020 (PatrickZH/iDLG)"),
    Method("wdlg", "WDLG", "iterative", "restore", loss="wasserstein",
           reference="Wang, Peng, He, Tan: Wasserstein Distance-Based Deep Leakage from Gradients, "
                     "Entropy 25(5):810, 2023, Algorithm 2"),
    Method("ig", "IG", "iterative", "restore", loss="cosine", defaults=IG_DEFAULTS,
           reference="Geiping, Bauermeister, Droege, Moeller: Inverting Gradients, NeurIPS 2020 "
                     "(JonasGeiping/invertinggradients)"),
    Method("sapag", "SAPAG", "iterative", "joint", loss="sapag",
           reference="Wang, Hu, Zhang, Zhou, Wang: SAPAG: a self-adaptive privacy attack from gradients, "
                     "IJCNN 2022"),
    Method("rgap", "R-GAP", "closed_form", "infer", solver=_rgap_solver, config_class=_rgap_config,
           reference="Zhu, Blaschko: R-GAP: Recursive Gradient Attack on Privacy, ICLR 2021 (JunyiZhu-AI/R-GAP)"),
)}

#: Names of the iterative methods (what AttackConfig and the batched engine run).
ITERATIVE = tuple(name for name, m in METHODS.items() if m.iterative)
#: Display names, e.g. ``METHOD_NAMES["wdlg"] == "WDLG"``.
METHOD_NAMES = {name: m.title for name, m in METHODS.items()}


def get_method(name: str) -> Method:
    """The registry entry of ``name``.

    Raises:
        ValueError: an unknown name (the message lists the valid names).
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


def config_from_dict(d: Mapping):
    """A stored config dict back as its config object (AttackConfig or a solver's config),
    chosen by its ``method``.

    Raises:
        ValueError: no or an unknown ``method`` (the message lists the valid names).
    """
    return get_method(d.get("method", "")).config_from_dict(d)


__all__ = ["IG_DEFAULTS", "ITERATIVE", "KINDS", "LABEL_MODES", "METHODS", "METHOD_NAMES", "Method", "NEUTRAL",
           "config_from_dict", "get_method"]
