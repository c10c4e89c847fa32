"""Experiments: one module per paper artefact, each returning tidy tables for a notebook.

Every experiment turns its profile into a list of :class:`Job` (one attack: config + case +
the images) and hands it to :func:`run_jobs`, the single place where attacks are executed.
``run_jobs`` goes through the results store, so a rerun loads stored results and an
interrupted sweep resumes from its last finished chunk of attacks, and runs everything else
through the batched engine (``wdlg_core.engine``).
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np

from ..config import AttackConfig
from ..device import THREADS_ENV, check_device, configure_threads  # noqa: F401 (re-exported)
from ..result import AttackResult
from ..store import Case, ResultStore

#: Set to 1 (as ``wdlg run`` does for the notebooks it executes after the planner has computed
#: every attack): a page whose attack is not in the results store fails with
#: :class:`MissingRecords` instead of computing it.
READ_ONLY_ENV = "WDLG_STORE_READ_ONLY"


class MissingRecords(RuntimeError):
    """Attacks a page needs are not in the results store, and the store is read-only
    (``$WDLG_STORE_READ_ONLY=1``). The message names the attacks and the command that computes them."""

    def __init__(self, jobs: list, store: ResultStore, desc: str):
        self.jobs = jobs
        shown = "; ".join(f"{j.case.dataset} image {','.join(map(str, j.case.indices))} {j.config.method} "
                          f"{j.config.iterations} updates" + (f" defence {j.case.defense}" if j.case.defense else "")
                          for j in jobs[:3])
        more = f" and {len(jobs) - 3} more" if len(jobs) > 3 else ""
        super().__init__(f"{len(jobs)} attack(s) of {desc} are not in the results store {store.folder} "
                         f"({shown}{more}); compute them with `wdlg run --profile {store.profile}` "
                         f"(`--only PAGE` for one page, `--results-root {store.root}` for this store)")

    def __reduce__(self):  # picklable: a worker process's error reaches the planner intact
        return (_missing_records, (str(self),))


def _missing_records(message: str) -> MissingRecords:
    err = MissingRecords.__new__(MissingRecords)
    RuntimeError.__init__(err, message)
    err.jobs = []
    return err


#: How a missing number (None or NaN) reads in a page's text and tables, never "nan".
MISSING = "n/a"


def number_text(x, spec: str = ".3g") -> str:
    """``x`` formatted with ``spec``, or :data:`MISSING` when it is None or NaN (any float type)."""
    if x is None or math.isnan(float(x)):
        return MISSING
    return format(x, spec)


def count_or_default(value, default, name: str) -> int:
    """``default`` when ``value`` is None, else ``value`` as an int >= 1.

    Raises:
        ValueError: ``value`` is 0, negative or not a whole number (0 is not read as "default").
    """
    if value is None:
        return int(default)
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1 (or None for the default), got {value!r}")
    return int(value)


def images_fingerprint(images) -> str:
    """sha256 (first 16 hex digits) of images (B, C, H, W) quantised to 8 bits: identifies
    the attacked pixels whatever source or split they came from."""
    arr = np.asarray(images.detach().cpu().numpy() if hasattr(images, "detach") else images, dtype=np.float64)
    q = np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)
    h = hashlib.sha256(str(q.shape).encode())
    h.update(q.tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """One attack to run: how (config), on what (case), and the images themselves.

    Attributes:
        config: the attack configuration.
        case: dataset, image indices, model; its ``images_sha256`` should identify ``images``.
        images: (B, C, H, W) float32 tensor in [0, 1].
        labels: (B,) int64 tensor.
    """

    config: AttackConfig
    case: Case
    images: object
    labels: object


def _group_key(job: Job) -> tuple:
    """Jobs with equal keys run as one batch: same model, input shape and config up to the seed
    (defences are per attack, so defended and undefended attacks share a batch)."""
    c = job.case
    return (c.model, c.model_seed, c.num_classes, c.dataset if c.num_classes is None else None,
            tuple(job.images.shape), job.config.replace(seed=0))


def job_defense(job: Job):
    """The callable that defends ``job``'s shared gradient (None without a defence): the
    defence of ``job.case.defense`` with noise seeded by :func:`wdlg_core.defenses.noise_seed`
    of the attack's dummy seed and case, so the attack is the same alone or in any batch."""
    from ..defenses import defense_from_dict, noise_seed

    d = defense_from_dict(job.case.defense)
    return None if d is None else d.bind(noise_seed(job.config.seed, job.case.to_dict()))


