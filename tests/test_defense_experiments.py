"""Noise-defence and defence trade-off experiments: summaries and statement checks on known
inputs, cached training, a tiny real run, and both notebooks committed clean (executed end to
end in the slow tests)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wdlg_core import metrics
from wdlg_core.experiments.defense_tradeoff import cached_training, dpsgd_sample_rate, run_tradeoff
from wdlg_core.experiments.noise_defense import (check_statements, leakage_level, leakage_null, run_sweep,
                                                 summarize_sweep)
from wdlg_core.store import ResultStore
from notebook_checks import assert_clean_and_parameterized, execute_notebook, glue_keys

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = {"fig11_14_noise_defense": REPO / "notebooks" / "fig11_14_noise_defense.ipynb",
             "defense_tradeoff": REPO / "notebooks" / "defense_tradeoff.ipynb"}


def _panel(ssims, successes=None):
    rows = []
    for sigma, values in ssims.items():
        for i, v in enumerate(values):
            rows.append({"dataset": "cifar100", "method": "wdlg", "sigma": float(sigma), "index": i, "ssim": v,
                         "mse": 0.1, "psnr": 10.0, "success": bool((successes or {}).get(sigma, False))})
    return pd.DataFrame(rows)


def test_statements_hold_and_fail_by_the_stated_rules():
    good = check_statements(_panel({0: [0.9, 0.8], 2: [0.4, 0.3], 4: [0.2, 0.25], 10: [0.01, 0.02]}, {0: True}), 0.15)
    assert list(good.sigma) == [0, 2, 4, 10] and list(good.verdict) == ["reference", "holds", "holds", "holds"]
    assert list(good.level) == ["full", "partial", "partial", "none"]
    bad = check_statements(_panel({0: [0.9], 2: [0.01], 4: [0.3], 10: [0.5]}, {0: True}), 0.15)
    assert list(bad.verdict) == ["reference", "does not hold", "does not hold", "does not hold"]
    silent = check_statements(_panel({0: [0.01], 2: [0.01], 4: [0.0], 10: [0.0]}), 0.15)
    assert set(silent.verdict[1:]) == {"inconclusive"}  # nothing to stop: cannot be tested
    # the undefended attack leaks only partially: "noise stops the leakage" cannot be tested either
    partial = check_statements(_panel({0: [0.9, 0.8], 2: [0.4, 0.3], 4: [0.2, 0.25], 10: [0.01, 0.02]}), 0.15)
    assert partial.level[0] == "partial" and set(partial.verdict[1:]) == {"inconclusive"}
    missing = check_statements(_panel({2: [0.4]}), 0.15)
    assert list(missing.verdict) == ["holds", "not run", "not run"]
    # no sigma = 2 run: the sigma = 4 statement is tested on "not full" alone
    no_two = check_statements(_panel({0: [0.9], 4: [0.5], 10: [0.01]}, {0: True}), 0.15)
    assert list(no_two.verdict) == ["reference", "not run", "holds", "holds"]
    assert leakage_level(0.01, 0.5, 0.15) == "full"


def test_leakage_null_of_known_images():
    rng = np.random.default_rng(0)
    imgs = rng.random((5, 1, 16, 16)).astype(np.float32)
    null = leakage_null(imgs)
    assert null["pairs"] == 10 and null["threshold"] >= null["mean"] and abs(null["mean"]) < 0.2
    # the threshold is the 95% quantile of the SSIM of every pair of distinct known images
    pairs = [float(metrics.ssim(imgs[i:i + 1], imgs[j:j + 1])[0]) for i in range(5) for j in range(i + 1, 5)]
    assert null["threshold"] == pytest.approx(np.quantile(pairs, 0.95), abs=1e-6)
    assert null["mean"] == pytest.approx(np.mean(pairs), abs=1e-6)
    with pytest.raises(ValueError, match="two images"):
        leakage_null(imgs[:1])


def test_summarize_sweep_known_values():
    t = pd.DataFrame({"method": ["wdlg"] * 4 + ["dlg"] * 2, "sigma": [0, 0, 1, 1, 0, 0],
                      "mse": [1e-4, 3e-4, 0.3, 0.4, 0.2, 0.2], "psnr": [40, np.inf, 5, 4, 7, 7],
                      "ssim": [0.9, 1.0, 0.0, 0.1, 0.2, 0.2], "success": [True, True, False, False, False, False]})
    s = summarize_sweep(t).set_index(["method", "sigma"])
    assert list(s.index.get_level_values(0)) == ["dlg", "wdlg", "wdlg"]
    assert s.loc[("wdlg", 0.0), "psnr"] == pytest.approx(70.0)  # inf capped at 100 dB
    assert s.loc[("wdlg", 0.0), "success_rate"] == 1.0 and s.loc[("wdlg", 1.0), "successes"] == 0
    assert s.loc[("wdlg", 1.0), "success_high"] == pytest.approx(0.658, abs=1e-3)


def test_sweep_tiny_real_case_shares_the_undefended_attack(tmp_path):
    from wdlg_core.experiments.success import run_success

    store = ResultStore(tmp_path, profile="quick")
    run_success("quick", datasets=["mnist"], methods=["wdlg"], n_images=1, iterations=3, store=store, progress=False)
    assert (store.computed, store.loaded) == (1, 0)
    table, src = run_sweep("quick", dataset="mnist", sigmas=(0, 10), methods=("wdlg",), n_images=1, iterations=3,
                           store=store, progress=False)
    # sigma = 0 is the undefended attack Table 2 already ran: loaded, not attacked again
    assert list(table.sigma) == [0.0, 10.0] and (store.computed, store.loaded) == (2, 1) and src["count"] >= 1
    with pytest.raises(ValueError, match="sigmas"):
        run_sweep("quick", sigmas=(-1,), store=store, progress=False)


def test_tradeoff_tiny_real_case_and_cache(tmp_path):
    store = ResultStore(tmp_path, profile="quick")
    settings = [("none", None), ("z=1.1, C=1", {"name": "dpsgd", "clip": 1.0, "noise_multiplier": 1.1})]
    summary, attacks = run_tradeoff("quick", settings=settings, n_images=1, iterations=3, epochs=1, store=store,
                                    progress=False)
    assert list(summary.setting) == ["none", "z=1.1, C=1"] and len(attacks) == 2
    assert np.isnan(summary.train_epsilon[0]) and summary.train_epsilon[1] > 0 and summary.release_epsilon[1] > 0
    assert 0 <= summary.accuracy[0] <= 1 and not summary.cached.any()
    # opacus samples at 1 / len(loader): 4000 digits in batches of 64 are 63 batches, not 4000 / 64
    assert dpsgd_sample_rate(64) == pytest.approx(1 / 63) and dpsgd_sample_rate(4000) == 1.0
    assert summary.sample_rate[1] == pytest.approx(1 / 63)
    again = cached_training(store, None, epochs=1, batch_size=64, lr=0.1)
    assert again["cached"] and again["accuracy"] == summary.accuracy[0]


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_without_outputs_and_parameters_first(name):
    assert_clean_and_parameterized(NOTEBOOKS[name], ("profile", "n_images", "iterations", "device", "data_root",
                                                     "results_root"))


@pytest.mark.slow
@pytest.mark.parametrize("name, params, check", [
    ("fig11_14_noise_defense", dict(iterations=3, sweep_sigmas=[0, 10], sweep_images=1),
     lambda s: [r["sigma"] for r in s["statements"]] == [0, 2, 4, 10] and len(s["sweep_summary"]) == 6),
    ("defense_tradeoff", dict(iterations=3, n_images=1, epochs=1),
     lambda s: len(s["settings"]) == 7 and any(r["train_epsilon"] for r in s["settings"])),
])
def test_notebook_executes(name, params, check, tmp_path, monkeypatch):
    nb = execute_notebook(NOTEBOOKS[name], tmp_path, monkeypatch, profile="quick", device="cpu",
                          results_root=str(tmp_path / "results"), **params)
    summary = json.loads((tmp_path / "results" / "quick" / f"{name}.json").read_text())
    assert check(summary)
    assert (tmp_path / "results" / "quick" / f"{name}.png").exists()
    used, glued = glue_keys(nb)
    assert used and used <= glued, sorted(used - glued)
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("bad", [0, -2, 2.5])
def test_zero_images_is_an_error_not_the_default(bad):
    from wdlg_core.experiments import count_or_default
    from wdlg_core.experiments.noise_defense import run_sweep

    assert count_or_default(None, 7, "n_images") == 7 and count_or_default(3, 7, "n_images") == 3
    with pytest.raises(ValueError, match="n_images must be a whole number >= 1"):
        count_or_default(bad, 7, "n_images")
    with pytest.raises(ValueError, match="n_images must be a whole number >= 1"):
        run_sweep("quick", n_images=bad, progress=False)


def test_an_empty_sigma_list_is_rejected():
    from wdlg_core.experiments.noise_defense import run_sweep

    with pytest.raises(ValueError, match="one or more values"):
        run_sweep("quick", sigmas=[], progress=False)
