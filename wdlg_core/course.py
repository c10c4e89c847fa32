"""The course: five labs, each written once as an instructor notebook, and their student versions.

Sources: ``course/labs/lab<k>_<topic>.ipynb`` (committed without outputs). A lab is an
instructor notebook with its solutions in it; the student version is derived from it by
:func:`student_notebook` (``wdlg course export DIR``). Cell tags (nbformat metadata):

==============  ==================================================================================
tag             meaning
==============  ==================================================================================
``solution``    on a code cell: the instructor's solution, one or more functions (imports are
                allowed too). In the student version each function keeps its signature and
                docstring, and its body becomes a stub that raises ``NotImplementedError``
                marked TODO. Anything else at the top level of such a cell is an error: the
                student fills in functions, so nothing runs until a check cell calls them.
                On a markdown cell (the gate lines ``{solution-start}`` / ``{solution-end}``
                that fold the solution in the book, or a quiz answer): dropped.
``check``       the automatic check that follows each exercise: it calls the student's
                function, asserts on the result with a tolerance and prints a hint when the
                assert fails (:mod:`wdlg_core.labkit`). Kept unchanged.
==============  ==================================================================================

A markdown cell that opens with sphinx-exercise's ``{exercise}`` directive is rendered by the
book as a numbered exercise; the student version turns it into a plain heading
("Exercise k: title"), since Jupyter does not render MyST directives.

The book shows the instructor labs executed (``wdlg run`` executes them with papermill into
``book/course/labs/``, see :mod:`wdlg_core.runner`) with the solutions folded, and offers the
student version of each lab for download (``book/course/student/``); both folders are
generated and git-ignored.
"""
from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .provenance import REPO_ROOT

#: Folder of the instructor notebooks.
LABS_DIR = REPO_ROOT / "course" / "labs"
#: Where ``wdlg run`` writes the executed instructor labs and the student versions for the book.
BOOK_LABS_DIR = REPO_ROOT / "book" / "course" / "labs"
BOOK_STUDENT_DIR = REPO_ROOT / "book" / "course" / "student"
SOLUTION_TAG = "solution"
CHECK_TAG = "check"
#: ``{exercise} Title`` fence at the start of a markdown cell (backticks or colons, 3 or more).
_EXERCISE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{exercise\}[ \t]*(?P<title>[^\n]*)\n(?P<body>.*?)\n(?P=fence)[ \t]*$",
                       re.S)


@dataclass(frozen=True)
class Lab:
    """One lab: ``name`` (file stem, e.g. ``lab1_gradients_leak``), ``title`` (its first
    heading), ``path`` (the instructor notebook)."""

    name: str
    title: str
    path: Path


def list_labs(labs_dir: str | Path | None = None) -> list[Lab]:
    """The labs in ``labs_dir`` (default :data:`LABS_DIR`), ordered by name (lab1 first).

    Raises:
        FileNotFoundError: no such folder (the package installed without this repository).
    """
    import nbformat

    folder = Path(labs_dir) if labs_dir is not None else LABS_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"no labs folder {folder}")
    labs = []
    for path in sorted(folder.glob("lab*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        heading = next((line.lstrip("# ").strip() for c in nb.cells if c.cell_type == "markdown"
                        for line in c.source.splitlines() if line.startswith("# ")), path.stem)
        labs.append(Lab(path.stem, heading, path))
    return labs


