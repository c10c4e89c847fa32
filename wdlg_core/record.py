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
    for path in sorted(base.glob(f"*/{page}.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out.append({**doc, "run": path.parent.name, "folder": path.parent})
    return out
