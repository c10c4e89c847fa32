"""Throughput of the batched attack engine against the one-at-a-time reference.

For LeNet on 28x28x1 (MNIST) and 32x32x3 (CIFAR-10) inputs, Adam and L-BFGS, and N attacks
at once, it measures, per attack and iteration (one loss evaluation):

* reference: the DLG-style loop, ``torch.optim`` on one attack, attacks one after the other
  (``invert_gradient`` of ``tests/reference_attack.py``, the tests' oracle); its cost per attack does not depend on N, but it is
  timed again next to each N (see below);
* engine: one step of ``wdlg_core.engine.BatchedAttack`` (objective + batched optimiser +
  records), divided by N, after a warm-up that fills the L-BFGS history (``lbfgs``: torch's
  default of m = 100 pairs; ``lbfgs-m10``: m = 10);
* floor: one batched forward + per-attack backward + double backward of the same N (the
  engine's loss-and-gradient evaluation alone, no optimiser), divided by N;
* two-loop floor (L-BFGS only): the time the two-loop recursion needs just to read the kept
  curvature pairs from memory once (2 * m * D numbers per attack), at the read bandwidth of
  this machine measured in the same run (a plain sum over a 512 MiB tensor). Once the N
  histories outgrow the caches (N = 128, D = 3072, m = 100: 315 MB), no recursion can run
  faster than this. The CPU engine's compiled recursion (``wdlg_core.two_loop``) reads them
  from memory about once; the eager one (``two_loop="torch"``, used on a GPU) twice;

plus the speed-up reference / engine (the ratio of the medians, and the smallest and largest
ratio within one repetition), engine / floor, engine / (floor + two-loop floor) (for L-BFGS
with a full history the evaluation floor alone is not the limit: the history's memory
traffic adds to it), the best speed-up the floors allow (reference / (floor + two-loop
floor)), the FLOP rate the floor achieves (FLOPs of the executed ops counted by
``torch.utils.flop_counter``, with a convolution-backward formula that knows grouped
convolutions) next to the machine's dense float32 matmul rate measured in the same run, and
the engine's peak memory (peak RSS of its process on the CPU, ``torch.cuda.max_memory_allocated``
on a GPU).

Every time is the median of ``--reps`` repetitions. Each N runs in its own process, which
times the reference, one engine step and the floor in turn within every repetition, so a
change in the machine's speed during the run (this matters on a shared virtual machine)
affects both sides of a speed-up alike. Both sides are timed in the same regime: the engine
after a warm-up that fills its L-BFGS history (``--warmup`` steps, at most m + 5), the
reference on 30 iterations after the same number of warm-up iterations (its time per
iteration grows with the pairs it keeps too), timed from step to step within one run.

Usage::

    .venv/bin/python benchmarks/attack_throughput.py                 # full table (~6 min on a 2-core CPU)
    .venv/bin/python benchmarks/attack_throughput.py --sizes 1 8 --warmup 5 --reps 3   # smoke
    .venv/bin/python benchmarks/attack_throughput.py --device cuda --sizes 1 8 32 128 512

The table is printed and written to ``results/benchmarks/attack_throughput.{md,json}``.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHAPES = {"28x28x1": ("mnist", (1, 28, 28)), "32x32x3": ("cifar10", (3, 32, 32))}


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device, reps):
    times = []
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _images(shape_name, n):
    from wdlg_core.data import load_images

    dataset, _ = SHAPES[shape_name]
    images, labels = load_images(dataset, 20)  # bundled real images, cycled
    idx = [i % 20 for i in range(n)]
    return images[idx], labels[idx]


def reference_timer(shape_name, optimizer, history, device, warmup, timed=30):
    """One repetition of the one-attack reference: a function returning seconds per iteration.

    The reference runs warmup + timed iterations; the time from the start of iteration
    warmup + 1 to the start of the last one, over the iterations in between, is its time per
    iteration (the whole loop: optimiser step, loss evaluation, records), with as many
    curvature pairs kept as in the engine's timed steps. The start of each iteration is taken
    from a timestamp recorded when ``torch.optim``'s ``step`` is called.
    """
    from unittest import mock

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from reference_attack import invert_gradient
    from wdlg_core.config import AttackConfig
    from wdlg_core.gradients import shared_gradient
    from wdlg_core.models import build_model

    images, labels = _images(shape_name, 1)
    images, labels = images.to(device), labels.to(device)
    model = build_model("lenet", SHAPES[shape_name][1], 10, seed=0).to(device)
    grads = shared_gradient(model, images, labels)
    cls = torch.optim.LBFGS if optimizer == "lbfgs" else torch.optim.Adam
    cfg = AttackConfig(method="idlg", optimizer=optimizer, lr=0.1, iterations=warmup + timed + 1,
                       history_size=history)
    original_step = cls.step

    def run():
        stamps = []

        def step(opt, *args, **kwargs):
            _sync(device)
            stamps.append(time.perf_counter())
            return original_step(opt, *args, **kwargs)

        with mock.patch.object(cls, "step", step):
            invert_gradient(model, grads, cfg, tuple(images.shape), images, labels)
        if len(stamps) != cfg.iterations:
            raise RuntimeError(f"the reference stopped after {len(stamps)} of {cfg.iterations} iterations")
        return (stamps[-1] - stamps[warmup]) / (len(stamps) - 1 - warmup)

    run()  # warm-up
    return run


def _peak_mb(device):
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of ``aten.convolution_backward``: each of the input and weight gradients costs
    what the convolution costs, 2 * batch * (spatial size of its smaller side) * prod(weight
    shape), where the weight shape already holds only a group's input channels.

    torch's own formula treats the weight gradient of a *grouped* convolution as ungrouped,
    which overcounts the per-attack weight gradients (groups = N) N times.
    """
    from math import prod

    spatial = (x_shape if transposed else grad_out_shape)[2:]
    per_output = 2 * x_shape[0] * prod(spatial) * prod(w_shape)
    return per_output * sum(bool(m) for m in output_mask[:2])


