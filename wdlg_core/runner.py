"""``wdlg run``: plan and compute every page's attacks, execute the notebooks with papermill,
check their results, build the book.

Steps:

1. read ``notebooks/manifest.yml`` (which notebooks, which results file each must write);
2. plan: every selected page's attacks (``wdlg_core.pages``), de-duplicated by store key, and
   compute the missing ones with the chosen executor (:mod:`wdlg_core.plan`: in this process,
   or on a dask.distributed cluster), one progress bar over all attacks;
3. execute each notebook with papermill (parameters ``profile`` and, if given, ``device``)
   into ``book/notebooks/<name>.ipynb`` (generated, git-ignored), several at once in separate
   processes, with the results store read-only (``$WDLG_STORE_READ_ONLY=1``): the notebooks
   load and render, and a page asking for an attack outside its plan fails naming it; each
   notebook's torch gets ``cores // jobs`` threads through ``$WDLG_TORCH_THREADS`` /
   ``$OMP_NUM_THREADS`` so parallel notebooks do not oversubscribe;
4. check that each notebook wrote ``results/<profile>/<results file>`` during this run;
5. build the book with ``jupyter-book build book -W`` (execution is off in ``_config.yml``:
   the book shows exactly the executed copies; any warning fails the build).

The course's labs (``course/labs/``, :mod:`wdlg_core.course`) run in the same pool as the pages,
without parameters, into ``book/course/labs/``: a lab whose check fails fails the run like a
page. A lab whose source and ``wdlg_core`` are unchanged since its executed copy was written
is not run again. Before the build the student versions are exported to ``book/course/student/``
for the pages' download links.

A failing notebook is reported by name with the failing cell (papermill's
``PapermillExecutionError`` carries its index, execution count, source and exception).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .experiments import READ_ONLY_ENV, THREADS_ENV
from .provenance import REPO_ROOT
from .store import RESULTS_ROOT_ENV

MANIFEST = REPO_ROOT / "notebooks" / "manifest.yml"
BOOK_DIR = REPO_ROOT / "book"
DATA_ROOT_ENV = "WDLG_DATA_ROOT"


@dataclass(frozen=True)
class NotebookSpec:
    """One manifest entry: ``notebooks/<name>.ipynb`` (or ``source``) must write
    ``results/<profile>/<results>``. A ``final`` notebook (e.g. the replication summary, which
    reads the other pages' results files) starts only after all the others have finished.
    A course lab has no results file (``results=""``), takes no parameters and is executed into
    its own folder (``out_dir``)."""

    name: str
    results: str
    title: str = ""
    source: str | None = None
    final: bool = False
    out_dir: str | None = None
    parameters: bool = True

    @property
    def path(self) -> Path:
        return Path(self.source) if self.source else REPO_ROOT / "notebooks" / f"{self.name}.ipynb"


@dataclass
class NotebookRun:
    """Outcome of one notebook: status ``ok``, ``failed`` or ``no results``; seconds of wall
    time; the executed copy; and for failures the error and the failing cell."""

    name: str
    status: str
    seconds: float
    output: str
    error: str = ""
    cell: str = ""
    results_file: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def load_manifest(path: str | os.PathLike | None = None) -> list[NotebookSpec]:
    """The notebooks of the book, in manifest order.

    Raises:
        ValueError: no manifest (e.g. a non-editable install, which has the package but not
            the notebooks and the book: the message says where it looked and what to do), an
            entry without ``name``/``results``, or a listed notebook that does not exist.
    """
    import yaml

    path = Path(path) if path is not None else MANIFEST
    if not path.is_file():
        raise ValueError(f"no notebook manifest at {path}: `wdlg run` needs the companion's source tree (notebooks/ "
                         "and book/), which a non-editable install does not have; run it from a clone of the "
                         "repository after `pip install -e .` (or `bash scripts/setup.sh`). `wdlg attack` and "
                         "`wdlg data` work from any install")
    doc = yaml.safe_load(path.read_text()) or {}
    specs = []
    for entry in doc.get("notebooks") or []:
        if not isinstance(entry, dict) or "name" not in entry or "results" not in entry:
            raise ValueError(f"{path}: every notebook entry needs 'name' and 'results', got {entry!r}")
        spec = NotebookSpec(str(entry["name"]), str(entry["results"]), str(entry.get("title", "")),
                            final=bool(entry.get("final", False)))
        if not spec.path.exists():
            raise ValueError(f"{path}: notebook {spec.path} listed but missing")
        specs.append(spec)
    return specs


def course_specs() -> list[NotebookSpec]:
    """The course's labs as notebook specs (executed into ``book/course/labs/``, no results
    file, no parameters); empty when the repository has no ``course/labs/``."""
    from .course import BOOK_LABS_DIR, list_labs

    try:
        labs = list_labs()
    except FileNotFoundError:
        return []
    return [NotebookSpec(lab.name, "", lab.title, source=str(lab.path), out_dir=str(BOOK_LABS_DIR), parameters=False)
            for lab in labs]


def select(specs: list[NotebookSpec], only: list[str] | None) -> list[NotebookSpec]:
    """The specs named in ``only`` (all when empty), plus the ``final`` ones when a page is named.

    A final notebook (the replication summary) reads every page's results file, so it runs
    again after any page: otherwise it would keep showing the results of an earlier run. A
    course lab writes no results, so naming only labs does not run it.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    if not only:
        return specs
    names = [s.name for s in specs]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ValueError(f"unknown notebook(s) {unknown}; valid names: {', '.join(names)}")
    pages = any(s.parameters and not s.final for s in specs if s.name in only)  # not only course labs
    return [s for s in specs if s.name in only or (s.final and pages)]


