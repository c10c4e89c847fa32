"""The book of record: shipping a page's results file and figures, and reading them back."""
import json

import pytest

from wdlg_core import record
from wdlg_core.cli import main


def _results(folder, figure=True):
    folder.mkdir(parents=True)
    png = folder / "sensitivity_readings.png"
    if figure:
        png.write_bytes(b"\x89PNG fake")
    doc = {"profile": {"iterations": 448}, "readings": [{"dataset": "mnist", "attacker": "DLG", "successes": 3,
                                                         "attacks": 4}], "figures": [str(png)]}
    (folder / "sensitivity.json").write_text(json.dumps(doc))
    return folder


def test_ship_copies_the_file_and_its_figures_and_load_reads_them_back(tmp_path):
    src = _results(tmp_path / "results" / "paper")
    out = record.ship(src, "sensitivity", "sensitivity_448", root=tmp_path / "record")
    assert out == tmp_path / "record" / "sensitivity_448" / "sensitivity.json"
    assert (out.parent / "sensitivity_readings.png").read_bytes() == b"\x89PNG fake"
    docs = record.load("sensitivity", root=tmp_path / "record")
    assert len(docs) == 1 and docs[0]["run"] == "sensitivity_448"
    assert docs[0]["figures"] == ["sensitivity_readings.png"] and docs[0]["readings"][0]["successes"] == 3
    assert (docs[0]["folder"] / docs[0]["figures"][0]).is_file()
    assert record.load("tab02_success_time", root=tmp_path / "record") == []
    assert record.load("sensitivity", root=tmp_path / "nowhere") == []


def test_ship_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="no results file"):
        record.ship(tmp_path, "sensitivity", "run", root=tmp_path / "record")
    src = _results(tmp_path / "results" / "paper", figure=False)
    with pytest.raises(ValueError, match="figures that do not exist"):
        record.ship(src, "sensitivity", "run", root=tmp_path / "record")
    with pytest.raises(ValueError, match="letters, digits"):
        record.ship(src, "sensitivity", "../up", root=tmp_path / "record")


def test_cli_record_ship_gives_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(record.RECORD_ROOT_ENV, str(tmp_path / "record"))
    assert main(["record", "ship", "--from", str(tmp_path / "none"), "--page", "sensitivity", "--run", "x"]) == 2
    assert capsys.readouterr().err.startswith("wdlg: error: no results file")
    src = _results(tmp_path / "results" / "paper")
    assert main(["record", "ship", "--from", str(src), "--page", "sensitivity", "--run", "x"]) == 0
    assert (tmp_path / "record" / "x" / "sensitivity.json").is_file()


# ----------------------------------------------------------------------------- the whole book
def _page_run(tmp_path, profile="record"):
    """A finished run of Table 1 (a page without attacks): its results file, a figure and its
    executed notebook, where `wdlg run` leaves them."""
    import nbformat

    results = tmp_path / "results"
    folder = results / profile
    folder.mkdir(parents=True)
    png = folder / "tab01_figure.png"
    png.write_bytes(b"\x89PNG fake")
    (folder / "tab01_settings.json").write_text(json.dumps({"profile": {"name": profile}, "figures": [str(png)]}))
    book = tmp_path / "book"
    (book / "notebooks").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), book / "notebooks" / "tab01_settings.ipynb")
    return results, book


def test_a_shipped_page_makes_an_archive_that_checks_and_restores(tmp_path):
    from wdlg_core.runner import load_manifest

    results, book = _page_run(tmp_path)
    root = tmp_path / "record"
    prov = record.ship_book("record", results, book, root=root)  # ships Table 1, renders the summary
    folder = record.archive_folder("record", root)
    assert (folder / "figures" / "tab01_figure.png").is_file()
    assert json.loads((folder / "results" / "tab01_settings.json").read_text())["figures"] == ["tab01_figure.png"]
    assert prov["pages"]["tab01_settings"]["attacks"] == 0 and prov["pages"]["tab01_settings"]["git_commit"]
    n_claims = prov["summary"]["claims"]
    assert n_claims > 40 and sum(prov["summary"]["verdicts"].values()) == n_claims
    checked = record.check_archive("record", root)
    names = [s.name for s in load_manifest()]
    assert checked["missing"] == [n for n in names if n not in ("tab01_settings", "replication_summary")]
    with pytest.raises(ValueError, match="are not archived"):
        record.check_archive("record", root, complete=True)
    restored = tmp_path / "restored"
    record.restore_book("record", root, restored)
    assert {p.stem for p in (restored / "notebooks").glob("*.ipynb")} == set(names)  # missing pages say so
    assert "Not yet in the book of record" in (restored / "notebooks" / "fig03_inversion_gallery.ipynb").read_text()


def test_check_archive_names_what_is_missing_or_inconsistent(tmp_path):
    results, book = _page_run(tmp_path)
    root = tmp_path / "record"
    record.ship_book("record", results, book, root=root)
    folder = record.archive_folder("record", root)
    with pytest.raises(ValueError, match="no book of record for profile 'paper'"):
        record.check_archive("paper", root)
    prov_path = folder / "provenance.json"
    prov = json.loads(prov_path.read_text())
    prov_path.write_text(json.dumps({**prov, "summary": {**prov["summary"], "claims": 3}}))
    with pytest.raises(ValueError, match="3 claims, the summary has"):
        record.check_archive("record", root)
    prov_path.write_text(json.dumps(prov))
    (folder / "figures" / "tab01_figure.png").unlink()
    with pytest.raises(ValueError, match="names figure tab01_figure.png"):
        record.check_archive("record", root)
    (folder / "notebooks" / "tab01_settings.ipynb").unlink()
    with pytest.raises(ValueError, match="notebooks/tab01_settings.ipynb is missing"):
        record.check_archive("record", root)


def test_ship_page_refuses_what_it_cannot_ship(tmp_path):
    results, book = _page_run(tmp_path)
    with pytest.raises(ValueError, match="unknown page 'tab99'"):
        record.ship_page("record", "tab99", results, book, root=tmp_path / "record")
    with pytest.raises(ValueError, match="rendered from the archived pages"):
        record.ship_page("record", "replication_summary", results, book, root=tmp_path / "record")
    with pytest.raises(ValueError, match="no results file .*--only fig03_inversion_gallery"):
        record.ship_page("record", "fig03_inversion_gallery", results, book, root=tmp_path / "record")
    with pytest.raises(ValueError, match="computed under profile 'record', not 'quick'"):
        (results / "quick").mkdir()
        (results / "quick" / "tab01_settings.json").write_text((results / "record" / "tab01_settings.json").read_text())
        record.ship_page("quick", "tab01_settings", results, book, root=tmp_path / "record")


def test_the_shipped_book_of_record_is_complete_in_form():
    """The archive in record/ (when shipped): every archived page has its results, figures,
    notebook and provenance, and the summary's claim count is the provenance's."""
    folder = record.archive_folder("record")
    if not (folder / "provenance.json").is_file():
        pytest.skip("no book of record shipped in this checkout")
    prov = record.check_archive("record")
    assert prov["pages"] and prov["summary"]["claims"] == len(
        json.loads((folder / "results" / "replication_summary.json").read_text())["claims"])