def child_engine(shape_name, optimizer, history, n, device, reps, warmup):
    """Seconds per attack-iteration of the reference, the engine and the floor; FLOPs per evaluation.

    The three are timed in turn within each repetition (reference, engine step, floor), so a
    change in the machine's speed during the run affects both sides of the speed-up alike.
    The peak memory is the engine's, read before the reference first runs.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from wdlg_core.config import AttackConfig
    from wdlg_core.engine import BatchedAttack, constant_weights
    from wdlg_core.models import build_model

    images, labels = _images(shape_name, n)
    model = build_model("lenet", SHAPES[shape_name][1], 10, seed=0).to(device)
    configs = [AttackConfig(method="idlg", optimizer=optimizer, lr=0.1, iterations=10 ** 6, seed=i,
                            record_every=1, history_size=history) for i in range(n)]
    with constant_weights(model):
        attack = BatchedAttack(model, images[:, None], labels[:, None], configs)
        for _ in range(warmup):  # fill the L-BFGS history (the cost grows until m pairs are kept)
            attack.step()
        _timed(attack.step, device, 1)
        _timed(lambda: attack.closure(attack.z), device, 1)
        peak = _peak_mb(device)
        reference = reference_timer(shape_name, optimizer, history, device, warmup)
        ref, step, floor = [], [], []
        for _ in range(reps):
            ref.append(reference())
            step.append(_timed(attack.step, device, 1))
            floor.append(_timed(lambda: attack.closure(attack.z), device, 1))
        grouped_aware = {torch.ops.aten.convolution_backward: _conv_backward_flops}
        with FlopCounterMode(display=False, custom_mapping=grouped_aware) as counter:
            attack.closure(attack.z)
        flops = counter.get_total_flops()
        history = int(attack.optimizer.history_len.max()) if hasattr(attack.optimizer, "history_len") else 0
    med = statistics.median
    ratios = [r / (e / n) for r, e in zip(ref, step)]  # speed-up within each repetition
    return {"reference_s": med(ref), "engine_s": med(step) / n, "floor_s": med(floor) / n, "flops": flops,
            "history": history, "dim": attack.z[0].numel(), "path": attack.objective.path, "peak_mb": peak,
            "speedup_min": min(ratios), "speedup_max": max(ratios)}


def child_main(spec):
    import torch

    from wdlg_core.experiments import configure_threads

    configure_threads(spec.get("threads"))
    if spec["device"].startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    if spec["kind"] == "bandwidth":  # in a child too, so no other measurement's peak memory includes it
        out = {"read_gbps": stream_gbps(spec["device"], spec["reps"])}
    else:
        out = child_engine(spec["shape"], spec["optimizer"], spec["history"], spec["n"], spec["device"],
                           spec["reps"], spec["warmup"])
    print("RESULT " + json.dumps(out))


def run_child(spec) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"measurement {spec} failed:\n{proc.stderr[-3000:]}")


def stream_gbps(device, reps, mib=512):
    """Memory read bandwidth of this machine (GB/s): one sum over a ``mib`` MiB float32 tensor."""
    import torch

    a = torch.ones(mib * 2 ** 18, device=device)
    a.sum()
    return a.numel() * 4 / _timed(a.sum, device, reps) / 1e9


def matmul_gflops(device, reps, size=2048):
    """Dense float32 matmul rate of this machine (GFLOP/s), the physical limit of the table."""
    import torch

    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)
    t = _timed(lambda: torch.mm(a, b), device, reps)
    return 2 * size ** 3 / t / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 128, 512])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--optimizers", nargs="+", default=["adam", "lbfgs", "lbfgs-m10"],
                    choices=["adam", "lbfgs", "lbfgs-m10"],
                    help="lbfgs keeps torch's default history of 100 pairs, lbfgs-m10 keeps 10")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per figure (median)")
    ap.add_argument("--warmup", type=int, default=105, help="engine steps before timing (fills L-BFGS history)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default="results/benchmarks/attack_throughput")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))

    import torch

    from wdlg_core.experiments import check_device, configure_threads
    from wdlg_core.provenance import provenance

    check_device(args.device)
    threads = configure_threads(args.threads)
    mm = matmul_gflops(args.device, args.reps)
    bw = run_child({"kind": "bandwidth", "device": args.device, "reps": args.reps,
                    "threads": args.threads})["read_gbps"]
    print(f"device {args.device}, torch {torch.__version__}, {threads} threads; "
          f"dense float32 matmul: {mm:.1f} GFLOP/s; memory read: {bw:.1f} GB/s", flush=True)
    rows = []
    for shape in args.shapes:
        for opt in args.optimizers:
            name, _, m = opt.partition("-m")
            base = dict(shape=shape, optimizer=name, history=int(m or 100), device=args.device, reps=args.reps,
                        threads=args.threads)
            warmup = min(args.warmup, base["history"] + 5) if name == "lbfgs" else 5
            for n in args.sizes:
                # the reference is timed in the same process, in turn with the engine
                eng = run_child({**base, "kind": "engine", "n": n, "warmup": warmup})
                # the recursion reads every kept pair (s, y) at least once: 2 * L * D float32 per attack
                two_loop_s = 2 * eng["history"] * eng["dim"] * 4 / (bw * 1e9)
                row = {"shape": shape, "optimizer": opt, "N": n,
                       "reference_ms": 1e3 * eng["reference_s"], "engine_ms": 1e3 * eng["engine_s"],
                       "speedup": eng["reference_s"] / eng["engine_s"], "floor_ms": 1e3 * eng["floor_s"],
                       "speedup_range": f"{eng['speedup_min']:.1f}-{eng['speedup_max']:.1f}",
                       "engine_over_floor": eng["engine_s"] / eng["floor_s"],
                       "two_loop_floor_ms": 1e3 * two_loop_s,
                       "engine_over_floors": eng["engine_s"] / (eng["floor_s"] + two_loop_s),
                       "best_speedup": eng["reference_s"] / (eng["floor_s"] + two_loop_s), "read_gbps": bw,
                       "floor_gflops": eng["flops"] / (eng["floor_s"] * n) / 1e9,
                       "matmul_gflops": mm, "peak_mb": eng["peak_mb"],
                       "lbfgs_history": eng["history"], "path": eng["path"]}
                rows.append(row)
                print(_format_row(row), flush=True)
    table = format_table(rows)
    print("\n" + table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table + "\n")
    out.with_suffix(".json").write_text(json.dumps({"provenance": provenance(args.device), "threads": threads,
                                                    "matmul_gflops": mm, "read_gbps": bw, "rows": rows},
                                                   indent=1))
    print(f"\nwritten: {out.with_suffix('.md')}, {out.with_suffix('.json')}")


COLUMNS = [("shape", "{}"), ("optimizer", "{}"), ("N", "{}"), ("reference_ms", "{:.2f}"), ("engine_ms", "{:.3f}"),
           ("speedup", "{:.1f}x"), ("speedup_range", "{}"), ("floor_ms", "{:.3f}"), ("engine_over_floor", "{:.2f}"),
           ("two_loop_floor_ms", "{:.3f}"), ("engine_over_floors", "{:.2f}"), ("best_speedup", "{:.1f}x"),
           ("floor_gflops", "{:.1f}"), ("matmul_gflops", "{:.1f}"), ("peak_mb", "{:.0f}")]
HEADERS = ["input", "optimizer", "N", "reference ms/attack-it", "engine ms/attack-it", "speed-up",
           "speed-up range over reps",
           "floor ms/attack-it", "engine / floor", "two-loop floor ms/attack-it", "engine / (floor + two-loop floor)",
           "best speed-up the floors allow",
           "floor GFLOP/s", "matmul GFLOP/s", "peak MB"]


def _format_row(row):
    return "| " + " | ".join(fmt.format(row[k]) for k, fmt in COLUMNS) + " |"


def format_table(rows):
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    return "\n".join(lines + [_format_row(r) for r in rows])


if __name__ == "__main__":
    sys.exit(main())