def page_names(specs: list[NotebookSpec]) -> list[str]:
    """The names of the pages among ``specs`` that may need attacks, in order: not the course
    labs, nor the ``final`` replication summary (it reads the other pages, and takes none of
    their ``-p`` parameters)."""
    return [s.name for s in specs if s.parameters and not s.final]


#: Parameters every page takes that choose where and on what it runs, not what it measures.
PLACEMENT_PARAMETERS = ("profile", "device", "data_root", "results_root")


def notebook_defaults(name: str) -> dict:
    """The default parameters of ``notebooks/<name>.ipynb``: its cell tagged ``parameters``,
    read as Python literals. Raises FileNotFoundError when the notebook is not there (the
    package installed without this repository)."""
    import ast
    import json

    path = REPO_ROOT / "notebooks" / f"{name}.ipynb"
    cells = json.loads(path.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    return {t.id: ast.literal_eval(node.value) for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets}


#: The types of the pages' parameters whose default is None ("take it from the profile"), for
#: ``wdlg run -p`` (:func:`parse_parameters`); a parameter not listed here takes any literal.
#: ``dict`` where a page accepts a per-dataset or per-architecture mapping.
PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "datasets": (list, str), "methods": (list, str), "archs": (list, str), "settings": (list, str),
    "sweep_sigmas": (list,), "snapshots": (list,), "sizes": (dict,),
    "model": (str,), "dataset": (str,), "sweep_dataset": (str,),
    "n_images": (int, dict), "iterations": (int, dict), "seed": (int,), "record_every": (int,),
    "dummies": (int,), "n_single": (int,), "n_batches": (int,), "sweep_images": (int,), "epochs": (int,),
    "confidence": (float,), "bootstrap_seed": (int,),
}


def _type_name(value) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", tuple: "list",
            dict: "dict"}.get(type(value), type(value).__name__)


