"""The book of record: page results computed at a larger scale than the quick book, shipped
with the project under ``record/`` so that a reader of the quick book sees them too.

Layout: ``record/<run>/<page>.json`` (the page's results file, as the page's notebook wrote it
with :meth:`wdlg_core.store.ResultStore.write_summary`: parameters, provenance, tables) and the
figures that file names, side by side. ``<run>`` names the scale, e.g. ``sensitivity_2240``.
Only these small files are shipped, never the results store's per-attack blobs.

How a run gets there: execute the page's notebook at the larger scale into a results folder
outside the work tree (papermill, with the notebook's parameters), then copy its results file
and figures with ``wdlg record ship`` (:func:`ship`). ``scripts/record_sensitivity.sh`` is the
one used for the sensitivity page.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .provenance import REPO_ROOT

#: Where the shipped record lives (``$WDLG_RECORD_ROOT`` overrides it, e.g. for a non-editable install).
RECORD_ROOT_ENV = "WDLG_RECORD_ROOT"


def record_root() -> Path:
    """``$WDLG_RECORD_ROOT`` if set, else ``<repository>/record``."""
    return Path(os.environ.get(RECORD_ROOT_ENV) or REPO_ROOT / "record")


def ship(results_folder: str | os.PathLike, page: str, run: str, root: str | os.PathLike | None = None) -> Path:
    """Copy ``<results_folder>/<page>.json`` and the figures it lists into ``<root>/<run>/``
    (replacing that folder).

    The copied file's ``"figures"`` become bare file names (they are found next to it).

    Args:
        results_folder: a results folder of one profile (``<results>/<profile>``).
        page: the page's results-file stem (e.g. ``sensitivity``).
        run: the record's name for this scale (letters, digits, ``_`` and ``-``).
        root: record folder (default :func:`record_root`).

    Returns:
        The path of the shipped JSON file.

    Raises:
        ValueError: a missing results file or figure, or a run name with other characters.
    """
    if not run or not all(c.isalnum() or c in "_-" for c in run):
        raise ValueError(f"record run name must use letters, digits, '_' or '-', got {run!r}")
    src = Path(results_folder) / f"{page}.json"
    if not src.is_file():
        raise ValueError(f"no results file {src}: run the page's notebook with that results folder first")
    doc = json.loads(src.read_text())
    # absolute as the pages write them; a relative path is read as relative to the results folder
    figures = [Path(f) if Path(f).is_absolute() else Path(results_folder) / f for f in doc.get("figures", [])]
    missing = [str(f) for f in figures if not f.is_file()]
    if missing:
        raise ValueError(f"{src} names figures that do not exist: {', '.join(missing)}")
    dest = Path(root or record_root()) / run
    if dest.exists():  # a run is replaced whole: no figure of an earlier version stays behind
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in figures:
        shutil.copyfile(f, dest / f.name)
    doc["figures"] = [f.name for f in figures]
    out = dest / f"{page}.json"
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return out


def load(page: str, root: str | os.PathLike | None = None) -> list[dict]:
    """Every shipped record of ``page``: a list of its results documents, each with ``"run"``
    (the record's name) and ``"folder"`` (a Path: its figures are there) added, sorted by run
    name. Empty when nothing is shipped or the record folder is missing."""
    base = Path(root or record_root())
    out = []
    for path in sorted(base.glob(f"*/{page}.json")):  # whole-book archives keep theirs under results/
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out.append({**doc, "run": path.parent.name, "folder": path.parent})
    return out


# --------------------------------------------------------------------------- the whole book
#: The archive of a whole book computed under one profile: ``record/book_<profile>/`` with
#: ``results/<page>.json``, ``figures/``, ``notebooks/<page>.ipynb`` (executed) and
#: ``provenance.json``. Pages are shipped one by one as their attacks finish (a record run
#: spans several sessions), so an archive may hold some pages only; the replication summary is
#: rendered again from the archived pages whenever one is added.
ARCHIVE_PREFIX = "book_"
#: The page that summarises the others (rendered from the archive, never shipped from a run).
SUMMARY = "replication_summary"


def archive_folder(profile: str, root: str | os.PathLike | None = None) -> Path:
    """``<record root>/book_<profile>``."""
    return Path(root or record_root()) / f"{ARCHIVE_PREFIX}{profile}"


def attack_totals(plan, store) -> dict:
    """Counts and compute time of a plan's attacks as stored: ``{"attacks": distinct attacks,
    "attack_seconds": sum of their stored wall times (each an attack's share of its batch's
    time, so the sum is the time the batches took, whatever sessions they ran in),
    "computed_at": the commits they were computed at}``.

    Raises:
        ValueError: some attacks are not stored (the message gives the count and the command).
    """
    missing = [k for k in plan.keys if not store.has(k)]
    if missing:
        raise ValueError(f"{len(missing)} of the {len(plan.keys)} attacks of profile {plan.profile.name} are not in "
                         f"{store.folder}: run `wdlg run --profile {plan.profile.name} --results-root {store.root}` first")
    seconds, commits = 0.0, set()
    for key in plan.keys:
        doc = json.loads(store.paths(key)[0].read_text())
        seconds += float(doc["result"].get("wall_time") or 0.0)
        commits.add(((doc["result"].get("meta") or {}).get("provenance") or {}).get("git_commit") or "unknown")
    return {"attacks": len(plan.keys), "attack_seconds": round(seconds, 1), "computed_at": sorted(commits)}


def _figures(doc: dict) -> list[str]:
    """The figure paths a results file names: ``"figure"`` (one path) and ``"figures"`` (a list
    of paths, or a dict name -> path)."""
    figures = doc.get("figures") or []
    figures = list(figures.values()) if isinstance(figures, dict) else list(figures)
    return figures + ([doc["figure"]] if doc.get("figure") else [])


def _bare_figure_names(doc: dict) -> dict:
    """``doc`` with every figure path of :func:`_figures` replaced by its file name (the
    archive keeps the figures in one folder)."""
    doc = dict(doc)
    if isinstance(doc.get("figures"), dict):
        doc["figures"] = {k: Path(v).name for k, v in doc["figures"].items()}
    elif doc.get("figures"):
        doc["figures"] = [Path(f).name for f in doc["figures"]]
    if doc.get("figure"):
        doc["figure"] = Path(doc["figure"]).name
    return doc


def _profile_name(doc: dict):
    """The profile a results file was computed under (pages write a dict, the summary a name)."""
    p = doc.get("profile")
    return p.get("name") if isinstance(p, dict) else p


def _read_provenance(folder: Path, profile: str) -> dict:
    path = folder / "provenance.json"
    if path.is_file():
        return json.loads(path.read_text())
    return {"profile": profile, "pages": {}}


def ship_page(profile: str, page: str, results_root: str | os.PathLike, book_dir: str | os.PathLike | None = None,
              root: str | os.PathLike | None = None) -> Path:
    """Add one page of a run of ``profile`` to the archive (replacing its earlier version).

    Copies ``<results_root>/<profile>/<page>.json`` (figure paths made bare names), the figures
    it names and the executed notebook ``<book_dir>/notebooks/<page>.ipynb``, and records the
    page's provenance: commit, machine, torch, shipping date, and its attacks' count and compute
    time from the store (:func:`attack_totals`). No store blob is copied.

    Raises:
        ValueError: an unknown page, the summary (see :func:`render_summary`), a missing results
            file, figure or executed notebook, or attacks of the page not in the store (each
            message names it).
    """
    from .pages import get_page
    from .plan import make_plan
    from .provenance import provenance
    from .runner import BOOK_DIR
    from .store import ResultStore

    get_page(page)
    if page == SUMMARY:
        raise ValueError(f"{SUMMARY} is rendered from the archived pages (render_summary), not shipped from a run")
    folder = Path(results_root) / profile
    src = folder / f"{page}.json"
    nb = Path(book_dir or BOOK_DIR) / "notebooks" / f"{page}.ipynb"
    if not src.is_file():
        raise ValueError(f"no results file {src}: run `wdlg run --profile {profile} --only {page}` first")
    if not nb.is_file():
        raise ValueError(f"no executed notebook {nb}: run `wdlg run --profile {profile} --only {page}` first")
    doc = json.loads(src.read_text())
    if _profile_name(doc) not in (profile, None):
        raise ValueError(f"{src} was computed under profile {_profile_name(doc)!r}, not {profile!r}")
    figures = [Path(f) if Path(f).is_absolute() else folder / f for f in _figures(doc)]
    for f in figures:
        if not f.is_file():
            raise ValueError(f"{src} names a figure that does not exist: {f}")
    store = ResultStore(results_root, profile=profile)
    totals = attack_totals(make_plan(profile, [page], store=store), store)
    dest = archive_folder(profile, root)
    for sub in ("results", "figures", "notebooks"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    prov = _read_provenance(dest, profile)
    for old in prov["pages"].get(page, {}).get("figures", []):  # no figure of an earlier version stays
        (dest / "figures" / old).unlink(missing_ok=True)
    for f in figures:
        shutil.copyfile(f, dest / "figures" / f.name)
    doc = _bare_figure_names(doc)
    (dest / "results" / src.name).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    shutil.copyfile(nb, dest / "notebooks" / nb.name)
    # the machine and commit that rendered the page (its results file's provenance), else this one's
    machine = {k: v for k, v in {**provenance("cpu"), **(doc.get("provenance") or {})}.items()
               if k in ("git_commit", "torch", "platform", "cpu_count", "python")}
    prov["pages"][page] = {**machine, "shipped": provenance()["date"], **totals,
                           "figures": [f.name for f in figures]}
    prov["profile"] = profile
    (dest / "provenance.json").write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")
    return dest


def render_summary(profile: str, root: str | os.PathLike | None = None, book_dir: str | os.PathLike | None = None) -> dict:
    """Execute the replication summary on the archived pages' results (papermill; no attack)
    and archive it with its claim count and verdict counts. Returns the updated provenance.

    Raises:
        ValueError: no archive of ``profile``; RuntimeError: the summary notebook failed.
    """
    import tempfile

    from .runner import load_manifest, run_notebooks

    dest = archive_folder(profile, root)
    prov = _read_provenance(dest, profile)
    if not prov["pages"]:
        raise ValueError(f"no page of profile {profile!r} is archived in {dest}; ship one with `wdlg record ship-book`")
    spec = [s for s in load_manifest() if s.name == SUMMARY]
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results" / profile
        results.mkdir(parents=True)
        for page in prov["pages"]:
            doc = json.loads((dest / "results" / f"{page}.json").read_text())
            (results / f"{page}.json").write_text(json.dumps(doc))
        out = Path(tmp) / "notebooks"
        run = run_notebooks(spec, profile, out_dir=out, results_root=Path(tmp) / "results", progress=False)[0]
        if not run.ok:
            raise RuntimeError(f"the replication summary failed on the archive: {run.detail}")
        shutil.copyfile(out / f"{SUMMARY}.ipynb", dest / "notebooks" / f"{SUMMARY}.ipynb")
        doc = json.loads((results / f"{SUMMARY}.json").read_text())
    (dest / "results" / f"{SUMMARY}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    claims = doc.get("claims", [])
    counts: dict[str, int] = {}
    for c in claims:
        counts[c.get("verdict", "?")] = counts.get(c.get("verdict", "?"), 0) + 1
    prov["summary"] = {"claims": len(claims), "verdicts": counts}
    (dest / "provenance.json").write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")
    return prov


def ship_book(profile: str, results_root: str | os.PathLike, book_dir: str | os.PathLike | None = None,
              root: str | os.PathLike | None = None, pages=None) -> dict:
    """Ship every page of ``pages`` (default: each manifest page whose results file is in
    ``<results_root>/<profile>/``) with :func:`ship_page`, then :func:`render_summary`.
    Returns the archive's provenance."""
    from .runner import load_manifest

    names = pages or [s.name for s in load_manifest()
                      if s.name != SUMMARY and (Path(results_root) / profile / s.results).is_file()]
    for page in names:
        ship_page(profile, page, results_root, book_dir, root)
    return render_summary(profile, root, book_dir)


