"""The ``wdlg`` command line.

::

    wdlg attack --dataset mnist --method dlg|idlg|wdlg|ig|sapag|rgap --index 3 [--model lenet]
                [--iterations N] [--optimizer lbfgs|adam] [--lr LR] [--seed S]
                [--estimator dirac_whole|dirac|sorted|dual] [--loss euclidean|wasserstein|cosine|sapag]
                [--line-search armijo|none] [--[no-]signed] [--[no-]boxed] [--[no-]lr-decay]
                [--defense gaussian:sigma=0.01 | dpsgd:clip=1,noise_multiplier=0.5 | prune:ratio=0.5 ...]
                [--device cpu] [--out attack.png] [--json] [--results-root DIR]
    wdlg data list [--root DIR]
    wdlg data download NAME [--root DIR]
    wdlg plan --profile quick [--only NAME ... [-p KEY=VALUE ...]] [--device cpu] [--no-estimate]
    wdlg run --profile quick [--device cpu] [--jobs N] [--only NAME ... [-p KEY=VALUE ...]] [--no-build]
             [--executor local | --executor dask (--scheduler ADDRESS | --cluster local:N)]
    wdlg book --from record [--profile record]
    wdlg record ship --from RESULTS/PROFILE --page PAGE --run NAME
    wdlg record ship-book --profile record --results-root RESULTS
    wdlg course list
    wdlg course export DIR [--lab NAME ...] [--force]

``attack`` runs one attack of any registered method (:mod:`wdlg_core.methods`) on one real
image, optionally defended, stores it in the results store and prints a short report (or
JSON with ``--json``); ``plan`` prints the attacks the pages need and an estimate of their
time (:mod:`wdlg_core.plan`); ``run`` computes them (in this process or on a Dask cluster),
executes the book's notebooks and builds the book (:mod:`wdlg_core.runner`); ``record ship`` copies a page's
results file and figures into the shipped book of record (:mod:`wdlg_core.record`); ``course export`` writes
the student version of each lab (:mod:`wdlg_core.course`). Unknown names are rejected
with the list of valid choices. The data root is ``--data-root``/``--root``, else
``$WDLG_DATA_ROOT``, else ``./data``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from .config import ESTIMATORS, LINE_SEARCHES, LOSSES, OPTIMIZERS
from .methods import METHODS
from .profiles import PROFILES


def _dataset_names() -> list[str]:
    from .data import DATASETS

    return list(DATASETS)


def _model_names() -> list[str]:
    from .models import MODELS

    return list(MODELS)


def build_parser() -> argparse.ArgumentParser:
    """The ``wdlg`` argument parser (subcommands attack, data, run; see the module docstring)."""
    parser = argparse.ArgumentParser(prog="wdlg", description="WDLG Companion: gradient-inversion attacks and the book")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{attack,data,plan,run,book,record,course}")

    a = sub.add_parser("attack", help="attack one real image and report fidelity",
                       description="Attack one image from its shared gradient with any registered method; store "
                                   "the result, print a report (or JSON) and write a PNG (ground truth | snapshots "
                                   "| final).")
    a.add_argument("--dataset", required=True, choices=_dataset_names())
    a.add_argument("--model", default=None, choices=_model_names(), help="default: the profile's (lenet)")
    a.add_argument("--method", default="wdlg", choices=list(METHODS),
                   help="attack (default wdlg): " + ", ".join(f"{m.name} ({m.title}, {m.kind.replace('_', ' ')})"
                                                               for m in METHODS.values()))
    a.add_argument("--index", type=int, default=0,
                   help="image index (default 0) in the first source holding index + 1 images of the split "
                        "(`wdlg data list`); with --split any, MNIST 0-19 are bundled test images and 20 on are "
                        "training digits. The report names the source")
    a.add_argument("--profile", default="quick", choices=sorted(PROFILES),
                   help="defaults for optimizer, lr, iterations, estimator, device (default quick)")
    a.add_argument("--iterations", type=int, default=None)
    a.add_argument("--optimizer", default=None, choices=list(OPTIMIZERS))
    a.add_argument("--lr", type=float, default=None)
    a.add_argument("--line-search", default=None, choices=list(LINE_SEARCHES),
                   help="L-BFGS line search (default: the profile's, armijo, for the DLG family with L-BFGS; "
                        "none for Adam and for --method ig)")
    a.add_argument("--seed", type=int, default=None, help="seed of the dummy data")
    a.add_argument("--model-seed", type=int, default=None, help="seed of the random model weights")
    a.add_argument("--estimator", default=None, choices=list(ESTIMATORS), help="Wasserstein estimator (WDLG)")
    a.add_argument("--loss", default=None, choices=list(LOSSES),
                   help="gradient-matching loss (default: the method's; e.g. sapag for SAPAG's distance)")
    for flag, what in (("signed", "Adam on the sign of the gradient"), ("boxed", "clip the dummy image to [0, 1]"),
                       ("lr-decay", "step decay of the learning rate")):
        a.add_argument(f"--{flag}", default=None, action=argparse.BooleanOptionalAction,
                       help=f"{what} (default: the method's: on for ig, off otherwise; Adam only)")
    a.add_argument("--device", default=None, help="torch device: cpu, cuda, cuda:1 (default: the profile's)")
    a.add_argument("--split", default=None, choices=["test", "train", "any"],
                   help="data split (default: the profile's, any: test images first, then training images)")
    a.add_argument("--data-root", default=None, help="torchvision data root (default $WDLG_DATA_ROOT, else ./data)")
    a.add_argument("--threads", type=int, default=None,
                   help="torch threads (default $WDLG_TORCH_THREADS, else 1: LeNet-size attacks run fastest on one)")
    a.add_argument("--snapshots", type=int, default=5, help="snapshot columns in the PNG (default 5)")
    a.add_argument("--out", default=None, help="PNG path (default wdlg_attack_<dataset>_<method>_<index>.png)")
    a.add_argument("--defense", action="append", default=None, metavar="NAME[:KEY=VALUE,...]",
                   help="defend the shared gradient first (repeatable: applied in order), e.g. gaussian:sigma=0.01, "
                        "dpsgd:clip=1,noise_multiplier=0.5, prune:ratio=0.5 (names: wdlg_core.defenses.DEFENSES)")
    a.add_argument("--json", action="store_true", help="print the result as one JSON object instead of the report")
    a.add_argument("--results-root", default=None,
                   help="results store (default $WDLG_RESULTS_ROOT, else results/); the attack is stored under "
                        "<root>/<profile>/ and loaded from there when it exists")

    d = sub.add_parser("data", help="list or download datasets")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="{list,download}")
    dl = dsub.add_parser("list", help="the image sources present on this machine")
    dl.add_argument("--root", default=None, help="torchvision data root")
    dd = dsub.add_parser("download", help="download a dataset with torchvision (needs network)")
    dd.add_argument("name", choices=_dataset_names())
    dd.add_argument("--root", default=None, help="torchvision data root")

    pl = sub.add_parser("plan", help="the attacks the book needs: per page, distinct, stored, estimated time",
                        description="Collect every page's attacks (or the --only pages'), de-duplicate them by "
                                    "store key, count what the results store holds, and estimate the time of the "
                                    "rest on the device from a short calibration run. Computes no attack.")
    pl.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    pl.add_argument("--only", action="append", default=None, metavar="NAME", help="only this page (repeatable)")
    pl.add_argument("-p", "--param", dest="params", action="append", default=None, metavar="KEY=VALUE",
                    help="a parameter of the --only page(s), as for wdlg run")
    pl.add_argument("--device", default=None, help="device to estimate for (default: the profile's)")
    pl.add_argument("--no-estimate", action="store_true", help="counts only, no calibration run")
    pl.add_argument("--data-root", default=None, help="torchvision data root (default $WDLG_DATA_ROOT, else ./data)")
    pl.add_argument("--results-root", default=None, help="results folder (default $WDLG_RESULTS_ROOT, else results/)")

    r = sub.add_parser("run", help="execute the notebooks and build the book")
    r.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    r.add_argument("--device", default=None, help="override the profile's device (cpu, cuda)")
    r.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: number of cores)")
    r.add_argument("--only", action="append", default=None, metavar="NAME",
                   help="run only this notebook (repeatable; names from notebooks/manifest.yml); the replication "
                        "summary, which reads every page's results, runs again after it")
    r.add_argument("--threads", type=int, default=None,
                   help="torch threads per notebook (default: cores // jobs, at least 1)")
    r.add_argument("-p", "--param", dest="params", action="append", default=None, metavar="KEY=VALUE",
                   help="a parameter of the --only page(s), e.g. -p n_images=1 (repeatable; typed and checked "
                        "against the notebook's parameters cell)")
    r.add_argument("--executor", default="local", choices=["local", "dask"],
                   help="who computes the attacks: local (this process, default) or dask (a dask.distributed "
                        "cluster: give --scheduler or --cluster)")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (--executor dask)")
    r.add_argument("--cluster", default=None, metavar="local:N",
                   help="start a local Dask cluster of N worker processes (--executor dask)")
    r.add_argument("--no-build", action="store_true", help="skip jupyter-book build")
    r.add_argument("--data-root", default=None,
                   help="torchvision data root (default $WDLG_DATA_ROOT, else ./data in the repository)")
    r.add_argument("--results-root", default=None,
                   help="results folder (default $WDLG_RESULTS_ROOT, else results/ in the repository)")

    b = sub.add_parser("book", help="build the book from a shipped archive, computing nothing",
                       description="Build the book of record from record/book_<profile>/ (executed pages, labs, "
                                   "results and figures): no attack is computed.")
    b.add_argument("--from", dest="source", default="record", metavar="DIR",
                   help="record folder holding book_<profile>/ (default record)")
    b.add_argument("--profile", default="record", choices=sorted(PROFILES), help="which archived book (default record)")

    rec = sub.add_parser("record", help="ship results into the book of record (record/)")
    rsub = rec.add_subparsers(dest="record_command", required=True, metavar="{ship,ship-book}")
    rb = rsub.add_parser("ship-book", help="archive pages of a book run into record/book_<profile>/",
                         description="Copy pages' results files, figures and executed notebooks, with each page's "
                                     "provenance (commit, machine, versions, attack count and compute time), into "
                                     "record/book_<profile>/, then render the replication summary from the archive.")
    rb.add_argument("--profile", default="record", choices=sorted(PROFILES))
    rb.add_argument("--results-root", required=True, help="the results folder the run used")
    rb.add_argument("--book-dir", default=None, help="the book folder holding the run's executed notebooks "
                                                     "(default: this checkout's book/)")
    rb.add_argument("--page", action="append", default=None, metavar="NAME",
                    help="page to ship (repeatable; default: every page with a results file)")
    rs = rsub.add_parser("ship", help="copy <results>/<profile>/<page>.json and its figures to record/<run>/")
    rs.add_argument("--from", dest="source", required=True, help="results folder of one profile (<results>/<profile>)")
    rs.add_argument("--page", required=True, help="results-file stem, e.g. sensitivity")
    rs.add_argument("--run", required=True, help="name of this scale in record/, e.g. sensitivity_2240")

    c = sub.add_parser("course", help="the course's labs: list them, export the student notebooks")
    csub = c.add_subparsers(dest="course_command", required=True, metavar="{list,export}")
    csub.add_parser("list", help="the labs (course/labs/) with their titles")
    ce = csub.add_parser("export", help="write the student version of each lab to DIR/<lab>.ipynb",
                         description="Write the student notebooks: each solution's body becomes a stub that raises "
                                     "NotImplementedError (TODO), the checks stay.")
    ce.add_argument("out_dir", metavar="DIR", help="target folder (created if missing)")
    ce.add_argument("--lab", action="append", default=None, metavar="NAME",
                    help="export only this lab (repeatable; names from `wdlg course list`)")
    ce.add_argument("--force", action="store_true", help="overwrite student notebooks already in DIR")
    return parser


def _snapshot_iterations(iterations: int, k: int) -> tuple[int, ...]:
    """``k`` iterations spread over [0, iterations), starting with the initial dummy (0)."""
    if k <= 0:
        return ()
    return tuple(sorted({int(round(i * iterations / k)) for i in range(k)}))


def parse_defense(specs: list[str] | None):
    """``--defense`` values as one :class:`wdlg_core.defenses.Defense` (None without any).

    Each spec is ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` with numeric values; several specs
    are applied in order (a ``compose`` defence).

    Raises:
        ValueError: an unknown defence or parameter, a value that is not a number, or a
            malformed spec (each message names the valid choices).
    """
    from .defenses import DEFENSES, make_defense

    steps = []
    for spec in specs or []:
        name, _, rest = spec.partition(":")
        params = {}
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"--defense {spec!r}: expected KEY=VALUE after the name, got {item!r} "
                                 "(e.g. gaussian:sigma=0.01)")
            try:
                params[key.strip()] = float(value)
            except ValueError:
                raise ValueError(f"--defense {spec!r}: {key} must be a number, got {value!r}") from None
        if name not in DEFENSES or name == "compose":
            valid = ", ".join(n for n in sorted(DEFENSES) if n != "compose")
            raise ValueError(f"--defense {spec!r}: unknown defense {name!r}; valid names: {valid} "
                             "(repeat --defense to compose)")
        steps.append(make_defense(name, **params))
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else make_defense("compose", steps=steps)


def cmd_attack(args) -> int:
    """``wdlg attack``: one attack of any registered method on one real image; stores it, prints
    a report (or JSON), writes a PNG, returns 0."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    from .data import dataset_info, image_source, load_images
    from .defenses import noise_seed
    from .device import THREADS_ENV, check_device, configure_threads
    from .experiments import Job, images_fingerprint, run_jobs
    from .methods import get_method
    from .models import build_model
    from .plotting import DATASET_NAMES, set_theme, snapshot_grid
    from .profiles import get_profile
    from .rgap import run_rgap_cached
    from .store import Case, ResultStore, json_safe

    method = get_method(args.method)
    if not method.iterative:
        given = [f"--{k.replace('_', '-')}" for k in ("iterations", "optimizer", "lr", "line_search", "seed",
                                                      "estimator", "loss", "signed", "boxed", "lr_decay")
                 if getattr(args, k) is not None]
        if given:
            raise ValueError(f"method {args.method!r} is closed form: it takes no {', '.join(given)}")
    p = get_profile(args.profile, model=args.model, iterations=args.iterations, optimizer=args.optimizer, lr=args.lr,
                    seed=args.seed, model_seed=args.model_seed, estimator=args.estimator, device=args.device,
                    split=args.split, methods=(args.method,) if method.iterative else None)
    check_device(p.device)
    if args.index < 0:
        raise ValueError(f"--index must be >= 0, got {args.index}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.snapshots < 0:
        raise ValueError(f"--snapshots must be >= 0 (0: no snapshot columns), got {args.snapshots}")
    _check_data_root(args.data_root)
    defense = parse_defense(args.defense)
    info = dataset_info(args.dataset)
    where = image_source(args.dataset, 1, split=p.split, source=p.source, root=args.data_root, offset=args.index)
    images, labels = load_images(args.dataset, 1, split=p.split, source=p.source, root=args.data_root,
                                 offset=args.index)  # (1, C, H, W), (1,)
    case = Case(args.dataset, (args.index,), p.model, p.model_seed, p.split, p.source, info.num_classes,
                images_fingerprint(images), defense=None if defense is None else defense.to_dict())
    store = ResultStore(args.results_root, profile=p.name)
    configure_threads(args.threads or int(os.environ.get(THREADS_ENV, "0") or 0) or 1)
    if method.iterative:
        # options given on the command line; the profile's line search (armijo, an L-BFGS option)
        # is dropped for other optimisers by Profile.attack_config unless --line-search asks for one
        given = {"loss": args.loss, "line_search": args.line_search, "signed": args.signed, "boxed": args.boxed,
                 "lr_decay": args.lr_decay, "optimizer": args.optimizer, "lr": args.lr}
        overrides = {k: v for k, v in given.items() if v is not None}
        config = p.attack_config(args.method, snapshots=_snapshot_iterations(p.iterations, args.snapshots),
                                 **overrides)
        r = run_jobs([Job(config, case, images, labels)], store, device=p.device, progress=not args.json,
                     desc=method.title)[0]
        setting = (f"{config.optimizer} lr {config.lr:g} (line search {config.line_search}), loss "
                   f"{config.matching_loss}, {config.iterations} iterations")
    else:
        config = method.config(success_mse=p.success_mse)
        model = build_model(p.model, tuple(images.shape[1:]), info.num_classes, seed=p.model_seed)
        bound = None if defense is None else defense.bind(noise_seed(0, case.to_dict()))
        r, _ = run_rgap_cached(store, config, case, images, labels, model, defense=bound)
        setting = "closed form (one layer-by-layer solve)"
    key = store.key(config, case)

    psnr = "inf" if not math.isfinite(r.psnr) else f"{r.psnr:.2f}"
    set_theme()
    out = Path(args.out or f"wdlg_attack_{args.dataset}_{args.method}_{args.index}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = snapshot_grid(r.snapshots, original=images.numpy(),
                        final=r.reconstruction, captions={"final": [f"MSE {r.mse:.1e}\nPSNR {psnr} dB"]},
                        title=f"{method.title}, {DATASET_NAMES[args.dataset]} #{args.index}")
    fig.savefig(out)
    if args.json:
        summary = {"method": args.method, "dataset": args.dataset, "index": args.index, "model": p.model,
                   "profile": p.name, "device": p.device, "defense": case.defense, "config": config.to_dict(),
                   "image": {"source": where["source"], "split": where["split"], "path": str(where["path"])},
                   **r.summary(), "store_key": key, "record": str(store.paths(key)[0]), "figure": str(out)}
        print(json.dumps(json_safe(summary), default=str, allow_nan=False, indent=1))  # NaN/inf: null
        return 0
    its = "-" if r.iterations_to_success is None else str(r.iterations_to_success)
    print(f"{method.title} on {DATASET_NAMES[args.dataset]} image {args.index}, {p.model}, {setting}, "
          f"device {p.device}" + (f", defense {case.defense}" if defense is not None else ""))
    print(f"  image               : {where['source']} {where['split']} image {args.index} ({where['path']})")
    print(f"  label restored/true : {int(r.labels[0])} / {int(r.true_labels[0])}")
    print(f"  MSE                 : {r.mse:.3e}")
    print(f"  PSNR                : {psnr} dB")
    print(f"  SSIM                : {r.ssim:.4f}")
    if method.iterative:
        print(f"  iterations to success: {its} (threshold MSE < {config.success_mse:g})")
    print(f"  time                : {r.wall_time:.2f} s")
    print(f"  success             : {'yes' if r.success else 'no'}{' (diverged)' if r.diverged else ''}")
    print(f"  stored              : {store.paths(key)[0]}")
    print(f"  figure              : {out}")
    return 0


def cmd_data(args) -> int:
    """``wdlg data list`` (the image sources found) or ``wdlg data download NAME``; returns 0."""
    from .data import describe_sources, download

    if args.data_command == "list":
        _check_data_root(args.root)
        rows = describe_sources(root=args.root)
        header = ("dataset", "source", "split", "count", "path")
        widths = [max(len(str(x)) for x in [h] + [r[h] for r in rows]) for h in header[:4]]
        print("  ".join(h.ljust(w) for h, w in zip(header[:4], widths)) + "  path")
        for r in rows:
            print("  ".join(str(r[h]).ljust(w) for h, w in zip(header[:4], widths)) + f"  {r['path']}")
        return 0
    root = download(args.name, root=args.root)
    print(f"{args.name}: stored under {root}")
    return 0


def cmd_run(args) -> int:
    """``wdlg run``: execute notebooks and build the book (:func:`wdlg_core.runner.run`)."""
    from .runner import run

    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    _check_data_root(args.data_root)
    return run(profile=args.profile, device=args.device, jobs=args.jobs, only=args.only, build=not args.no_build,
               data_root=args.data_root, results_root=args.results_root, threads=args.threads, params=args.params,
               executor=args.executor, scheduler=args.scheduler, cluster=args.cluster)


def cmd_plan(args) -> int:
    """``wdlg plan``: print the attack plan (:func:`wdlg_core.plan.make_plan`) and its estimate."""
    from .plan import estimate, format_plan, make_plan
    from .runner import page_names, parse_parameters, select, load_manifest
    from .store import ResultStore

    _check_data_root(args.data_root)
    specs = select(load_manifest(), args.only)
    params = parse_parameters(args.params, specs if args.only else []) if args.params else {}
    store = ResultStore(args.results_root, profile=args.profile)
    plan = make_plan(args.profile, page_names(specs), params, store=store, data_root=args.data_root)
    device = args.device or plan.profile.device
    if not args.no_estimate:
        from .device import check_device

        try:
            check_device(device)
        except ValueError:  # e.g. the paper profile (cuda) planned on a laptop: price it on this CPU
            print(f"note: the profile's device {device!r} is not available here; the estimate is for this CPU "
                  f"(run `wdlg plan` on the {device} machine for its own)")
            device = "cpu"
        estimate(plan, device)
    print(format_plan(plan, device))
    print(f"results store: {store.folder}")
    return 0


def _check_data_root(root) -> None:
    """A data root given on the command line must exist (an absent one would silently fall
    back to the bundled images)."""
    if root is not None and not Path(root).expanduser().is_dir():
        raise ValueError(f"data root {root!r} is not a folder; omit --data-root to use $WDLG_DATA_ROOT, ./data "
                         "or the bundled images, or fill it with `wdlg data download NAME --root DIR`")


def cmd_record(args) -> int:
    """``wdlg record ship``: copy a page's results file and figures into record/ (:func:`wdlg_core.record.ship`)."""
    from .record import ship

    if args.record_command == "ship-book":
        from .record import ship_book

        prov = ship_book(args.profile, args.results_root, args.book_dir, pages=args.page)
        summary = prov.get("summary", {})
        print(f"book of record {args.profile}: {len(prov['pages'])} page(s) archived; summary: "
              f"{summary.get('claims')} claims, {summary.get('verdicts')}")
        return 0
    out = ship(args.source, args.page, args.run)
    print(f"shipped {out}")
    return 0


def cmd_book(args) -> int:
    """``wdlg book --from record``: build the archived book (:func:`wdlg_core.runner.build_from_archive`)."""
    from .runner import build_from_archive

    return build_from_archive(args.profile, args.source)


def cmd_course(args) -> int:
    """``wdlg course list`` (the labs) or ``wdlg course export DIR`` (:func:`wdlg_core.course.export`); returns 0."""
    from .course import export, list_labs

    try:
        labs = list_labs()
    except FileNotFoundError as err:
        raise ValueError(f"{err}: the course lives in the repository's course/labs/") from None
    if args.course_command == "list":
        width = max(len(lab.name) for lab in labs)
        for lab in labs:
            print(f"{lab.name.ljust(width)}  {lab.title}")
        return 0
    for path in export(args.out_dir, args.lab, force=args.force):
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wdlg`` console script. Returns the exit code; bad input
    (ValueError, including missing data) and a failed download (ConnectionError) print
    ``wdlg: error: ...`` and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = {"attack": cmd_attack, "data": cmd_data, "plan": cmd_plan, "run": cmd_run, "book": cmd_book, "record": cmd_record,
               "course": cmd_course}[args.command]
    try:
        return handler(args)
    except (ValueError, ConnectionError) as err:
        print(f"wdlg: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
