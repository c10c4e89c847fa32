"""The gallery notebook executes through papermill with tiny parameters and writes its results.

Slow-ish (a Jupyter kernel start plus a few short attacks, well under a minute), but part of
the default test run: it is the only test that executes a notebook end to end.
"""
import json
from pathlib import Path

import nbformat
import pytest
from notebook_checks import assert_clean_and_parameterized, execute_notebook, glue_keys

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "fig03_inversion_gallery.ipynb"


def test_committed_without_outputs_and_parameters_first():
    assert_clean_and_parameterized(NOTEBOOK, ("profile", "datasets", "model", "methods", "n_images", "iterations",
                                              "seed", "device"))


def test_gallery_scale_note_states_what_differs_from_the_paper_profile():
    from wdlg_core.experiments.gallery import scale_note
    from wdlg_core.profiles import get_profile

    quick, paper = get_profile("quick"), get_profile("paper")
    note = scale_note(quick)
    assert f"{quick.gallery_images} images per dataset (fewer than the paper profile's {paper.gallery_images})" in note
    direction = "more" if quick.iterations > paper.iterations else "fewer"
    assert f"{quick.iterations} iterations per attack ({direction} than the paper profile's {paper.iterations})" in note
    assert "illustrate rather than measure" in note
    short = scale_note(paper.override(iterations=paper.iterations - 1))
    assert "(fewer than the paper profile's" in short and "illustrate" in short
    same = scale_note(paper)
    assert "(the same as the paper profile's" in same and "illustrate" not in same


@pytest.mark.slow
def test_gallery_notebook_executes(tmp_path, monkeypatch):
    nb = execute_notebook(NOTEBOOK, tmp_path, monkeypatch, profile="quick", datasets=["mnist", "svhn"], n_images=1,
                          iterations=5, device="cpu", results_root=str(tmp_path / "results"))

    summary = json.loads((tmp_path / "results" / "quick" / "fig03_inversion_gallery.json").read_text())
    assert summary["profile"]["iterations"] == 5 and summary["profile"]["datasets"] == ["mnist", "svhn"]
    assert len(summary["attacks"]) == 4  # 2 datasets x 1 image x 2 methods
    assert {(r["dataset"], r["method"]) for r in summary["per_dataset"]} == {
        ("mnist", "dlg"), ("mnist", "wdlg"), ("svhn", "dlg"), ("svhn", "wdlg")}
    assert all(0 <= r["mse"] <= 1 and r["label_accuracy"] == 1.0 for r in summary["attacks"])
    assert summary["store"]["computed"] == 4 and summary["provenance"]["device"] == "cpu"
    assert (tmp_path / "results" / "quick" / "fig03_inversion_gallery.png").exists()

    # every glue key used in the markdown was glued, and the figure was drawn
    used, glued = glue_keys(nb)
    assert used and used <= glued
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
def test_runner_reports_failing_notebook_and_cell(tmp_path, monkeypatch):
    """Two notebooks in parallel: one writes its results file, one fails in its third cell."""
    from wdlg_core.runner import NotebookSpec, format_table, run_notebooks

    def notebook(path, cells):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(cells[0], metadata={"tags": ["parameters"]})]
        nb.cells += [nbformat.v4.new_code_cell(c) for c in cells[1:]]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, path)
        return str(path)

    good = notebook(tmp_path / "good.ipynb", [
        'profile = "x"\ndevice = None',
        "import json, os, pathlib\n"
        "p = pathlib.Path(os.environ['WDLG_RESULTS_ROOT']) / profile / 'good.json'\n"
        "p.parent.mkdir(parents=True, exist_ok=True)\n"
        "p.write_text(json.dumps({'threads': os.environ['WDLG_TORCH_THREADS']}))"])
    bad = notebook(tmp_path / "bad.ipynb", ['profile = "x"\ndevice = None', "x = 1", "raise ValueError('broken on purpose')"])
    quiet = notebook(tmp_path / "quiet.ipynb", ['profile = "x"\ndevice = None', "y = 2"])  # never writes results
    # a final notebook starts only after the others: it reads what "good" wrote
    last = notebook(tmp_path / "last.ipynb", [
        'profile = "x"\ndevice = None',
        "import json, os, pathlib\n"
        "root = pathlib.Path(os.environ['WDLG_RESULTS_ROOT']) / profile\n"
        "seen = json.loads((root / 'good.json').read_text())\n"
        "(root / 'last.json').write_text(json.dumps(seen))"])
    specs = [NotebookSpec("last", "last.json", source=last, final=True),
             NotebookSpec("good", "good.json", source=good), NotebookSpec("bad", "bad.json", source=bad),
             NotebookSpec("quiet", "quiet.json", source=quiet)]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "bad.ipynb").write_text("last complete copy")  # from an earlier run that worked
    runs = run_notebooks(specs, "quick", jobs=2, threads=1, out_dir=tmp_path / "out",
                         results_root=tmp_path / "results", progress=False)
    by = {r.name: r for r in runs}
    assert [r.name for r in runs] == ["last", "good", "bad", "quiet"]
    assert by["last"].ok  # listed first, yet it ran after "good" had written its results
    assert by["good"].ok and (tmp_path / "out" / "good.ipynb").exists()
    assert json.loads((tmp_path / "results" / "quick" / "good.json").read_text()) == {"threads": "1"}
    assert by["bad"].status == "failed" and "ValueError: broken on purpose" in by["bad"].error
    assert "raise ValueError" in by["bad"].cell  # the failing cell is named
    # the book keeps the last complete copy; the failed one goes aside, and no partial file is left
    assert (tmp_path / "out" / "bad.ipynb").read_text() == "last complete copy"
    assert by["bad"].output == str(tmp_path / "out" / "bad.failed.ipynb")
    assert "broken on purpose" in (tmp_path / "out" / "bad.failed.ipynb").read_text()
    assert not list((tmp_path / "out").glob("*.running.ipynb"))
    assert by["quiet"].status == "no results" and "quiet.json" in by["quiet"].error
    assert "broken on purpose" in format_table(runs)


