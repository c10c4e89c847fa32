"""The gallery notebook executes through papermill with tiny parameters and writes its results.

Slow-ish (a Jupyter kernel start plus a few short attacks, well under a minute), but part of
the default test run: it is the only test that executes a notebook end to end.
"""
import json
import os
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "fig03_inversion_gallery.ipynb"


def test_committed_without_outputs_and_parameters_first():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    for name in ("profile", "datasets", "model", "methods", "n_images", "iterations", "seed", "device"):
        assert f"{name} = " in code[0].source
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_gallery_notebook_executes(tmp_path, monkeypatch):
    import papermill as pm

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("WDLG_TORCH_THREADS", "1")
    params = dict(profile="quick", datasets=["mnist", "svhn"], n_images=1, iterations=5, device="cpu",
                  results_root=str(tmp_path / "results"))
    out = tmp_path / "executed.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out), parameters=params, cwd=str(REPO), kernel_name="python3",
                        progress_bar=False)

    summary = json.loads((tmp_path / "results" / "quick" / "fig03_inversion_gallery.json").read_text())
    assert summary["profile"]["iterations"] == 5 and summary["profile"]["datasets"] == ["mnist", "svhn"]
    assert len(summary["attacks"]) == 4  # 2 datasets x 1 image x 2 methods
    assert {(r["dataset"], r["method"]) for r in summary["per_dataset"]} == {
        ("mnist", "dlg"), ("mnist", "wdlg"), ("svhn", "dlg"), ("svhn", "wdlg")}
    assert all(0 <= r["mse"] <= 1 and r["label_accuracy"] == 1.0 for r in summary["attacks"])
    assert summary["store"]["computed"] == 4 and summary["provenance"]["device"] == "cpu"
    assert (tmp_path / "results" / "quick" / "fig03_inversion_gallery.png").exists()

    # every glue key used in the markdown was glued, and the figure was drawn
    nb = nbformat.read(out, as_version=4)
    glued = {o.metadata["scrapbook"]["name"] for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}
    import re
    used = {m for c in nb.cells if c.cell_type == "markdown" for m in re.findall(r"\{glue:text\}`([\w]+)", c.source)}
    assert used and used <= glued
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
