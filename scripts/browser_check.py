"""Open the built book in a real headless browser and check what a reader would see.

For the introduction, every notebook page and the course pages of ``book/_build/html`` (at
1280x900) it asserts that
* every <img> loaded (``naturalWidth > 0``),
* no page shows a Python traceback,
* equations rendered (MathJax turned every ``.math`` element into ``mjx-container``),
* no table is wider than the text column unless it sits in a scroll container of its own
  (a reader would lose its right-hand columns, and so would a printout); folded sections
  (``<details>``) are opened first, so their tables are measured too (the page height and
  the first figure's offset are measured before, as the reader first sees the page),
* no parameter cell is shown (the notebook's ``parameters`` cell or papermill's injected one),
and it measures, for the reader (issue 18): the first figure's offset from the top of the
page, the tables wider than the column (outside / inside a scroll container), and the page
height. It saves a full-page screenshot of each page under ``--out`` and writes the
measurements to ``<out>/../browser_report.{json,md}``.

Uses Debian's Chromium (``apt-get install chromium``) through playwright-python with
``executable_path``; it never runs ``playwright install``. Jupyter Book 1.x's index.html is a
meta-refresh redirect, so the check starts from intro.html. Every page load has a time limit.

Usage::

    .venv/bin/pip install playwright==1.65.2      # the Python package only (no browser download)
    .venv/bin/python scripts/browser_check.py [--html book/_build/html] [--out artifacts/screenshots]

Exit status 0 when every page passes, 1 otherwise (the failures are listed).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
#: A book page (notebooks/) with a figure shows its first figure within this many px of the top
#: (answer first; the course's labs put exercises before their figures and are exempt).
FIRST_FIGURE_MAX_PX = 1200
#: The replication summary's verdict grid (its first figure) starts within this, and the page is shorter than
#: SUMMARY_MAX_HEIGHT_PX.
SUMMARY_FIGURE_MAX_PX, SUMMARY_MAX_HEIGHT_PX = 900, 8000
# Flags for a sandboxed, offline machine (no background network, no GPU, root user).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PAGE_STATE = """() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const top = el => el.getBoundingClientRect().top + window.scrollY;
  // as the reader first sees the page (folded sections closed): its height and its first figure
  const height = document.documentElement.scrollHeight;
  const figures = Array.from(article.querySelectorAll('img')).filter(i => i.naturalWidth > 32);
  const first_figure = figures.length ? Math.round(top(figures[0])) : null;
  const closed = Array.from(document.querySelectorAll('details')).filter(d => !d.open);
  closed.forEach(d => { d.open = true; });  // then every table is measured open
  const imgs = Array.from(document.images);
  const column = article.getBoundingClientRect();
  const scrolls = el => {  // a scroll container between the table and the column
    for (let a = el.parentElement; a && a !== article; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  const wide = Array.from(article.querySelectorAll('table')).filter(t => t.getBoundingClientRect().width > column.width + 1);
  const overflowing = wide.filter(t => !scrolls(t)).map(t => (t.querySelector('th') || t).innerText.slice(0, 40));
  const scrolling = wide.filter(t => scrolls(t)).length;
  closed.forEach(d => { d.open = false; });  // and folded again: the screenshot shows what the reader sees
  return {
    first_figure: first_figure,
    height: height,
    overflowing: overflowing,
    scrolling: scrolling,
    parameter_cells: document.querySelectorAll('.tag_parameters, .tag_injected-parameters').length,
    images: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    traceback: document.body.innerText.includes('Traceback (most recent call last)'),
    math: document.querySelectorAll('.math').length,
    rendered: document.querySelectorAll('mjx-container').length,
  };
}"""


def pages(html: Path) -> list[Path]:
    """intro.html, every executed notebook page and the Course part's pages."""
    found = [html / "intro.html"] + sorted((html / "notebooks").glob("*.html")) + sorted((html / "course").rglob("*.html"))
    return [p for p in found if p.exists()]


def check(html: Path, out: Path, timeout_ms: int = 30000) -> list[str]:
    """Check every page; return the list of problems (empty when all pass)."""
    from playwright.sync_api import sync_playwright

    problems, report = [], []
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(timeout_ms)
        for path in pages(html):
            page.goto(path.resolve().as_uri(), wait_until="load")
            if page.locator(".math").count():
                try:  # MathJax typesets asynchronously after load
                    page.wait_for_selector("mjx-container", timeout=timeout_ms)
                except Exception:  # noqa: BLE001 - reported below as unrendered math
                    pass
            state = page.evaluate(PAGE_STATE)
            page.screenshot(path=str(out / f"{path.stem}.png"), full_page=True)
            name = path.relative_to(html)
            if state["broken"]:
                problems.append(f"{name}: images did not load: {state['broken']}")
            if state["traceback"]:
                problems.append(f"{name}: shows a Python traceback")
            if state["math"] and state["rendered"] < state["math"]:
                problems.append(f"{name}: {state['math'] - state['rendered']} of {state['math']} equations not rendered")
            if state["overflowing"]:
                problems.append(f"{name}: {len(state['overflowing'])} table(s) wider than the text column outside a "
                                f"scroll container: {state['overflowing']}")
            if state["parameter_cells"]:
                problems.append(f"{name}: shows {state['parameter_cells']} parameter cell(s)")
            first = state["first_figure"]
            if str(name).startswith("notebooks/") and first is not None and first > FIRST_FIGURE_MAX_PX:
                problems.append(f"{name}: first figure {first} px from the top (answer first: at most "
                                f"{FIRST_FIGURE_MAX_PX} px)")
            if str(name) == "notebooks/replication_summary.html" and (
                    first is None or first > SUMMARY_FIGURE_MAX_PX or state["height"] > SUMMARY_MAX_HEIGHT_PX):
                problems.append(f"{name}: verdict grid at {first} px (at most {SUMMARY_FIGURE_MAX_PX}), page "
                                f"{state['height']} px (under {SUMMARY_MAX_HEIGHT_PX})")
            report.append({"page": str(name), "first_figure_px": state["first_figure"], "height_px": state["height"],
                           "overflowing_tables": len(state["overflowing"]), "scrolling_tables": state["scrolling"],
                           "parameter_cells": state["parameter_cells"], "images": state["images"]})
            print(f"{name}: {state['images']} images, {state['rendered']}/{state['math']} equations, first figure at "
                  f"{state['first_figure']} px, height {state['height']} px"
                  f"{'' if state['broken'] or state['traceback'] else ', ok'}")
        browser.close()
    write_report(report, out.parent / "browser_report")
    return problems


def write_report(rows: list[dict], stem: Path) -> None:
    """The measurements as JSON and as a markdown table (``stem.json``, ``stem.md``)."""
    import json

    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    cols = ["page", "first_figure_px", "height_px", "overflowing_tables", "scrolling_tables", "parameter_cells"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("-" if r[c] is None else str(r[c]) for c in cols) + " |" for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--html", default="book/_build/html", help="built book (default book/_build/html)")
    ap.add_argument("--out", default="artifacts/screenshots", help="screenshot folder")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per page load")
    args = ap.parse_args(argv)
    html = Path(args.html)
    if not (html / "intro.html").exists():
        print(f"no built book at {html}: run `make book` (or `.venv/bin/wdlg run --profile quick`) first")
        return 1
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
        return 1
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("playwright-python is missing: .venv/bin/pip install playwright==1.65.2 (never `playwright install`)")
        return 1
    problems = check(html, Path(args.out), int(args.timeout * 1000))
    for p in problems:
        print("FAIL", p)
    print(f"{len(pages(html))} pages checked, {len(problems)} problem(s); screenshots in {args.out}, "
          f"measurements in {Path(args.out).parent / 'browser_report.md'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
