"""Profiles: how big a run of the book is. Same code, different counts.

``quick`` runs the whole book on a 2-core CPU in minutes (a few images per dataset);
``paper`` follows the paper's Table 1/2 scale (300 images where the data source has them,
448 iterations of up to 20 L-BFGS updates each) and is meant for a GPU; ``record`` is the
paper's settings on a CPU, capped by the images the offline sources hold (the book of
record shipped under ``record/``); both use the optimiser settings explained below. Notebooks take every setting from
the profile unless one of their parameters overrides it (a parameter of None means "take it
from the profile"), and every page states the profile it was run with.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import SUCCESS_MSE, AttackConfig
from .methods import get_method

#: The datasets of the paper's Figure 3 (LeNet gallery), in the order of the figure's columns.
GALLERY_DATASETS = ("mnist", "fashion_mnist", "svhn", "cifar100")


@dataclass(frozen=True)
class Profile:
    """Scale and attack settings of one run of the book.

    Attributes:
        name: profile name (a results subfolder: ``results/<name>/``).
        description: one line for page headers.
        datasets: datasets of the gallery figures.
        model: model attacked by default (``lenet``: the paper's Table 1).
        methods: methods compared by default.
        n_images: images per dataset for statistics (success rate, mean MSE); capped by what
            the data source holds.
        gallery_images: images per dataset shown (and attacked) in gallery figures.
        optimizer, lr, line_search, iterations: the attack's optimiser, (initial) step size,
            line search and iteration budget (see :class:`AttackConfig`).
        estimator: Wasserstein estimator for WDLG (see :class:`AttackConfig`).
        success_mse: success threshold on the final image MSE (images in [0, 1]).
        seed: seed of the dummy data; image ``i`` of a sweep uses ``seed`` for every method,
            so methods start from the same dummy.
        model_seed: seed of the random model weights.
        device: torch device (``cpu``, ``cuda``).
        updates_per_iteration: how many of our L-BFGS updates one of the paper's iterations
            is. The reference code of DLG and iDLG counts one ``torch.optim.LBFGS.step`` with
            its default ``max_iter=20`` as an iteration: up to 20 updates (converged attacks
            stop earlier, as torch's do). 1 in the quick profile (an iteration is an update),
            20 in the paper and record profiles (see the sensitivity page, which measured both
            readings). Pages with a fixed paper budget (448 iterations for Figures 8-14) ask
            :meth:`budget` for it in updates.
        split, source: data split and source passed to :func:`wdlg_core.data.load_images`;
            ``split="any"`` prefers the test split and falls back to other splits (the bundled
            SVHN crops have an undocumented split and are only served for ``"any"``).
    """

    name: str
    description: str
    datasets: tuple[str, ...] = GALLERY_DATASETS
    model: str = "lenet"
    methods: tuple[str, ...] = ("dlg", "wdlg")
    n_images: int = 300
    gallery_images: int = 2
    optimizer: str = "lbfgs"
    lr: float = 1.0
    line_search: str = "armijo"
    iterations: int = 448
    estimator: str = "dirac_whole"
    success_mse: float = SUCCESS_MSE
    seed: int = 0
    model_seed: int = 0
    device: str = "cpu"
    updates_per_iteration: int = 1
    split: str = "any"
    source: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "datasets", tuple(self.datasets))
        object.__setattr__(self, "methods", tuple(self.methods))
        for field in ("n_images", "gallery_images", "iterations", "updates_per_iteration"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"profile {self.name!r}: {field} must be >= 1, got {getattr(self, field)}")
        # validate the attack settings once, with the error messages of AttackConfig
        for method in self.methods:
            self.attack_config(method)

    def override(self, **params) -> "Profile":
        """A copy with the given fields replaced; parameters that are None are ignored
        (a notebook parameter of None means "take it from the profile").

        Raises:
            ValueError: an unknown field (the message lists the valid ones).
        """
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ValueError(f"unknown profile field(s) {unknown}; valid fields: {', '.join(sorted(fields))}")
        changes = {k: v for k, v in params.items() if v is not None}
        for k in ("datasets", "methods"):
            if isinstance(changes.get(k), str):
                changes[k] = (changes[k],)
        return dataclasses.replace(self, **changes)

    def budget(self, paper_iterations: int) -> int:
        """The paper's ``paper_iterations`` in this profile's L-BFGS updates
        (``paper_iterations * updates_per_iteration``)."""
        return int(paper_iterations) * int(self.updates_per_iteration)

    def attack_config(self, method: str, **overrides) -> AttackConfig:
        """The :class:`AttackConfig` of ``method`` under this profile, with ``overrides``.

        The profile's line search is an L-BFGS option: an attack that ends up with another
        optimiser runs without one, unless ``overrides`` asks for one (then AttackConfig raises).
        """
        settings = dict(method=method, optimizer=self.optimizer, lr=self.lr, line_search=self.line_search,
                        iterations=self.iterations, seed=self.seed, estimator=self.estimator,
                        success_mse=self.success_mse)
        defaults = get_method(method).defaults  # unknown method: the error lists the valid ones
        if defaults["optimizer"] == "adam":
            # a method defined with its own optimiser (Inverting Gradients: Adam, lr 0.1, step
            # decay) keeps it; the profile's L-BFGS settings apply to the DLG family only
            settings.update(optimizer=None, lr=None, line_search="none")
        merged = {**settings, **overrides}
        optimizer = merged["optimizer"] or defaults["optimizer"]
        if optimizer != "lbfgs" and "line_search" not in overrides:
            merged["line_search"] = "none"
        return AttackConfig(**merged)

    def to_dict(self) -> dict:
        """The profile as a JSON-able dict (tuples as lists), recorded in results files."""
        d = dataclasses.asdict(self)
        d["datasets"] = list(self.datasets)
        d["methods"] = list(self.methods)
        return d


# Optimiser of both profiles: L-BFGS (DLG's optimiser) from step 1 with our batched Armijo
# backtracking. Measured while building the companion: with a fixed step, lr 1 reaches the
# private image and then blows up on some images, and lr 0.1 (the paper's Table 1) is far
# too slow for colour images within these budgets; the sensitivity page shows both.
PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        description="CPU scale: a few images per dataset, L-BFGS (Armijo) from step 1, 1500 iterations",
        n_images=4,
        gallery_images=2,
        iterations=1500,
        device="cpu",
    ),
    "paper": Profile(
        name="paper",
        description=("paper scale (Tables 1-2): 300 images where the source has them, 448 iterations read as "
                     "DLG's code reads them (448 L-BFGS steps of up to 20 updates: 8,960 updates); for a GPU"),
        n_images=300,
        gallery_images=8,
        iterations=448 * 20,
        updates_per_iteration=20,
        device="cuda",
    ),
    "record": Profile(
        name="record",
        description=("book of record: the paper's settings on a CPU (448 iterations = 448 L-BFGS steps of up to "
                     "20 updates), every image the offline sources hold, up to 300 per dataset"),
        n_images=300,
        gallery_images=8,
        iterations=448 * 20,
        updates_per_iteration=20,
        device="cpu",
    ),
}


def get_profile(name: str | Profile, **overrides) -> Profile:
    """The named profile (or ``name`` itself if already a Profile), with ``overrides``
    (None values ignored, see :meth:`Profile.override`).

    Raises:
        ValueError: unknown profile name (the message lists the valid names).
    """
    if isinstance(name, Profile):
        profile = name
    else:
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(sorted(PROFILES))}")
        profile = PROFILES[name]
    return profile.override(**overrides)