def parse_parameters(pairs: list[str] | None, specs: list[NotebookSpec]) -> dict:
    """``-p key=value`` options of ``wdlg run`` as a dict of typed page parameters.

    Each value is read as a Python literal (``3``, ``0.5``, ``[1, 2]``, ``None``, ``'x'``), else
    taken as a string (``-p dataset=mnist``). The key must be a parameter of every page in
    ``specs`` (the final summary page excepted: it takes only the run's own options), and the
    value must have the type of the page's default, or for a default of None the type in
    :data:`PARAMETER_TYPES` (an int is accepted for a float, a tuple for a list; None always).

    Raises:
        ValueError: a malformed pair, a placement key (set with --profile, --device, ...), an
            unknown key (the message lists the valid keys) or a value of the wrong type (the
            message names the parameter, the expected type and its default).
    """
    import ast

    pages = [s for s in specs if not s.final and s.parameters]
    if pairs and not pages:
        raise ValueError("-p sets page parameters: name the page with --only NAME")
    defaults = {s.name: notebook_defaults(s.name) for s in pages} if pairs else {}
    out = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"-p expects KEY=VALUE, got {pair!r}")
        if key in PLACEMENT_PARAMETERS:
            raise ValueError(f"-p {key}=...: set it with --{key.replace('_', '-')}")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        for name, params in defaults.items():
            if key not in params:
                valid = ", ".join(k for k in params if k not in PLACEMENT_PARAMETERS)
                raise ValueError(f"page {name} has no parameter {key!r}; valid keys: {valid}")
            default = params[key]
            types = PARAMETER_TYPES.get(key, ()) if default is None else (type(default),)
            if float in types:
                types += (int,)
            if list in types:
                types += (tuple,)
            bad_bool = isinstance(value, bool) and bool not in types  # True is an int to Python
            if value is not None and types and (bad_bool or not isinstance(value, types)):
                expects = " or ".join(dict.fromkeys(_type_name(t()) for t in types))
                raise ValueError(f"parameter {key!r} of page {name} expects {expects} (default {default!r}), "
                                 f"got {text.strip()!r} ({_type_name(value)})")
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def page_overrides(name: str, namespace: dict) -> dict | None:
    """What a page run measures differently from the book's run: the parameters of notebook
    ``name`` whose values in ``namespace`` (the notebook's ``globals()``) differ from its
    defaults, leaving out :data:`PLACEMENT_PARAMETERS`. ``{}`` for the book's own run; None when
    the notebook's source cannot be found (the package installed without this repository)."""
    import json

    try:
        defaults = notebook_defaults(name)
    except (OSError, StopIteration):
        return None

    def same(a, b):  # papermill passes lists where a default may be a tuple
        return json.dumps(a, default=str) == json.dumps(b, default=str)

    return {k: namespace[k] for k, d in defaults.items()
            if k not in PLACEMENT_PARAMETERS and k in namespace and not same(namespace[k], d)}


def _cell_description(err) -> str:
    """'cell 5 (In [4]): first line of its source' from a PapermillExecutionError."""
    first = next((line for line in (err.source or "").splitlines() if line.strip() and not line.startswith("#")), "")
    return f"cell {err.cell_index} (In [{err.exec_count}]): {first.strip()[:100]}"


def execute_one(spec: NotebookSpec, parameters: dict, out_dir: str, env: dict, cwd: str) -> NotebookRun:
    """Execute one notebook with papermill (runs in a worker process).

    Args:
        spec: the manifest entry.
        parameters: papermill parameters (``profile``, ``device``, ...).
        out_dir: folder of the executed copy.
        env: environment variables for the kernel (threads, results and data roots).
        cwd: working directory of the kernel.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    os.environ.update(env)
    output = Path(out_dir) / f"{spec.name}.ipynb"
    # papermill rewrites its output after every cell: execute into a side file, so that the book
    # keeps the last complete copy when a run fails or is interrupted (the book builds only the
    # files of its table of contents, so the side files never reach it)
    running, failed = output.with_suffix(".running.ipynb"), output.with_suffix(".failed.ipynb")
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(spec.path), str(running), parameters=parameters, cwd=cwd, kernel_name="python3",
                            progress_bar=False, log_output=False)
    except PapermillExecutionError as err:
        _replace(running, failed)
        return NotebookRun(spec.name, "failed", time.perf_counter() - start, str(failed),
                           error=f"{err.ename}: {err.evalue}", cell=_cell_description(err))
    except Exception as err:  # kernel death, timeout, bad parameters
        _replace(running, failed)
        return NotebookRun(spec.name, "failed", time.perf_counter() - start, str(failed),
                           error=f"{type(err).__name__}: {err}")
    hide_parameter_cells(running)
    os.replace(running, output)
    failed.unlink(missing_ok=True)
    return NotebookRun(spec.name, "ok", time.perf_counter() - start, str(output))


#: Cell tags of the parameter cells: the notebook's own (``parameters``) and papermill's
#: (``injected-parameters``). The book does not show them: each page states its profile itself.
PARAMETER_TAGS = ("parameters", "injected-parameters")


def hide_parameter_cells(path: str | os.PathLike) -> int:
    """Tag the parameter cells of an executed notebook ``remove-cell`` (Jupyter Book then leaves
    them out of the page; the notebook file keeps them). Returns how many were tagged."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    count = 0
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if any(t in tags for t in PARAMETER_TAGS) and "remove-cell" not in tags:
            tags.append("remove-cell")
            count += 1
    nbformat.write(nb, str(path))
    return count


def _replace(src: Path, dst: Path) -> None:
    """Move a failed run's partial copy aside (when papermill got as far as writing one)."""
    if src.exists():
        os.replace(src, dst)


