"""scripts/browser_check.py bites: a wide table outside a scroll container and a shown parameter
cell fail the check; the same table inside a scroll container is measured, not failed."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "browser_check.py"
spec = importlib.util.spec_from_file_location("browser_check", SCRIPT)
browser_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(browser_check)

PAGE = """<html><body><main><article class="bd-article" style="width:600px">
<div class="cell tag_parameters"><pre>profile = 'quick'</pre></div>
{body}
</article></main></body></html>"""
WIDE = '<table><tr><th>{name}</th><td style="min-width:900px">x</td></tr></table>'


def _ready():
    if not Path(browser_check.CHROMIUM).exists():
        return False
    return importlib.util.find_spec("playwright") is not None


@pytest.mark.skipif(not _ready(), reason="needs Debian's chromium and playwright-python (scripts/setup.sh)")
def test_overflowing_tables_and_parameter_cells_fail(tmp_path):
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "intro.html").write_text(PAGE.format(body=WIDE.format(name="lost") + '<div style="overflow-x:auto">'
                                                 + WIDE.format(name="scrolls") + "</div>"))
    (html / "notebooks" / "clean.html").write_text(
        PAGE.replace('<div class="cell tag_parameters"><pre>profile = \'quick\'</pre></div>', "")
        .format(body='<div style="overflow-x:auto">' + WIDE.format(name="scrolls") + "</div>"))
    problems = browser_check.check(html, tmp_path / "out" / "shots")
    assert len(problems) == 2 and all(p.startswith("intro.html") for p in problems)
    assert "['lost']" in problems[0] and "1 parameter cell" in problems[1]
    report = {r["page"]: r for r in json.loads((tmp_path / "out" / "browser_report.json").read_text())}
    assert report["intro.html"]["overflowing_tables"] == 1 and report["intro.html"]["scrolling_tables"] == 1
    assert report["notebooks/clean.html"] == {**report["notebooks/clean.html"], "overflowing_tables": 0,
                                               "scrolling_tables": 1, "parameter_cells": 0}
    assert report["intro.html"]["height_px"] >= 900


@pytest.mark.skipif(not _ready(), reason="needs Debian's chromium and playwright-python (scripts/setup.sh)")
def test_a_book_page_whose_first_figure_is_far_down_fails(tmp_path):
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    clean = PAGE.replace('<div class="cell tag_parameters"><pre>profile = \'quick\'</pre></div>', "")
    from PIL import Image

    Image.new("RGB", (64, 64), "navy").save(html / "notebooks" / "fig.png")  # a figure: wider than 32 px
    figure = '<img src="fig.png" width="64" height="64">'
    (html / "notebooks" / "late.html").write_text(clean.format(body='<div style="height:1500px"></div>' + figure))
    (html / "notebooks" / "early.html").write_text(clean.format(body=figure + '<div style="height:1500px"></div>'))
    problems = browser_check.check(html, tmp_path / "out" / "shots")
    assert len(problems) == 1 and problems[0].startswith("notebooks/late.html: first figure")
