"""One attack at a time: the package's one loop at N = 1 against the reference loop.

``wdlg_core.run_attack`` runs a single attack through the batched engine (a batch of one, on
the engine's single-attack path). Before version 0.5 it ran its own loop, the DLG-style
``torch.optim`` loop that now lives in ``tests/reference_attack.py`` as the tests' oracle.
This script times both on the same real image, end to end (shared gradient, every iteration,
the final metrics), alternating them within each repetition so that a change in the
machine's speed affects both alike, and prints the ratio engine / reference: the target is
at most 1.10 (a single attack no slower than 10% beyond the loop it replaced).

Usage::

    .venv/bin/python benchmarks/single_attack.py                  # ~2 min on a 2-core CPU
    .venv/bin/python benchmarks/single_attack.py --iterations 100 --reps 3

The table is printed and written to ``results/benchmarks/single_attack.{md,json}``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

CASES = [  # (dataset, method, options)
    ("mnist", "dlg", dict(optimizer="lbfgs", lr=1.0, line_search="armijo")),
    ("mnist", "wdlg", dict(optimizer="lbfgs", lr=1.0, line_search="armijo")),
    ("cifar10", "dlg", dict(optimizer="lbfgs", lr=1.0, line_search="armijo")),
    ("cifar10", "wdlg", dict(optimizer="lbfgs", lr=1.0, line_search="armijo")),
    ("cifar10", "wdlg", dict(optimizer="lbfgs", lr=1.0, line_search="armijo", estimator="dual")),
    ("cifar10", "idlg", dict(optimizer="lbfgs", lr=0.1)),
    ("cifar10", "dlg", dict(optimizer="adam", lr=0.1)),
    ("cifar10", "ig", dict()),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per case (median)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as `wdlg attack`)")
    ap.add_argument("--out", default="results/benchmarks/single_attack")
    args = ap.parse_args(argv)

    from reference_attack import reference_attack
    from wdlg_core import load_images, run_attack
    from wdlg_core.device import configure_threads
    from wdlg_core.provenance import provenance

    threads = configure_threads(args.threads)
    rows = []
    for ds, method, opts in CASES:
        images, labels = load_images(ds, 1)
        kw = dict(method=method, iterations=args.iterations, **opts)
        run_attack(images, labels, **kw), reference_attack(images, labels, **kw)  # warm-up
        ref_s, eng_s = [], []
        for _ in range(args.reps):
            t = time.perf_counter()
            ref = reference_attack(images, labels, **kw)
            ref_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            eng = run_attack(images, labels, **kw)
            eng_s.append(time.perf_counter() - t)
        row = {"dataset": ds, "method": method, "setting": ", ".join(f"{k} {v}" for k, v in opts.items()) or "defaults",
               "reference_s": statistics.median(ref_s), "engine_s": statistics.median(eng_s),
               "ratio": statistics.median(eng_s) / statistics.median(ref_s),
               "ratio_range": f"{min(e / r for e, r in zip(eng_s, ref_s)):.2f}-{max(e / r for e, r in zip(eng_s, ref_s)):.2f}",
               "reference_evals": ref.function_evals, "engine_evals": eng.function_evals,
               "reference_mse": ref.mse, "engine_mse": eng.mse}
        rows.append(row)
        print(_format(row), flush=True)
    table = "\n".join([HEADER, "|" + "---|" * len(HEADER.split("|")[1:-1])] + [_format(r) for r in rows])
    print(f"\n{args.iterations} iterations, {threads} torch thread(s), median of {args.reps}\n\n{table}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table + "\n")
    out.with_suffix(".json").write_text(json.dumps({"provenance": provenance("cpu"), "iterations": args.iterations,
                                                    "threads": threads, "rows": rows}, indent=1))
    return 0


HEADER = ("| dataset | method | setting | reference loop s | one loop (engine, N = 1) s | engine / reference "
          "| range over reps | evaluations ref / engine | MSE ref / engine |")


def _format(r):
    return (f"| {r['dataset']} | {r['method']} | {r['setting']} | {r['reference_s']:.3f} | {r['engine_s']:.3f} | "
            f"{r['ratio']:.2f} | {r['ratio_range']} | {r['reference_evals']} / {r['engine_evals']} | "
            f"{r['reference_mse']:.3g} / {r['engine_mse']:.3g} |")


if __name__ == "__main__":
    sys.exit(main())