def run_notebooks(specs: list[NotebookSpec], profile: str, device: str | None = None, jobs: int | None = None,
                  out_dir: str | os.PathLike | None = None, results_root: str | os.PathLike | None = None,
                  data_root: str | os.PathLike | None = None, extra_parameters: dict | None = None,
                  progress: bool = True, threads: int | None = None,
                  page_parameters: dict | None = None, read_only: bool = False) -> list[NotebookRun]:
    """Execute ``specs`` in parallel processes and check their results files.

    Args:
        specs: notebooks to run.
        profile: profile name passed as the ``profile`` parameter.
        device: passed as the ``device`` parameter when not None.
        jobs: notebooks at once (default: number of cores; never more than the notebooks).
        threads: torch threads per notebook (default ``max(1, cores // jobs)`` with the
            requested ``jobs``, so by default one per notebook: LeNet-size attacks are much
            faster on one thread than on several).
        out_dir: folder of the executed copies (default ``book/notebooks``).
        results_root: results folder (default ``$WDLG_RESULTS_ROOT`` or ``<repo>/results``).
        data_root: torchvision data root passed on as ``$WDLG_DATA_ROOT``.
        extra_parameters: further papermill parameters for every notebook.
        page_parameters: papermill parameters for the pages only (not the ``final`` summary),
            from ``wdlg run -p`` (:func:`parse_parameters`).
        progress: show a progress bar.
        read_only: the pages may not compute attacks (``$WDLG_STORE_READ_ONLY=1``: the planner
            has stored them; a page asking for another fails, naming it).

    Returns:
        One :class:`NotebookRun` per spec, in manifest order.
    """
    from tqdm import tqdm

    cores = os.cpu_count() or 1
    requested = jobs or cores
    threads = threads or max(1, cores // requested)
    jobs = max(1, min(requested, len(specs) or 1))
    out_dir = Path(out_dir) if out_dir is not None else BOOK_DIR / "notebooks"
    results_root = Path(results_root or os.environ.get(RESULTS_ROOT_ENV) or REPO_ROOT / "results").resolve()
    env = {THREADS_ENV: str(threads), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           RESULTS_ROOT_ENV: str(results_root), "PYDEVD_DISABLE_FILE_VALIDATION": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    if read_only:
        env[READ_ONLY_ENV] = "1"
    data_root = data_root or os.environ.get(DATA_ROOT_ENV)
    if data_root:
        env[DATA_ROOT_ENV] = str(Path(data_root).expanduser().resolve())
    parameters = {"profile": profile, **({"device": device} if device else {}), **(extra_parameters or {})}

    started = time.time()
    runs: dict[str, NotebookRun] = {}
    ctx = multiprocessing.get_context("spawn")
    print(f"wdlg run: {len(specs)} notebook(s), profile {profile}, {jobs} at a time, {threads} torch thread(s) each")
    phases = [[s for s in specs if not s.final], [s for s in specs if s.final]]  # final ones run last
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool, \
            tqdm(total=len(specs), desc="notebooks", unit="nb", disable=not progress) as bar:
        try:
            for phase in phases:
                futures = {pool.submit(execute_one, s, _parameters_of(s, parameters, page_parameters),
                                       s.out_dir or str(out_dir), env, str(REPO_ROOT)): s
                           for s in phase}
                for fut in cf.as_completed(futures):
                    spec = futures[fut]
                    try:
                        run = fut.result()
                    except Exception as err:  # the worker process itself died
                        run = NotebookRun(spec.name, "failed", 0.0, "", error=f"{type(err).__name__}: {err}")
                    if spec.results:  # a course lab writes none
                        results_file = results_root / profile / spec.results
                        run.results_file = str(results_file)
                        if run.ok and not (results_file.exists() and results_file.stat().st_mtime >= started - 1):
                            run.status, run.error = "no results", f"did not write {results_file}"
                    runs[spec.name] = run
                    bar.update(1)
                    bar.write(f"  {spec.name}: {run.status} ({run.seconds:.0f} s)")
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            for child in multiprocessing.active_children():  # the workers (and so their kernels) stop now
                child.terminate()
            raise
    return [runs[s.name] for s in specs]


def _parameters_of(spec: NotebookSpec, parameters: dict, page_parameters: dict | None) -> dict:
    """papermill parameters of one notebook: none for a course lab, the run's own for the final
    summary, the run's and the ``-p`` ones for a page."""
    if not spec.parameters:
        return {}
    return parameters if spec.final else {**parameters, **(page_parameters or {})}


def format_table(runs: list[NotebookRun]) -> str:
    """Plain-text table: notebook, status, time, and the error/cell for failures."""
    rows = [("notebook", "status", "time (s)", "detail")]
    for r in runs:
        detail = "; ".join(x for x in (r.cell, r.error) if x) or r.results_file
        rows.append((r.name, r.status, f"{r.seconds:.1f}", detail[:160]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3] for row in rows]
    lines.insert(1, "-" * min(120, max(len(line) for line in lines)))
    return "\n".join(lines)


def jupyter_book_command() -> list[str]:
    """The ``jupyter-book`` executable of this environment."""
    script = Path(sys.executable).parent / "jupyter-book"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.argv[0] = 'jupyter-book'; sys.exit(main())"]


def write_placeholder(folder: Path, name: str, text: str) -> bool:
    """Write ``<folder>/<name>.ipynb``, a one-cell "not run" page with the markdown ``text``
    (metadata ``wdlg_placeholder``), unless an executed copy is there. Returns whether it wrote."""
    import nbformat

    path = folder / f"{name}.ipynb"
    if path.exists():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text)]
    nb.metadata["wdlg_placeholder"] = True
    nbformat.write(nb, path)
    return True


