"""The attack plan: every page's attacks, de-duplicated, estimated, and computed by one executor.

``wdlg plan`` and ``wdlg run`` go through here:

1. :func:`make_plan` asks every page for its jobs (:func:`wdlg_core.pages.page_jobs`, pure),
   de-duplicates them by store key (pages share attacks: Table 2 and the galleries, Figure 5
   and Table 5, ...) and looks up which are already stored;
2. :func:`estimate` prices the missing ones on a device from a short calibration run;
3. :func:`execute` computes the missing ones, grouped across pages into the largest batches
   of the batched engine (one group: same model, input shape and configuration up to the
   seed; the engine chunks a group to its memory budget), with one progress bar over all
   attacks. ``executor="local"`` runs them on this machine; ``executor="dask"`` sends one
   task per batch to a dask.distributed cluster (an existing scheduler, or a LocalCluster
   of N worker processes), whose workers write their records into the shared results store.

The store is the only meeting point: each record is written atomically and checked on
reading (:class:`wdlg_core.store.ResultStore`), so a task retried after its worker died
writes the same record again, and a half-written one is never taken for a result.
After :func:`execute`, the notebooks run with the store read-only
(``$WDLG_STORE_READ_ONLY=1``): they load, render and never compute an attack.
"""
from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace

from .experiments import Job, _group_key, run_jobs
from .profiles import Profile, get_profile
from .store import ResultStore

#: Executors of :func:`execute`.
EXECUTORS = ("local", "dask")
#: Most attacks in one batch of the local executor on a multi-core CPU: the progress bar moves
#: at least every this many attacks, and a batch of 64 small attacks already keeps a core busy.
LOCAL_MAX_BATCH = 64
#: Seconds ``--scheduler ADDRESS`` waits for the scheduler before giving up.
CONNECT_TIMEOUT_S = 5


class PlanError(ValueError):
    """A plan that cannot run as asked: its message is one line saying what is wrong."""


@dataclass
class PageCount:
    """One page's share of a plan: attacks it needs, distinct ones, and how many are stored."""

    page: str
    attacks: int
    distinct: int
    stored: int


@dataclass
class Plan:
    """The distinct attacks of some pages under one profile.

    Attributes:
        profile: the profile.
        pages: per-page counts, in the book's order.
        jobs: the distinct jobs (first occurrence), ``keys`` their store keys, ``stored``
            whether the store held each when the plan was made.
        seconds: estimated seconds of the missing attacks per page and ``"total"``
            (filled by :func:`estimate`; a page's share of an attack it shares counts once,
            for the first page that needs it).
    """

    profile: Profile
    pages: list[PageCount]
    jobs: list[Job]
    keys: list[str]
    stored: list[bool]
    owner: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    @property
    def missing(self) -> list[Job]:
        """The jobs not yet stored."""
        return [j for j, s in zip(self.jobs, self.stored) if not s]


def make_plan(profile: str | Profile, pages=None, params: dict | None = None, store: ResultStore | None = None,
              data_root=None) -> Plan:
    """The plan of ``pages`` (default: every page) under ``profile``.

    Args:
        profile: a profile name or :class:`Profile`.
        pages: page names (:data:`wdlg_core.pages.PAGE_NAMES`).
        params: page parameters (``wdlg run -p``), passed to every page in ``pages``.
        store: the results store to check (default: the profile's, under ``$WDLG_RESULTS_ROOT``).
        data_root: torchvision data root.

    Raises:
        ValueError: an unknown page or profile, or a parameter a page does not take (each
            message lists the valid names).
    """
    from .pages import PAGE_NAMES, get_page, page_jobs

    p = get_profile(profile)
    names = list(PAGE_NAMES if not pages else pages)
    for name in names:
        get_page(name)  # unknown page: the error lists the valid ones
    store = store if store is not None else ResultStore(profile=p.name)
    seen: set[str] = set()
    jobs, keys, owner, page_keys = [], [], [], {}
    for name in names:
        page = page_jobs(name, p, **_page_params(name, params, data_root))
        page_keys[name] = [store.key(j.config, j.case) for j in page]
        for job, key in zip(page, page_keys[name]):
            if key not in seen:
                seen.add(key)
                jobs.append(job)
                keys.append(key)
                owner.append(name)
    stored = dict(zip(keys, (store.has(k) for k in keys)))
    counts = [PageCount(name, len(ks), len(set(ks)), sum(stored[k] for k in set(ks))) for name, ks in page_keys.items()]
    return Plan(p, counts, jobs, keys, [stored[k] for k in keys], owner)