def run_jobs(jobs: list[Job], store: ResultStore, device: str = "cpu", progress: bool | None = True,
             desc: str = "attacks", max_chunk: int = 512, on_result=None,
             read_only: bool | None = None) -> list[AttackResult]:
    """Run (or load from ``store``) every job through the batched engine.

    Stored jobs are loaded, not recomputed. The others are grouped by model, input shape and
    configuration (up to the seed) and defence (``job.case.defense``, applied to each attack's
    shared gradient with its own noise, see :func:`job_defense`); each group runs as batched
    chunks of :func:`wdlg_core.engine.run_attacks`, and every result is saved (one record per
    attack) as soon as its chunk finishes, so an interrupted sweep loses only the chunk in
    progress (up to 512 attacks of one group) and resumes from there.

    Args:
        jobs: the attacks.
        store: the results store.
        device: torch device for the jobs that must be computed.
        progress: tqdm progress bars (None: only on a terminal).
        desc: progress-bar label.
        max_chunk: most attacks per batched chunk.
        on_result: called as ``on_result(job, result)`` after each computed attack is saved
            (the planner's progress bar over all attacks).
        read_only: refuse to compute (None: ``$WDLG_STORE_READ_ONLY == "1"``, how ``wdlg run``
            runs the notebooks; the planner's executors pass False).

    Returns:
        One :class:`AttackResult` per job, in the order of ``jobs``.

    Raises:
        MissingRecords: ``$WDLG_STORE_READ_ONLY`` is 1 and some jobs are not stored.
    """
    import torch

    from ..engine import run_attacks
    from ..models import build_model
    from ..provenance import provenance

    from ..data import dataset_info

    check_device(device)
    configure_threads()
    results: list[AttackResult | None] = [store.load(j.config, j.case) for j in jobs]
    store.loaded += sum(r is not None for r in results)
    if read_only is None:
        read_only = os.environ.get(READ_ONLY_ENV) == "1"
    if read_only and any(r is None for r in results):
        raise MissingRecords([j for j, r in zip(jobs, results) if r is None], store, desc)
    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        if results[i] is None:
            groups.setdefault(_group_key(job), []).append(i)
    prov = provenance(device) if groups else None
    for g, (key, idx) in enumerate(groups.items()):
        first = jobs[idx[0]]
        c = first.case
        classes = c.num_classes or dataset_info(c.dataset).num_classes
        model = build_model(c.model, tuple(first.images.shape[1:]), classes, seed=c.model_seed).to(device)
        images = torch.stack([torch.as_tensor(jobs[i].images) for i in idx])  # (N, B, C, H, W)
        labels = torch.stack([torch.as_tensor(jobs[i].labels) for i in idx])  # (N, B)

        def save(j, result, idx=idx):
            job = jobs[idx[j]]
            result.meta = {**result.meta, "device": str(device), "provenance": prov}
            store.save(result, job.case, job.config)
            store.computed += 1
            results[idx[j]] = result
            if on_result is not None:
                on_result(job, result)

        label = f"{desc} [{g + 1}/{len(groups)}] {c.dataset} {first.config.method}"
        defenses = [job_defense(jobs[i]) for i in idx]
        run_attacks(model, images, labels, [jobs[i].config for i in idx], progress=progress,
                    on_result=save, desc=label, max_chunk=max_chunk,
                    defense=None if all(d is None for d in defenses) else defenses)
    return results  # type: ignore[return-value]
