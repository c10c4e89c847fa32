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