def test_every_manifest_notebook_is_clean_parameterized_and_in_the_book():
    import yaml

    from wdlg_core.runner import load_manifest

    toc = (REPO / "book" / "_toc.yml").read_text()
    toc_files = {line.split("notebooks/", 1)[1].strip() for line in toc.splitlines() if "file: notebooks/" in line}
    specs = load_manifest()
    assert {s.name for s in specs} == toc_files
    assert sum(bool(getattr(s, "final", False)) for s in specs) == 1 and specs[-1].name == "replication_summary"
    assert len(yaml.safe_load((REPO / "notebooks" / "manifest.yml").read_text())["notebooks"]) == len(specs)
    for s in specs:
        assert_clean_and_parameterized(s.path, ("profile", "results_root"))


@pytest.mark.slow
def test_cnn6_gallery_notebook_reads_the_lenet_page(tmp_path, monkeypatch):
    folder = tmp_path / "results" / "quick"
    folder.mkdir(parents=True)
    lenet = {"profile": {"iterations": 1500}, "per_dataset": [
        {"dataset": "mnist", "method": m, "psnr": 40.0, "success_rate": 1.0} for m in ("dlg", "wdlg")]}
    (folder / "fig03_inversion_gallery.json").write_text(json.dumps(lenet))
    nb = execute_notebook(REPO / "notebooks" / "fig04_inversion_gallery_cnn6.ipynb", tmp_path, monkeypatch,
                          profile="quick", datasets=["mnist"], n_images=1, iterations=3, device="cpu",
                          results_root=str(tmp_path / "results"))
    summary = json.loads((folder / "fig04_inversion_gallery_cnn6.json").read_text())
    assert summary["profile"]["model"] == "cnn6" and summary["profile"]["iterations"] == 3
    assert len(summary["attacks"]) == 2 and {r["psnr_lenet"] for r in summary["beside_lenet"]} == {40.0}
    used, glued = glue_keys(nb)
    assert used and used <= glued