def placeholders(specs: list[NotebookSpec], book_dir: str | os.PathLike | None = None) -> list[str]:
    """Write a short "not run" page for every notebook of ``specs`` that has no executed copy in
    ``<book>/notebooks/`` yet, so that a partial run (``wdlg run --only``) builds a book of the
    pages that exist. Returns the names written. A later run of the page replaces it."""
    folder = (Path(book_dir) if book_dir is not None else BOOK_DIR) / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    return [s.name for s in specs if write_placeholder(folder, s.name, (
        f"# {s.title or s.name}\n\n**Not run in this build.** This page's notebook has not been executed "
        f"here yet. Run it with\n\n```bash\n.venv/bin/wdlg run --profile quick --only {s.name}\n```\n\n"
        "(or `wdlg run --profile quick` for the whole book); the replication summary lists its claims as "
        "\"not run\" until then."))]


#: The introduction's paragraph on what this build shows (generated before every build, git-ignored).
BUILD_NOTE = "build_note.md"


def write_build_note(profile: str, book_dir: str | os.PathLike | None = None, archive: dict | None = None) -> Path:
    """Write ``book/build_note.md``, which the introduction includes: which profile this build
    shows, and how the book of record was computed and is reproduced (from its archive's
    provenance, :func:`wdlg_core.record.check_archive`, when one is shipped)."""
    from .profiles import get_profile
    from .record import check_archive

    book_dir = Path(book_dir) if book_dir is not None else BOOK_DIR
    p = get_profile(profile)
    if archive is not None:
        pages = archive.get("pages", {})
        commits = sorted({m.get("git_commit") for m in pages.values()})
        shown = (f"This build shows the **book of record**: profile **{profile}** ({p.description}), "
                 f"{len(pages)} of {len(pages) + len(archive.get('missing', []))} pages, computed at commit(s) "
                 f"{', '.join(f'`{c}`' for c in commits)}; no attack was computed to build it.")
        if archive.get("missing"):
            shown += (" The pages not yet computed at this scale say so and link the command that computes them: "
                      f"{', '.join(archive['missing'])}.")
    else:
        shown = f"This build shows profile **{profile}** ({p.description}), computed when the book was built."
    try:
        rec = check_archive("record")
    except ValueError:
        rec = None
    if rec is not None:
        pages = rec.get("pages", {})
        attacks = sum(m.get("attacks", 0) for m in pages.values())
        hours = sum(m.get("attack_seconds", 0.0) for m in pages.values()) / 3600
        cores = sorted({m.get("cpu_count") for m in pages.values()})
        how = (f"The book of record (profile `record`) ships with the project under `record/book_record/`: "
               f"{len(pages)} pages so far, {attacks} attacks, {hours:.1f} hours of attack computation on "
               f"{'/'.join(map(str, cores))}-core CPUs. `make book-record` builds it in seconds without computing "
               "anything; `wdlg plan --profile record` prints what the rest needs and "
               "`wdlg run --profile record --results-root DIR` computes it, resuming where an interrupted run stopped.")
    else:
        how = ("The book of record (profile `record`) is not shipped in this copy; `wdlg run --profile record` "
               "computes it (`wdlg plan --profile record` prints its size and an estimate of its time first).")
    path = book_dir / BUILD_NOTE
    path.write_text(f"{shown} The quick profile (`make book`) runs the same code on fewer images with fewer "
                    f"iterations in about four minutes on a 2-core CPU. {how}\n")
    return path


