"""What converged attacks cost: long L-BFGS + Armijo runs with and without stopping them.

An attack that has converged used to stay in its batch: every step evaluated it again, and
its line search, unable to find a point that lowers the loss at the rounding floor, tried
``max_ls`` (10) trial points every step, each a batched evaluation of the whole batch. Since
0.4.0 an attack that meets one of torch's termination tests stops for good and leaves the
evaluations (``BatchedLBFGS(stop_converged=True, row_closure=True)``, what the engine uses;
see ``wdlg_core.optim``). This script runs the same attacks both ways and prints a table:
wall time, batched closure calls, loss evaluations per attack, successes and final MSE (the
two ways give the same reconstructions up to the stopped attacks' remaining progress, which
is below the termination tests).

Usage::

    .venv/bin/python benchmarks/converged_attacks.py            # 16 MNIST digits, DLG, 448/2240/8960 updates
    .venv/bin/python benchmarks/converged_attacks.py --updates 448 2240 --method wdlg

The "before" runs of 8,960 updates take several minutes on a 2-core CPU (``--skip-before``
leaves them out above ``--before-max`` updates).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wdlg_core.config import AttackConfig
from wdlg_core.data import load_images
from wdlg_core.engine import BatchedAttack, constant_weights
from wdlg_core.models import build_model
from wdlg_core.optim import BatchedLBFGS


def run(n: int, updates: int, method: str, dataset: str, stop: bool) -> dict:
    """N attacks of ``updates`` L-BFGS + Armijo steps; stop=False restores the old behaviour."""
    images, labels = load_images(dataset, n)
    model = build_model("lenet", tuple(images.shape[1:]), 10, seed=0)
    configs = [AttackConfig(method=method, optimizer="lbfgs", lr=1.0, line_search="armijo", iterations=updates,
                            seed=s) for s in range(n)]
    with constant_weights(model):
        attack = BatchedAttack(model, images[:, None], labels[:, None], configs)
        attack.optimizer = BatchedLBFGS(attack.z, lr=1.0, line_search="armijo", row_closure=stop,
                                        stop_converged=stop)
        start = time.perf_counter()
        for _ in range(updates):
            attack.step()
        wall = time.perf_counter() - start
        results = attack.results()
    mse = np.array([r.mse for r in results])
    return {"updates": updates, "stop converged": "yes" if stop else "no (before)", "wall s": round(wall, 1),
            "closure calls": attack.optimizer.n_closure_calls,
            "evals / attack": float(attack.optimizer.func_evals.double().mean()),
            "converged": int(attack.optimizer.converged.sum()), "successes": int(sum(r.success for r in results)),
            "median MSE": float(np.median(mse))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16, help="attacks in the batch (default 16)")
    ap.add_argument("--updates", type=int, nargs="+", default=[448, 2240, 8960])
    ap.add_argument("--method", default="dlg", choices=["dlg", "idlg", "wdlg"])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-before", action="store_true", help="leave out the old behaviour above --before-max")
    ap.add_argument("--before-max", type=int, default=2240)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import pandas as pd

    rows = []
    for u in args.updates:
        for stop in (False, True):
            if not stop and args.skip_before and u > args.before_max:
                continue
            rows.append(run(args.n, u, args.method, args.dataset, stop))
            print(rows[-1], flush=True)
    print(f"\n{args.n} {args.dataset} attacks, {args.method}, LeNet, L-BFGS + Armijo, {args.threads} thread(s), "
          f"torch {torch.__version__}\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