def _page_params(name: str, params: dict | None, data_root) -> dict:
    """The parameters page ``name`` takes out of ``params`` and ``data_root``: the run's ``-p``
    parameters go to every page (the runner checks them against the pages named), the data
    root to the pages that read images."""
    import inspect

    from .pages import get_page

    accepted = inspect.signature(get_page(name).jobs).parameters
    out = dict(params or {})
    if data_root is not None and "data_root" in accepted:
        out["data_root"] = data_root
    return out


# --------------------------------------------------------------------------- estimate
#: Iterations of the calibration runs: a short one (setup, first steps) and a longer one;
#: their difference times the steady iterations.
CALIBRATION_ITERATIONS = (2, 8)
#: Attacks in each calibration batch.
CALIBRATION_BATCH = 8


def model_macs(model_name: str, shape: tuple, num_classes: int) -> int:
    """Multiply-accumulates of one forward pass of ``model_name`` on one (C, H, W) image:
    the sum over Conv2d and Linear layers (hooks on a forward of zeros). The cost of a
    gradient-matching evaluation (forward, backward, double backward) is about proportional.
    Computed on torch's meta device, so it takes milliseconds even for Inception-v3."""
    import torch
    from torch import nn

    from .models import build_model

    with torch.device("meta"):  # shapes only: no weights are initialised, no arithmetic is done
        model = build_model(model_name, tuple(shape), num_classes, seed=0).eval()
    total = [0]

    def hook(layer, inputs, out):
        if isinstance(layer, nn.Conv2d):
            total[0] += out.numel() * layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        else:
            total[0] += out.numel() * layer.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, *shape, device="meta"))
    for h in handles:
        h.remove()
    return int(total[0])


def _family(job: Job):
    """Jobs of one family cost the same per iteration and per MAC: same method and optimiser
    settings (seed, budget and snapshots aside)."""
    return job.config.replace(seed=0, iterations=1, snapshots=())


def _seconds_per_iteration(family, batch: int, device: str) -> float:
    """Seconds per steady iteration of one attack of ``family`` (images of ``batch`` per
    attack) on ``device``, batched: LeNet on random CIFAR-10-sized images, the difference of two
    runs of :data:`CALIBRATION_ITERATIONS` iterations over :data:`CALIBRATION_BATCH` attacks."""
    import torch

    from .engine import run_batch
    from .models import build_model

    model = build_model("lenet", (3, 32, 32), 10, seed=0).to(device)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(CALIBRATION_BATCH, batch, 3, 32, 32, generator=g).to(device)    # (N, B, C, H, W)
    labels = torch.randint(0, 10, (CALIBRATION_BATCH, batch), generator=g).to(device)  # (N, B)
    times = []
    for its in CALIBRATION_ITERATIONS:
        configs = [family.replace(seed=s, iterations=its) for s in range(CALIBRATION_BATCH)]
        start = time.perf_counter()
        run_batch(model, images, labels, configs, progress=False)
        times.append(time.perf_counter() - start)
    steady = (times[1] - times[0]) / (CALIBRATION_ITERATIONS[1] - CALIBRATION_ITERATIONS[0])
    return max(steady, times[1] / CALIBRATION_ITERATIONS[1] / 4) / CALIBRATION_BATCH