def select_labs(names: list[str] | None, labs_dir: str | Path | None = None) -> list[Lab]:
    """The labs named in ``names`` (all when empty or None), in course order.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    labs = list_labs(labs_dir)
    if not names:
        return labs
    valid = [lab.name for lab in labs]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown lab(s) {unknown}; valid names: {', '.join(valid)}")
    return [lab for lab in labs if lab.name in names]


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def stub_source(source: str, where: str = "solution cell") -> str:
    """The student version of one solution cell: every top-level function keeps its decorators,
    signature and docstring; its body becomes ``raise NotImplementedError("TODO: ...")``.
    Imports, comments and blank lines outside the functions are kept.

    Args:
        source: the cell's Python source.
        where: what to call the cell in error messages (e.g. ``lab2 cell 7``).

    Returns:
        The stubbed source (it parses, and defines the same names).

    Raises:
        ValueError: the cell does not parse, holds a top-level statement other than a
            function definition or an import, defines no function, or puts a function's
            body on the ``def`` line.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"{where}: does not parse ({err.msg}, line {err.lineno})") from None
    lines = source.splitlines()
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    other = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Import,
                                                        ast.ImportFrom))]
    if other:
        raise ValueError(f"{where}: a solution cell holds only functions and imports; line {other[0].lineno} is a "
                         f"{type(other[0]).__name__} (move it to an untagged cell)")
    if not functions:
        raise ValueError(f"{where}: a solution cell must define at least one function")
    out: list[str] = []
    done = 0  # lines[:done] are handled
    for fn in functions:
        first = fn.body[0]
        if first.lineno == fn.lineno:
            raise ValueError(f"{where}: put the body of {fn.name}() on its own lines")
        start = min([fn.lineno] + [d.lineno for d in fn.decorator_list]) - 1
        has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
        head_end = first.end_lineno if has_doc else first.lineno - 1  # keep the docstring's lines
        indent = " " * first.col_offset
        out += lines[done:start] + lines[start:head_end]
        out += [f"{indent}# TODO: write the body of {fn.name}() (see the exercise above), then run the check below.",
                f'{indent}raise NotImplementedError("TODO: {fn.name}() is not written yet")']
        done = fn.end_lineno
    out += lines[done:]
    stub = "\n".join(out)
    ast.parse(stub)  # the stub itself must parse
    return stub


def _exercise_heading(source: str, number: int) -> str | None:
    """``### Exercise k: title`` + body for a markdown cell that is one ``{exercise}`` directive
    (option lines such as ``:label:`` dropped); None for any other cell."""
    m = _EXERCISE.match(source.strip())
    if not m:
        return None
    body = [line for line in m.group("body").splitlines() if not re.match(r"^:\w[\w-]*:", line)]
    title = m.group("title").strip()
    return f"### Exercise {number}{': ' + title if title else ''}\n\n" + "\n".join(body).strip()


def student_notebook(nb, name: str = "lab"):
    """The student version of an instructor notebook (a new nbformat notebook; ``nb`` is unchanged).

    Code cells tagged ``solution`` are stubbed (:func:`stub_source`), markdown cells tagged
    ``solution`` dropped, ``{exercise}`` directives turned into headings; every output and
    execution count is cleared, and the notebook's metadata records ``wdlg_course``
    (``version: student``, the lab's name).

    Raises:
        ValueError: a solution cell that cannot be stubbed (:func:`stub_source`), or a lab with no
            solution cell or no check cell (the message names the lab).
    """
    import copy

    import nbformat

    out = copy.deepcopy(nb)
    cells, exercises = [], 0
    solutions = sum(1 for c in nb.cells if c.cell_type == "code" and SOLUTION_TAG in _tags(c))
    checks = sum(1 for c in nb.cells if c.cell_type == "code" and CHECK_TAG in _tags(c))
    if not solutions or not checks:
        raise ValueError(f"{name}: a lab needs code cells tagged '{SOLUTION_TAG}' and '{CHECK_TAG}' "
                         f"(found {solutions} and {checks})")
    for i, cell in enumerate(out.cells):
        tags = _tags(cell)
        if cell.cell_type == "markdown":
            if SOLUTION_TAG in tags:
                continue
            heading = _exercise_heading(cell.source, exercises + 1)
            if heading is not None:
                exercises += 1
                cell.source = heading
        elif cell.cell_type == "code":
            if SOLUTION_TAG in tags:
                cell.source = stub_source(cell.source, f"{name} cell {i}")
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "papermill"):
            cell.metadata.pop(key, None)
        cells.append(cell)
    out.cells = cells
    out.metadata.pop("papermill", None)
    out.metadata["wdlg_course"] = {"version": "student", "lab": name}
    nbformat.validate(out)
    return out