def check_archive(profile: str, root: str | os.PathLike | None = None, complete: bool = False) -> dict:
    """The archive's provenance after checking its form against the manifest: every archived
    page is a manifest page with its results file, executed notebook and figures, and a
    provenance (commit, machine, torch, attack count and time); the replication summary is
    there and its claim count is the provenance's. With ``complete``, every manifest page must
    be archived. ``"missing"`` in the returned dict lists the pages not (yet) archived.

    Raises:
        ValueError: the first problem found (the message names it).
    """
    from .runner import load_manifest

    folder = archive_folder(profile, root)
    prov_path = folder / "provenance.json"
    if not prov_path.is_file():
        raise ValueError(f"no book of record for profile {profile!r} at {folder} (no provenance.json)")
    prov = json.loads(prov_path.read_text())
    names = [s.name for s in load_manifest()]
    if prov.get("profile") != profile:
        raise ValueError(f"{prov_path}: profile {prov.get('profile')!r}, expected {profile!r}")
    unknown = sorted(set(prov.get("pages", {})) - set(names))
    if unknown:
        raise ValueError(f"{prov_path}: pages {unknown} are not in the manifest")
    for page, meta in prov.get("pages", {}).items():
        for key in ("git_commit", "torch", "platform", "cpu_count", "attacks", "attack_seconds", "shipped"):
            if meta.get(key) in (None, ""):
                raise ValueError(f"{prov_path}: page {page} has no {key!r}")
    for page in [*prov.get("pages", {}), SUMMARY]:
        res, nb = folder / "results" / f"{page}.json", folder / "notebooks" / f"{page}.ipynb"
        for path in (res, nb):
            if not path.is_file():
                raise ValueError(f"book of record {folder}: {path.relative_to(folder)} is missing")
        doc = json.loads(res.read_text())
        if _profile_name(doc) not in (profile, None):
            raise ValueError(f"{res}: computed under profile {_profile_name(doc)!r}, not {profile!r}")
        for f in _figures(doc):
            if not (folder / "figures" / f).is_file():
                raise ValueError(f"{res} names figure {f}, missing from {folder / 'figures'}")
    claims = json.loads((folder / "results" / f"{SUMMARY}.json").read_text()).get("claims", [])
    if len(claims) != (prov.get("summary") or {}).get("claims"):
        raise ValueError(f"{prov_path}: {(prov.get('summary') or {}).get('claims')} claims, the summary has {len(claims)}")
    missing = [n for n in names if n != SUMMARY and n not in prov.get("pages", {})]
    if complete and missing:
        raise ValueError(f"book of record {folder}: pages {missing} are not archived")
    return {**prov, "missing": missing}