def build_book(book_dir: str | os.PathLike | None = None, profile: str = "quick",
               archive: dict | None = None) -> tuple[bool, float, str]:
    """``jupyter-book build <book> -W``, after :func:`placeholders` for pages never executed
    and the build note (:func:`write_build_note`). Returns (success, seconds, combined output)."""
    from . import course

    book_dir = Path(book_dir) if book_dir is not None else BOOK_DIR
    write_build_note(profile, book_dir, archive)
    missing = placeholders(load_manifest(), book_dir)
    if (REPO_ROOT / "course" / "labs").is_dir():  # the labs' pages and their student versions
        missing += course.placeholders(book_dir)
        course.export(book_dir / "course" / "student", force=True)
    if missing:
        print(f"not run yet, shown as such in the book: {', '.join(missing)}")
    start = time.perf_counter()
    proc = subprocess.run(jupyter_book_command() + ["build", str(book_dir), "-W"], capture_output=True, text=True,
                          cwd=str(REPO_ROOT))
    return proc.returncode == 0, time.perf_counter() - start, proc.stdout + proc.stderr


def _skip_unchanged_labs(specs: list[NotebookSpec]) -> tuple[list[NotebookSpec], list[str]]:
    """(specs without the course labs whose executed copy is up to date, names of those labs).
    Up to date: the copy records the :func:`wdlg_core.course.source_key` of the lab now."""
    from .course import executed_key, select_labs, source_key

    labs = {s.name for s in specs if not s.parameters}
    if not labs:
        return specs, []
    by_name = {lab.name: lab for lab in select_labs(sorted(labs))}
    fresh = [s.name for s in specs if s.name in labs
             and executed_key(Path(s.out_dir) / f"{s.name}.ipynb") == source_key(by_name[s.name])]
    return [s for s in specs if s.name not in fresh], fresh


def _finish_labs(specs: list[NotebookSpec], runs: list[NotebookRun]) -> None:
    """Give every course lab that ran its book page form (:func:`wdlg_core.course.finish_book_copy`)."""
    from .course import finish_book_copy, select_labs

    ok = {r.name for r in runs if r.ok}
    names = [s.name for s in specs if not s.parameters and s.name in ok]
    for lab in select_labs(names) if names else []:
        spec = next(s for s in specs if s.name == lab.name)
        finish_book_copy(Path(spec.out_dir) / f"{lab.name}.ipynb", lab)


