"""Open the built book in a real headless browser and check what a reader would see.

For the introduction, every notebook page and the course pages of ``book/_build/html`` it asserts that
* every <img> loaded (``naturalWidth > 0``),
* no page shows a Python traceback,
* equations rendered (MathJax turned every ``.math`` element into ``mjx-container``),
and saves a full-page screenshot of each page under ``--out``.

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
# Flags for a sandboxed, offline machine (no background network, no GPU, root user).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PAGE_STATE = """() => {
  const imgs = Array.from(document.images);
  return {
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

    problems = []
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
            print(f"{name}: {state['images']} images, {state['rendered']}/{state['math']} equations"
                  f"{'' if state['broken'] or state['traceback'] else ', ok'}")
        browser.close()
    return problems


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
    print(f"{len(pages(html))} pages checked, {len(problems)} problem(s); screenshots in {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