def restore_book(profile: str, root: str | os.PathLike | None = None, book_dir: str | os.PathLike | None = None) -> dict:
    """Put the archived executed pages where the book's table of contents expects them
    (``book/notebooks/``), after :func:`check_archive`, and a "not yet at this scale" page for
    each page not archived; the book is then built as usual, without computing anything.
    Returns the archive's provenance (with ``"missing"``)."""
    from .runner import BOOK_DIR, load_manifest, write_placeholder

    prov = check_archive(profile, root)
    folder = archive_folder(profile, root)
    target = Path(book_dir or BOOK_DIR) / "notebooks"
    if target.exists():
        shutil.rmtree(target)  # no page of another build stays behind
    target.mkdir(parents=True)
    for nb in (folder / "notebooks").glob("*.ipynb"):
        shutil.copyfile(nb, target / nb.name)
    titles = {s.name: s.title or s.name for s in load_manifest()}
    for page in prov["missing"]:
        write_placeholder(target, page, (
            f"# {titles[page]}\n\n**Not yet in the book of record.** This page has not been computed at the "
            f"`{profile}` profile's scale yet (the record run spans several sessions and ships each page when its "
            f"attacks are done). `wdlg plan --profile {profile} --only {page}` shows what it needs; "
            f"`wdlg run --profile {profile} --only {page}` computes it. The quick book (`make book`) has this page "
            "at the quick scale."))
    return prov
