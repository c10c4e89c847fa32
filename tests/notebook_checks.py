"""Shared checks of committed and executed notebooks for the notebook tests."""
import os
import re
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
GLUE_REF = re.compile(r"\{glue:text\}`(\w+)")


def glue_keys(nb) -> tuple[set, set]:
    """(keys used by {glue:text} roles in markdown cells, keys glued by code cells) of an
    executed nbformat notebook."""
    used = {m for c in nb.cells if c.cell_type == "markdown" for m in GLUE_REF.findall(c.source)}
    glued = {o.metadata["scrapbook"]["name"] for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}
    return used, glued


def assert_clean_and_parameterized(path, names=()) -> None:
    """Assert the committed notebook at ``path`` is parameterized and clean: its first code cell
    is tagged ``parameters`` and assigns each of ``names`` (``name = `` appears in it), and no
    code cell has outputs or an execution count."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), path
    for name in names:
        assert f"{name} = " in code[0].source, (path, name)
    assert all(not c.outputs and c.execution_count is None for c in code), path


def execute_notebook(path, tmp_path, monkeypatch, /, **parameters):
    """Execute the notebook at ``path`` with papermill, injecting ``parameters``, and return the
    executed notebook read back with nbformat.

    The kernel runs in the repository root with the repository prepended to ``PYTHONPATH`` and
    ``WDLG_TORCH_THREADS=1`` (both set through ``monkeypatch``); the executed copy is written to
    ``tmp_path / "<notebook stem>.executed.ipynb"``, so one test can execute several notebooks."""
    import papermill as pm

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("WDLG_TORCH_THREADS", "1")
    out = Path(tmp_path) / f"{Path(path).stem}.executed.ipynb"
    pm.execute_notebook(str(path), str(out), parameters=parameters, cwd=str(REPO), kernel_name="python3",
                        progress_bar=False)
    return nbformat.read(out, as_version=4)