def estimate(plan: Plan, device: str | None = None, progress: bool = False) -> dict:
    """Estimated seconds to compute ``plan``'s missing attacks on ``device``, per page and total.

    A calibration run times the steady iterations of a batch of :data:`CALIBRATION_BATCH`
    LeNet attacks on CIFAR-10-sized images per configuration family (method, optimiser,
    estimator; :func:`_seconds_per_iteration`), which gives seconds per iteration per forward
    multiply-accumulate; each group of missing attacks then costs its iterations times its
    model's MACs (:func:`model_macs`) times that rate. An upper bound for attacks that converge
    (they stop early) and a rough one for big networks (their cost per MAC differs from
    LeNet's), shown as such; measured under the machine's current load (another busy process
    slows the calibration as it slows the run). Also stored in ``plan.seconds``.

    Raises:
        ValueError: a device torch cannot use (the message says which).
    """
    from .data import dataset_info
    from .device import check_device, configure_threads

    device = check_device(device or plan.profile.device)
    configure_threads()  # the thread count execution will use ($WDLG_TORCH_THREADS)
    missing = [(j, o) for j, o, s in zip(plan.jobs, plan.owner, plan.stored) if not s]
    rate: dict = {}
    macs: dict = {}
    lenet = model_macs("lenet", (3, 32, 32), 10)
    seconds = Counter()
    for job, page in missing:
        fam = (_family(job), job.images.shape[0])  # an attack of B images costs B single-image ones
        if fam not in rate:
            rate[fam] = _seconds_per_iteration(*fam, device) / lenet
        c = job.case
        shape = tuple(job.images.shape[1:])
        mkey = (c.model, shape, c.num_classes or dataset_info(c.dataset).num_classes)
        if mkey not in macs:
            macs[mkey] = model_macs(*mkey)
        seconds[page] += rate[fam] * macs[mkey] * job.config.iterations
    plan.seconds = {**{c.page: float(seconds.get(c.page, 0.0)) for c in plan.pages},
                    "total": float(sum(seconds.values()))}
    return plan.seconds


def duration(seconds: float) -> str:
    """``"42 s"``, ``"12 min"``, ``"3.4 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(plan: Plan, device: str | None = None) -> str:
    """The plan as a plain-text table: per page the attacks needed, the distinct ones, how many
    are stored and (after :func:`estimate`) the estimated time of the missing ones; then totals."""
    rows = [("page", "attacks", "distinct", "stored", "to compute", "estimate")]
    for c in plan.pages:
        est = plan.seconds.get(c.page)
        rows.append((c.page, str(c.attacks), str(c.distinct), str(c.stored), str(c.distinct - c.stored),
                     "-" if est is None else duration(est) if c.distinct > c.stored else "0 s"))
    n_missing = len(plan.missing)
    total = plan.seconds.get("total")
    rows.append(("all pages (shared attacks once)", str(sum(c.attacks for c in plan.pages)), str(len(plan.jobs)),
                 str(len(plan.jobs) - n_missing), str(n_missing), "-" if total is None else duration(total)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    head = f"plan: profile {plan.profile.name}, {len(plan.pages)} page(s)"
    if total is not None:
        head += (f"; estimate on {device or plan.profile.device} from a calibration run (an upper bound for attacks "
                 "that converge: they stop early)")
    return head + "\n" + "\n".join(lines)


# --------------------------------------------------------------------------- execute
def batches(jobs: list[Job], workers: int = 1, max_batch: int = 512) -> list[list[Job]]:
    """``jobs`` grouped like :func:`wdlg_core.experiments.run_jobs` groups them (same model,
    input shape, configuration up to the seed), each group cut into batches of at most
    ``max_batch`` and, with several workers, into at least ``workers`` batches when it has
    that many jobs, so that every worker gets a share. The engine further chunks a batch to
    its memory budget."""
    groups: dict[tuple, list[Job]] = {}
    for j in jobs:
        groups.setdefault(_group_key(j), []).append(j)
    out = []
    for group in groups.values():
        size = min(max_batch, max(1, math.ceil(len(group) / max(1, workers))))
        out += [group[i:i + size] for i in range(0, len(group), size)]
    return out


def _portable(job: Job) -> Job:
    """``job`` with its own copies of its image and label tensors (a slice of a bigger tensor
    would carry the whole tensor to a Dask worker)."""
    return replace(job, images=job.images.clone(), labels=job.labels.clone())


def run_batch_task(jobs: list[Job], root: str, profile: str, version: str, device: str,
                   threads: int | None = None) -> list[str]:
    """One batch, in a worker process (a Dask task, or the local executor's): compute the jobs not already in the store at ``root`` and
    write their records there (atomically). Returns the jobs' store keys.

    A task that runs again (its worker died and the scheduler retried it elsewhere) finds the
    records its first run finished and computes only the others."""
    from .device import configure_threads

    if threads is None:
        try:
            from distributed import get_worker

            threads = get_worker().state.nthreads
        except (ImportError, ValueError, AttributeError):
            threads = None
    configure_threads(threads)
    store = ResultStore(root, profile=profile, version=version)
    run_jobs(jobs, store, device=device, progress=False, read_only=False)
    return [store.key(j.config, j.case) for j in jobs]


def check_writable(store: ResultStore) -> str | None:
    """None when this process can create files in ``store``'s attack folder, else why not."""
    import tempfile

    try:
        store.attack_folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=store.attack_folder, prefix=".probe-"):
            pass
    except OSError as err:
        return f"{store.attack_folder}: {err.strerror or err}"
    return None