def run(profile: str = "quick", device: str | None = None, jobs: int | None = None, only: list[str] | None = None,
        build: bool = True, data_root: str | None = None, results_root: str | None = None,
        threads: int | None = None, params: list[str] | None = None, executor: str = "local",
        scheduler: str | None = None, cluster: str | None = None) -> int:
    """The whole ``wdlg run``; prints progress and a report, returns the exit code (0 = all
    notebooks ran, wrote their results, and the book built without warnings).

    1. plan: every selected page's attacks, de-duplicated (:func:`wdlg_core.plan.make_plan`);
    2. execute the missing attacks with ``executor`` (:func:`wdlg_core.plan.execute`: in this
       process, or on a Dask cluster given by ``scheduler`` or ``cluster``);
    3. execute the notebooks with the store read-only: they load and render, and a page that
       asks for an attack outside its plan fails naming it;
    4. build the book.

    ``params``: ``-p KEY=VALUE`` page parameters (with ``only``; :func:`parse_parameters`).

    Raises:
        ValueError: unknown profile or notebook name (messages list the valid ones), a CUDA
            device that torch cannot see, a bad page parameter, or an executor that cannot run
            (:class:`wdlg_core.plan.PlanError`: unreachable scheduler, unwritable store).
    """
    from .plan import duration, execute, format_plan, make_plan
    from .profiles import get_profile
    from .store import ResultStore

    from .experiments import check_device

    check_device(get_profile(profile, device=device).device)  # unknown profile: error lists the valid ones
    specs = select(load_manifest() + course_specs(), only)
    page_parameters = parse_parameters(params, specs if only else []) if params else {}
    results_root = str(Path(results_root or os.environ.get(RESULTS_ROOT_ENV) or REPO_ROOT / "results").resolve())
    t0 = time.perf_counter()
    store = ResultStore(results_root, profile=profile)
    plan = make_plan(profile, page_names(specs), page_parameters, store=store, data_root=data_root)
    print(format_plan(plan))
    try:
        report = execute(plan, store, executor=executor, scheduler=scheduler, cluster=cluster, device=device)
    except KeyboardInterrupt:
        print(f"\nwdlg run: interrupted after {time.perf_counter() - t0:.0f} s. Every attack finished so far is "
              "stored and loaded by the next run.", file=sys.stderr)
        return 130
    if report["computed"]:
        print(f"computed {report['computed']} attack(s) in {report['batches']} batch(es) with the {executor} "
              f"executor in {duration(report['seconds'])}")
    specs, cached = _skip_unchanged_labs(specs)
    if cached:
        print(f"course labs unchanged since their last run, not run again: {', '.join(cached)}")
    try:
        runs = run_notebooks(specs, profile, device=device, jobs=jobs, data_root=data_root, read_only=True,
                             results_root=results_root, threads=threads, page_parameters=page_parameters)
    except KeyboardInterrupt:
        print(f"\nwdlg run: interrupted after {time.perf_counter() - t0:.0f} s. Attacks already stored are loaded "
              "by the next run; every page keeps its last complete executed copy.", file=sys.stderr)
        return 130
    _finish_labs(specs, runs)
    print()
    print(format_table(runs))
    failed = [r for r in runs if not r.ok]
    if failed:
        for r in failed:
            where = f" at {r.cell}" if r.cell else ""
            print(f"\nFAILED: notebook {r.name}{where}\n  {r.error}\n  executed copy: {r.output}", file=sys.stderr)
        print(f"\nwdlg run: {len(failed)} of {len(runs)} notebook(s) failed after {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
        return 1
    if build:
        print(f"\nbuilding the book: jupyter-book build {BOOK_DIR.relative_to(REPO_ROOT)} -W ...")
        ok, seconds, output = build_book(profile=profile)
        if not ok:
            print(output[-6000:], file=sys.stderr)
            print(f"FAILED: jupyter-book build -W ({seconds:.0f} s); see the output above", file=sys.stderr)
            return 1
        print(f"book built in {seconds:.0f} s: {BOOK_DIR / '_build' / 'html' / 'index.html'}")
    wall = time.perf_counter() - t0
    write_run_report(store, plan, report, wall, executor)
    print(f"wdlg run: done in {wall:.0f} s")
    return 0


def write_run_report(store, plan, report: dict, wall: float, executor: str) -> Path:
    """``<results>/<profile>/run.json``: this run's wall time (s), date, attacks planned, computed
    and loaded, and executor (the book of record's provenance reads it)."""
    from .provenance import provenance
    from .store import atomic_write_json

    return atomic_write_json(store.folder / "run.json", {
        "profile": plan.profile.name, "wall_seconds": round(wall, 1), "date": provenance()["date"],
        "attacks": len(plan.jobs), "computed": report["computed"], "loaded": len(plan.jobs) - report["computed"],
        "executor": executor, "pages": [c.page for c in plan.pages]})


def build_from_archive(profile: str = "record", root: str | os.PathLike | None = None) -> int:
    """``wdlg book --from record``: the archived book of ``profile``, built without computing
    any attack (:func:`wdlg_core.record.restore_book`, then :func:`build_book`). ``root``: the
    record folder (``"record"`` or None: the project's). Returns the exit code."""
    from .record import record_root, restore_book

    t0 = time.perf_counter()
    root = record_root() if root in (None, "record", "record/") else root
    prov = restore_book(profile, root)
    print(f"book of record: profile {profile}, {len(prov['pages'])} page(s) archived"
          + (f", not yet: {', '.join(prov['missing'])}" if prov["missing"] else "") + "; building ...")
    ok, seconds, output = build_book(profile=profile, archive=prov)
    if not ok:
        print(output[-6000:], file=sys.stderr)
        print(f"FAILED: jupyter-book build -W ({seconds:.0f} s); see the output above", file=sys.stderr)
        return 1
    print(f"book built in {time.perf_counter() - t0:.0f} s: {BOOK_DIR / '_build' / 'html' / 'index.html'}")
    return 0
