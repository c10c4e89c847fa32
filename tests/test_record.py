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
