"""Experiments: one module per paper artefact, each returning tidy tables for a notebook.

Every experiment turns its profile into a list of :class:`Job` (one attack: config + case +
the images) and hands it to :func:`run_jobs`, the single place where attacks are executed.
``run_jobs`` goes through the results store, so a rerun loads stored results and an
interrupted sweep resumes where it stopped. (A batched engine can replace the per-attack loop
inside ``run_jobs`` without touching the experiments.)
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from ..config import AttackConfig
from ..result import AttackResult
from ..store import Case, ResultStore

#: Environment variable read by :func:`configure_threads` (``wdlg run`` sets it per notebook).
THREADS_ENV = "WDLG_TORCH_THREADS"


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count from ``threads`` or ``$WDLG_TORCH_THREADS``.

    ``wdlg run`` executes several notebooks in parallel and gives each a share of the cores
    through this variable. Without either, torch's default is kept. Returns the count in use.
    """
    import torch

    threads = threads or int(os.environ.get(THREADS_ENV, "0") or 0)
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def check_device(device: str) -> str:
    """Return ``device`` if torch can use it.

    Raises:
        ValueError: a CUDA device while torch sees none (the message says to pass cpu), or a
            device string torch does not understand.
    """
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r} ({err}); valid examples: cpu, cuda, cuda:0") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested, but torch {torch.__version__} sees no CUDA device here; "
                         "use --device cpu")
    return str(device)


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


def run_one(job: Job, device: str = "cpu") -> AttackResult:
    """Run ``job`` with :func:`wdlg_core.run_attack` (no store)."""
    from .. import run_attack
    from ..provenance import provenance

    options = job.config.to_dict()
    method, optimizer = options.pop("method"), options.pop("optimizer")
    iterations, seed = options.pop("iterations"), options.pop("seed")
    result = run_attack(job.images, job.labels, method=method, model=job.case.model, optimizer=optimizer,
                        iterations=iterations, seed=seed, model_seed=job.case.model_seed,
                        num_classes=job.case.num_classes, device=device, **options)
    result.meta = {**(result.meta or {}), "device": str(device), "provenance": provenance(device)}
    return result


def run_jobs(jobs: list[Job], store: ResultStore, device: str = "cpu", progress: bool | None = True,
             desc: str = "attacks") -> list[AttackResult]:
    """Run (or load from ``store``) every job, in order, saving each as soon as it finishes.

    Args:
        jobs: the attacks.
        store: the results store (resumable: stored jobs are loaded, not recomputed).
        device: torch device for the jobs that must be computed.
        progress: show a tqdm progress bar (None: only on a terminal).
        desc: progress-bar label.

    Returns:
        One :class:`AttackResult` per job, in the order of ``jobs``.
    """
    from tqdm.auto import tqdm

    configure_threads()
    results = []
    bar = tqdm(jobs, desc=desc, unit="attack", disable=(False if progress else None if progress is None else True))
    for job in bar:
        bar.set_postfix_str(f"{job.case.dataset} {job.config.method} #{','.join(map(str, job.case.indices))}")
        results.append(store.get_or_run(job.config, job.case, lambda job=job: run_one(job, device)))
    bar.close()
    return results
