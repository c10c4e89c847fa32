"""The throughput benchmark script runs end to end on a tiny case (it is not a timed test)."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "attack_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("attack_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_child_measures_reference_engine_and_floor(bench):
    out = bench.child_engine("28x28x1", "lbfgs", 3, 2, "cpu", reps=1, warmup=5)
    # the reference, the engine step and the floor were all timed; the history is full (3 pairs)
    assert out["reference_s"] > 0 and out["engine_s"] > 0 and out["floor_s"] > 0
    assert out["history"] == 3 and out["dim"] == 28 * 28 and out["path"] == "explicit"
    assert out["flops"] > 0 and out["peak_mb"] > 0
    assert 0 < out["speedup_min"] <= out["reference_s"] / out["engine_s"] <= out["speedup_max"]


def test_table_has_one_line_per_row(bench):
    row = {"shape": "28x28x1", "optimizer": "lbfgs", "N": 8, "reference_ms": 4.0, "engine_ms": 0.5,
           "speedup": 8.0, "speedup_range": "7.0-9.0", "floor_ms": 0.25, "engine_over_floor": 2.0,
           "two_loop_floor_ms": 0.05, "engine_over_floors": 0.5 / 0.3,
           "best_speedup": 4.0 / 0.3, "floor_gflops": 20.0, "matmul_gflops": 100.0, "peak_mb": 400.0}
    lines = bench.format_table([row, row]).splitlines()
    assert len(lines) == 4 and lines[0].count("|") == len(bench.HEADERS) + 1
    assert "| 8.0x | 7.0-9.0 |" in lines[2] and "| 13.3x |" in lines[2]
    assert "| 1.67 | 13.3x |" in lines[2]


def test_grouped_weight_gradient_flops_equal_the_convolution_flops(bench):
    """torch's own counter treats a grouped convolution's weight gradient as ungrouped; ours
    gives it the cost of the grouped convolution itself, as for an ungrouped one."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {torch.ops.aten.convolution_backward: bench._conv_backward_flops}
    for groups in (1, 8):
        x = torch.randn(2, 3 * groups, 16, 16)
        w = torch.randn(12 * groups, 3, 5, 5)
        y = F.conv2d(x, w, stride=2, padding=2, groups=groups)
        with FlopCounterMode(display=False) as forward:
            F.conv2d(x, w, stride=2, padding=2, groups=groups)
        with FlopCounterMode(display=False, custom_mapping=mapping) as weight_grad:
            torch.nn.grad.conv2d_weight(x, w.shape, y, stride=2, padding=2, groups=groups)
        assert weight_grad.get_total_flops() == forward.get_total_flops() == 2 * 2 * 8 * 8 * w.numel()