def export(out_dir: str | Path, names: list[str] | None = None, force: bool = False,
           labs_dir: str | Path | None = None) -> list[Path]:
    """Write the student version of each lab to ``out_dir/<lab name>.ipynb``.

    Args:
        out_dir: target folder (created if missing).
        names: labs to export (default all; see :func:`list_labs`).
        force: overwrite student notebooks already there.
        labs_dir: folder of the instructor notebooks (default :data:`LABS_DIR`).

    Returns:
        The paths written, in course order.

    Raises:
        ValueError: ``out_dir`` is a file, a target exists and ``force`` is False, an unknown lab
            name (the message lists the valid ones), or a lab that cannot be turned into a
            student version (:func:`student_notebook`). Nothing is written in these cases.
    """
    import nbformat

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file; give a folder for the student notebooks")
    labs = select_labs(names, labs_dir)
    targets = [out_dir / f"{lab.name}.ipynb" for lab in labs]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise ValueError(f"{existing[0]} exists{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}; "
                         "pass --force to overwrite, or choose another folder")
    student = [student_notebook(nbformat.read(lab.path, as_version=4), lab.name) for lab in labs]
    out_dir.mkdir(parents=True, exist_ok=True)
    for nb, target in zip(student, targets):
        nbformat.write(nb, target)
    return targets


def source_key(lab: Lab) -> str:
    """Cache key of an executed lab: sha256 of the lab's source and of every ``wdlg_core``
    module (a change to either runs the lab again). 16 hex digits."""
    h = hashlib.sha256(lab.path.read_bytes())
    for path in sorted((REPO_ROOT / "wdlg_core").rglob("*.py")):
        h.update(path.relative_to(REPO_ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def executed_key(path: str | Path) -> str | None:
    """The :func:`source_key` recorded in an executed lab's metadata (None: no such file, or not
    a finished book copy)."""
    import nbformat

    path = Path(path)
    if not path.exists():
        return None
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable copy is simply run again
        return None
    return nb.metadata.get("wdlg_course", {}).get("key")


def finish_book_copy(path: str | Path, lab: Lab, student_dir: str | Path | None = None) -> None:
    """Turn an executed instructor lab into the book's page: a download link to its student
    version (relative to the page; :data:`BOOK_STUDENT_DIR` by default) after the title, and
    the lab's :func:`source_key` in the metadata (the runner skips an unchanged lab)."""
    import os

    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    student = Path(student_dir) if student_dir is not None else BOOK_STUDENT_DIR
    rel = Path(os.path.relpath(student / f"{lab.name}.ipynb", path.parent)).as_posix()
    link = nbformat.v4.new_markdown_cell(
        f"```{{admonition}} Student version\n:class: tip\nThis page is the instructor's version, with the solutions "
        f"folded. Download the student notebook, {{download}}`{lab.name}.ipynb <{rel}>`, where each solution is a "
        f"stub marked TODO and each check fails until the exercise is done (run it from the repository's root, "
        f"with `wdlg_core` installed).\n```")
    link.metadata["tags"] = ["course-download"]
    cells = [c for c in nb.cells if "course-download" not in _tags(c)]
    first = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"), -1)
    cells.insert(first + 1, link)
    nb.cells = cells
    nb.metadata["wdlg_course"] = {"version": "instructor", "lab": lab.name, "key": source_key(lab)}
    nbformat.write(nb, path)


def placeholders(book_dir: str | Path | None = None) -> list[str]:
    """A short "not run" page for every lab without an executed copy in ``<book>/course/labs/``
    (so that a partial ``wdlg run`` builds). Returns the names written."""
    from .runner import write_placeholder

    folder = (Path(book_dir) if book_dir is not None else REPO_ROOT / "book") / "course" / "labs"
    folder.mkdir(parents=True, exist_ok=True)
    return [lab.name for lab in list_labs() if write_placeholder(folder, lab.name, (
        f"# {lab.title}\n\n**Not run in this build.** Execute the lab with\n\n```bash\n"
        f".venv/bin/wdlg run --profile quick --only {lab.name}\n```\n\nor read its source, "
        f"`course/labs/{lab.name}.ipynb`."))]