def _client(scheduler: str | None, cluster: str | None):
    """A dask.distributed Client: to ``scheduler`` (an address) or a LocalCluster from
    ``cluster`` (``local:N``, N worker processes of one thread). Returns (client, cluster or None).

    Raises:
        PlanError: dask.distributed missing, both or neither of scheduler/cluster, a malformed
            ``cluster``, or a scheduler not reachable within :data:`CONNECT_TIMEOUT_S`.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise PlanError("--executor dask needs dask.distributed: pip install 'dask[distributed]'") from None
    if bool(scheduler) == bool(cluster):
        raise PlanError("--executor dask needs exactly one of --scheduler ADDRESS (an existing cluster) "
                        "or --cluster local:N (N local worker processes)")
    if cluster:
        kind, _, n = cluster.partition(":")
        if kind != "local" or not n.isdigit() or int(n) < 1:
            raise PlanError(f"--cluster {cluster!r}: expected local:N with N >= 1 worker processes, e.g. local:2")
        lc = LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(lc), lc
    try:
        return Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s"), None
    except (OSError, TimeoutError) as err:
        raise PlanError(f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S} s "
                        f"({type(err).__name__}); is it running, and is the address right?") from None


def execute(plan: Plan, store: ResultStore, executor: str = "local", scheduler: str | None = None,
            cluster: str | None = None, device: str | None = None, progress: bool | None = True) -> dict:
    """Compute ``plan``'s missing attacks into ``store``.

    Args:
        plan: from :func:`make_plan` (its ``stored`` flags are updated).
        store: the results store (a folder every Dask worker can write: a shared filesystem
            on a cluster).
        executor: ``"local"`` (this machine: a worker process per core on a CPU, this process on
            a GPU; :func:`_execute_local`) or ``"dask"``.
        scheduler, cluster: for ``"dask"``: an existing scheduler's address, or ``local:N``.
        device: torch device (default: the profile's).
        progress: one tqdm bar over all attacks, with an ETA (None: only on a terminal).

    Returns:
        ``{"computed", "seconds", "batches", "executor"}``.

    Raises:
        PlanError: an unknown executor, an unusable cluster (see :func:`_client`), or a results
            store that this process or a worker cannot write (the message names the folder).
    """
    from tqdm.auto import tqdm

    from .device import check_device

    if executor not in EXECUTORS:
        raise PlanError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    if executor == "local" and (scheduler or cluster):
        raise PlanError("--scheduler and --cluster go with --executor dask")
    device = check_device(device or plan.profile.device)
    missing = plan.missing
    problem = check_writable(store)
    if problem:
        raise PlanError(f"cannot write the results store: {problem}")
    client = _dask(scheduler, cluster, store) if executor == "dask" else None  # fail fast, even with nothing to do
    start = time.perf_counter()
    disable = False if progress else None if progress is None else True
    bar = tqdm(total=len(missing), desc=f"attacks ({executor})", unit="attack", disable=disable, smoothing=0.05)
    n_batches = 0
    try:
        if missing and client is None:
            n_batches = _execute_local(missing, store, device, bar)
        elif missing:
            n_batches = _execute_dask(client[0], missing, store, device, bar)
    finally:
        bar.close()
        if client is not None:
            client[0].close()
            if client[1] is not None:
                client[1].close()
    plan.stored = [True] * len(plan.stored)
    return {"computed": len(missing), "seconds": time.perf_counter() - start, "batches": n_batches,
            "executor": executor}


def _cost(part: list[Job]) -> float:
    """A batch's rough cost, to start the longest first: attacks x iterations x pixels (x 4
    for the big networks, whose cost per pixel is higher)."""
    j = part[0]
    big = 4 if j.case.model not in ("lenet", "fcn") else 1
    return len(part) * j.config.iterations * j.images.numel() * big


def _execute_local(jobs: list[Job], store: ResultStore, device: str, bar) -> int:
    """Compute ``jobs`` on this machine; returns the number of batches.

    On a CPU with several cores, one batch per core at a time, each in a worker process of
    this machine with one torch thread (the batched engine keeps a core busier with a batch of
    its own than two cores sharing one batch: the quick book's attacks take 120 s so and 223 s
    in this process with two torch threads), the longest batches first. On one core, or on a GPU (the batches share the device), in this
    process, one batch after the other."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from .device import configure_threads

    cores = configure_threads()
    workers = 1 if str(device).startswith("cuda") else max(1, min(cores, os.cpu_count() or 1))
    # whole groups, longest first: a group split in two to keep both cores busy costs more than
    # it saves (the quick book: 120 s with whole groups, 159 s split; issue 16's closing note)
    # and at most LOCAL_MAX_BATCH attacks each, so the progress bar moves on a long run
    parts = sorted(batches(jobs, max_batch=LOCAL_MAX_BATCH), key=_cost, reverse=True)
    if workers == 1:
        for part in parts:
            run_jobs(part, store, device=device, progress=False, read_only=False,
                     on_result=lambda *_: bar.update(1))
        return len(parts)
    root = str(store.root.resolve())
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_batch_task, [_portable(j) for j in part], root, store.profile, store.version,
                               device, 1): len(part) for part in parts}
        for fut in as_completed(futures):
            fut.result()  # a batch that failed raises here, with the worker's error
            bar.update(futures[fut])
    return len(parts)


