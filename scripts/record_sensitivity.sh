#!/usr/bin/env bash
# The sensitivity page's book of record: every reading of W1 (and DLG) on 32 MNIST digits and
# 20 CIFAR-10 images, LeNet, L-BFGS with Armijo, at ITERATIONS L-BFGS updates (default 2240;
# the paper's 448 and 5 x 448), then shipped to record/sensitivity_<ITERATIONS>/.
#   bash scripts/record_sensitivity.sh [ITERATIONS] [RESULTS_ROOT]
# Attacks are stored under RESULTS_ROOT (default ../wdlg-record-results, outside the work tree),
# so an interrupted run resumes; on these 2-core CPUs: about 5 minutes at 448 updates, about 30 at 2240.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ITERATIONS=${1:-2240}
RESULTS=$(realpath -m "${2:-../wdlg-record-results}")
OUT="$RESULTS/executed"
mkdir -p "$OUT"
WDLG_RESULTS_ROOT="$RESULTS" .venv/bin/papermill notebooks/sensitivity.ipynb "$OUT/sensitivity_$ITERATIONS.ipynb" \
    --cwd notebooks -p profile paper -p device cpu -p iterations "$ITERATIONS" -p results_root "$RESULTS" \
    -y 'n_images: {mnist: 32, cifar10: 20}' -y 'settings: [dirac, sorted, dual]'
.venv/bin/wdlg record ship --from "$RESULTS/paper" --page sensitivity --run "sensitivity_$ITERATIONS"
