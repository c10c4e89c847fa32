#!/usr/bin/env bash
# One-command setup on a fresh Debian machine with Python 3.11:
#   bash scripts/setup.sh
# Creates .venv (reused when present; skipped entirely when already complete for the current
# requirements), installs the pinned CPU torch stack, the data-only packages and the project.
# Environment: PYTHON (interpreter used to create .venv, default python3.11 or python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS

VENV=.venv
STAMP="$VENV/.wdlg-setup-stamp"
# The stamp records what was installed: rerun the installs when any of these files change.
want=$(cat requirements/*.txt pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

# 0. MathJax, served by the book itself: Jupyter Book 1.x loads it from a CDN otherwise, and
#    equations then stay raw TeX offline. From the npm registry; a few MB under book/_mathjax
#    (not book/_static: Jupyter Book would add every .js file there to every page).
MATHJAX_VERSION=3.2.2
if [[ ! -f book/_mathjax/mathjax/tex-chtml.js ]]; then
    if command -v npm >/dev/null; then
        tmp=$(mktemp -d)
        npm install --no-save --no-audit --no-fund --silent --prefix "$tmp" "mathjax@$MATHJAX_VERSION"
        es5="$tmp/node_modules/mathjax/es5"
        mkdir -p book/_mathjax/mathjax
        cp -r "$es5/tex-chtml.js" "$es5/input" "$es5/output" "$es5/ui" "$es5/a11y" book/_mathjax/mathjax/
        rm -rf "$tmp"
        echo "setup: MathJax $MATHJAX_VERSION copied to book/_mathjax/mathjax"
    else
        echo "setup: npm not found; the book will load MathJax from a CDN (equations need internet)" >&2
    fi
fi

# 0b. Chromium for the browser check of the built book (scripts/browser_check.py): Debian's
#     package, driven by playwright-python; never `playwright install` (no browser download).
if [[ ! -x /usr/bin/chromium ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's chromium (for make check-book)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
            || echo "setup: could not install chromium; the browser check will fail (sudo apt-get install chromium)" >&2
    else
        echo "setup: /usr/bin/chromium missing; the browser check needs it: sudo apt-get install chromium" >&2
    fi
fi

# 0c. Real Fashion-MNIST beyond the 20 bundled test images: Debian's dataset-fashion-mnist
#     (10,000 test and 60,000 training images as IDX files, read by wdlg_core.data; about
#     30 MB). Its first 20 test images are the bundled ones, so the quick book is unchanged;
#     the book of record attacks 300. Optional: without it, Fashion-MNIST pages use 20 images.
if [[ ! -d /usr/share/datasets/fashion-mnist ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's dataset-fashion-mnist (real Fashion-MNIST images, offline)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dataset-fashion-mnist >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dataset-fashion-mnist >/dev/null; } \
            || echo "setup: could not install dataset-fashion-mnist; Fashion-MNIST pages use the 20 bundled images" >&2
    else
        echo "setup: Debian's dataset-fashion-mnist is not installed; Fashion-MNIST pages use the 20 bundled images (sudo apt-get install dataset-fashion-mnist)" >&2
    fi
fi

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "setup: $VENV is up to date ($((SECONDS - start)) s)"
    exit 0
fi

# 1. Virtual environment (reuse a working one, recreate a broken one).
if ! "$VENV/bin/python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
    echo "setup: creating $VENV with $PYTHON"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || {
        echo "setup: 'python -m venv' failed; on Debian: sudo apt-get install python3.11-venv" >&2
        exit 1
    }
fi
PIP=("$VENV/bin/python" -m pip)

# 2. Python packages. The constraints pin torch/torchvision to the CPU build (see CONTRIBUTING).
"${PIP[@]}" install --upgrade pip
"${PIP[@]}" install -r requirements/base.txt -c requirements/constraints.txt
"${PIP[@]}" install --no-deps -r requirements/nodeps.txt
"${PIP[@]}" install --no-deps -e .

echo "$want" > "$STAMP"
echo "setup: done in $((SECONDS - start)) s"