def _dask(scheduler, cluster, store: ResultStore):
    """(client, local cluster or None) whose every worker can write ``store``.

    Raises:
        PlanError: see :func:`_client`; or a worker that cannot write the store.
    """
    client, local_cluster = _client(scheduler, cluster)
    root = str(store.root.resolve())
    problems = {w: p for w, p in client.run(_probe, root, store.profile, store.version).items() if p}
    if problems:
        client.close()
        if local_cluster is not None:
            local_cluster.close()
        worker, problem = next(iter(problems.items()))
        raise PlanError(f"Dask worker {worker} cannot write the results store: {problem} "
                        "(the store must be on a filesystem every worker shares and can write)")
    return client, local_cluster


def _execute_dask(client, jobs: list[Job], store: ResultStore, device, bar) -> int:
    """Send one task per batch to the cluster of ``client``; returns the number of batches.
    A task whose worker dies is retried on another worker by the scheduler."""
    from distributed import as_completed

    root = str(store.root.resolve())
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    parts = batches(jobs, workers=workers)
    futures = [client.submit(run_batch_task, [_portable(j) for j in part], root, store.profile, store.version,
                             device, pure=False, retries=2) for part in parts]
    sizes = {f.key: len(part) for f, part in zip(futures, parts)}
    for fut in as_completed(futures):
        fut.result()  # a task that failed for good raises here, with the worker's error
        bar.update(sizes[fut.key])
    return len(parts)


def _probe(root: str, profile: str, version: str) -> str | None:
    """On a worker: :func:`check_writable` of the store at ``root``."""
    return check_writable(ResultStore(root, profile=profile, version=version))
