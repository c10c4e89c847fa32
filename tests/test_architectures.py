"""Architecture study (seed 002): the *_dlg model variants, the batched engine on them, the
study's settings and claim verdicts on known inputs, a tiny real run, and the notebook."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from wdlg_core.experiments.architectures import (DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, MISSING, PARTLY,
                                                 SEED_MAX_ITER, SEED_STEPS, iterations_to_fraction, mse_at,
                                                 number_text, resize_images, run_architectures, seed_claims,
                                                 study_settings, summarize_architectures)
from wdlg_core.gradients import parameter_gradient
from wdlg_core.matching import vmap_gradients
from wdlg_core.models import build_model
from wdlg_core.store import ResultStore
from notebook_checks import assert_clean_and_parameterized, execute_notebook, glue_keys

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "architectures.ipynb"


def test_seed002_variant_normalises_and_uses_per_batch_batch_norm():
    torch.manual_seed(0)
    m = build_model("resnet18_dlg", (3, 48, 48), 10)
    assert [k for k, _ in m.named_buffers()] == ["mean", "std"]  # no running statistics anywhere
    x = torch.rand(1, 3, 48, 48)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(m(x), m.net((x - mean) / std))
    # per-batch statistics: the same image gives other logits in another batch; eval mode all along
    assert not torch.allclose(m(x), m(torch.cat([x, torch.rand(1, 3, 48, 48)]))[:1], atol=1e-4)
    assert not m.training and m.loss_kind == "cross_entropy"


def test_seed002_variant_clear_errors():
    with pytest.raises(ValueError, match=r"cannot take inputs of shape \(3, 32, 32\)"):
        build_model("resnet18_dlg", (3, 32, 32), 10)  # last feature map 1x1: per-batch BN undefined
    with pytest.raises(ValueError, match="3 ImageNet channels"):
        build_model("resnet18_dlg", (1, 64, 64), 10)
    with pytest.raises(ValueError, match="resnet18_dlg"):
        build_model("resnet19_dlg", (3, 64, 64), 10)


def test_vmap_path_gives_each_attack_its_own_batch_norm_statistics():
    m = build_model("resnet18_dlg", (3, 48, 48), 10).double()
    for p in m.parameters():
        p.requires_grad_(False)
    x = torch.rand(2, 1, 3, 48, 48, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.tensor([[3], [7]])
    batched = vmap_gradients(m, x, y, "cross_entropy")
    for i in range(2):
        for p in m.parameters():
            p.requires_grad_(True)
        alone = parameter_gradient(m, x[i], y[i])
        for p in m.parameters():
            p.requires_grad_(False)
        assert all(torch.allclose(b[i], a, rtol=1e-8, atol=1e-12) for b, a in zip(batched, alone))


def test_study_settings_reductions_and_errors():
    paper = study_settings("paper")
    assert paper.reductions == () and set(paper.iterations.values()) == {SEED_STEPS * SEED_MAX_ITER}
    assert paper.sizes == {"lenet": 32, "resnet18": 224, "densenet121": 224, "inception_v3": 299}
    q = study_settings("quick", archs=["lenet", "resnet18"], methods="idlg", iterations={"resnet18": 7})
    assert list(q.sizes) == ["lenet", "resnet18"] and q.iterations["resnet18"] == 7
    assert q.methods == {"lenet": ("idlg",), "resnet18": ("idlg",)}
    assert any("64 px instead of the seed's 224 px" in r for r in q.reductions)
    assert any("no DLG run" in r for r in q.reductions)
    with pytest.raises(ValueError, match="lenet, resnet18, densenet121, inception_v3"):
        study_settings("quick", archs=["vgg"])
    with pytest.raises(ValueError, match="dlg"):
        study_settings("quick", methods=["rgap"])


def test_iterations_to_fraction_and_mse_at():
    assert iterations_to_fraction([0, 1, 2, 3, 4], [1.0, 0.5, 0.2, 0.11, 0.1]) == 3  # level 1 - 0.9 * 0.9 = 0.19
    assert math.isnan(iterations_to_fraction([0, 1], [0.1, 0.2]))  # no decrease
    curves = pd.DataFrame({"arch": "lenet", "method": "dlg", "index": [0, 0, 0, 1, 1, 1],
                           "iteration": [0, 5, 10, 0, 5, 10], "mse": [0.2, 0.1, 0.05, 0.2, 0.3, 0.01]})
    assert mse_at(curves, "lenet", "dlg", 7) == pytest.approx(0.2)  # (0.1 + 0.3) / 2, at iteration 5
    assert math.isnan(mse_at(curves, "resnet18", "dlg", 7))


def _synthetic(final, iterations=6000, to90=None, flat=0.03):
    """Table and curves with DLG curves from 0.2 down to ``final[arch]``."""
    rows, curves = [], []
    for a, f in final.items():
        its = np.arange(0, iterations + 1, iterations // 10)
        m = np.linspace(0.2, f, len(its))
        curves.append(pd.DataFrame({"arch": a, "method": "dlg", "index": 0, "iteration": its, "mse": m}))
        rows.append({"arch": a, "method": "dlg", "index": 0, "iterations": iterations, "size": 32, "params": 1,
                     "mse": f, "first_mse": 0.2, "flat_mse": flat, "psnr": 0.0, "ssim": 0.0, "label_accuracy": 1.0,
                     "time_per_iteration": 1.0, "time_per_eval": 1.0, "diverged": False,
                     "iterations_to_90": (to90 or {}).get(a, iterations_to_fraction(its, m))})
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def test_seed_claims_verdicts_on_known_numbers():
    t, c = _synthetic({"lenet": 1e-3, "resnet18": 2e-2, "densenet121": 3e-2, "inception_v3": 0.1},
                      to90={"resnet18": 5000, "densenet121": 1000})
    v = seed_claims(t, c).set_index("claim")["verdict"]
    assert v["lenet_order_smaller"] == HOLDS and v["densenet_like_resnet"] == HOLDS
    assert v["densenet_faster"] == HOLDS and v["inception_fails"] == HOLDS
    assert len(summarize_architectures(t)) == 4

    t, c = _synthetic({"lenet": 1e-2, "resnet18": 2e-2, "densenet121": 5e-3, "inception_v3": 1e-3},
                      to90={"resnet18": 1000, "densenet121": 5000})
    v = seed_claims(t, c).set_index("claim")["verdict"]
    assert v["lenet_order_smaller"] == PARTLY          # ratio 2: lower, but not an order of magnitude
    assert v["densenet_like_resnet"] == DOES_NOT_HOLD  # DenseNet below LeNet
    assert v["densenet_faster"] == DOES_NOT_HOLD and v["inception_fails"] == DOES_NOT_HOLD

    t, c = _synthetic({"lenet": 0.195, "inception_v3": 0.199}, iterations=10)
    v = seed_claims(t, c).set_index("claim")["verdict"]
    assert (v == INCONCLUSIVE).all()  # ResNet/DenseNet not run; Inception failing on 10 updates says nothing


def test_seed_claims_one_stuck_curve_makes_ordering_claims_inconclusive():
    # LeNet reaches 1e-3 but ResNet-18 barely moves (0.2 -> 0.19 > 0.9 * 0.2): the ratio alone
    # would say "holds", yet one curve stuck says nothing about the ordering
    t, c = _synthetic({"lenet": 1e-3, "resnet18": 0.19, "densenet121": 3e-2, "inception_v3": 0.1},
                      to90={"resnet18": 5000, "densenet121": 1000})
    v = seed_claims(t, c).set_index("claim")["verdict"]
    assert v["lenet_order_smaller"] == INCONCLUSIVE and v["densenet_like_resnet"] == INCONCLUSIVE
    assert v["densenet_faster"] == INCONCLUSIVE
    # only DenseNet-121 stuck: the claims that do not compare it keep their verdict
    t, c = _synthetic({"lenet": 1e-3, "resnet18": 2e-2, "densenet121": 0.195, "inception_v3": 0.1},
                      to90={"resnet18": 5000, "densenet121": 1000})
    v = seed_claims(t, c).set_index("claim")["verdict"]
    assert v["lenet_order_smaller"] == HOLDS
    assert v["densenet_like_resnet"] == INCONCLUSIVE and v["densenet_faster"] == INCONCLUSIVE


def test_seed_claims_missing_numbers_read_n_a_never_nan():
    assert number_text(math.nan) == MISSING == "n/a" and number_text(None) == "n/a"
    assert number_text(0.01234) == "0.0123" and number_text(40.0, "g") == "40"
    # ResNet-18's curve never decreases: its iterations to 90% are NaN (the table shows "-")
    t, c = _synthetic({"lenet": 1e-3, "resnet18": 2e-2, "densenet121": 3e-2, "inception_v3": 0.1},
                      to90={"resnet18": math.nan, "densenet121": 1000})
    claims = seed_claims(t, c).set_index("claim")
    text = claims.loc["densenet_faster", "ours"]
    assert "ResNet-18 n/a (of 6000)" in text and "did not decrease" in text
    assert claims.loc["densenet_faster", "verdict"] == INCONCLUSIVE
    # Inception-v3's MSE is missing: n/a in the text and no verdict drawn from it
    t.loc[t["arch"] == "inception_v3", "mse"] = math.nan
    claims = seed_claims(t, c).set_index("claim")
    text = claims.loc["inception_fails", "ours"]
    assert "final MSE n/a" in text and "ratio n/a" in text
    assert claims.loc["inception_fails", "verdict"] == INCONCLUSIVE
    assert not claims["ours"].str.contains("nan").any()


def test_tiny_real_run_and_store_reuse(tmp_path):
    store = ResultStore(tmp_path, profile="quick")
    kw = dict(archs=["lenet", "resnet18"], methods=["idlg"], iterations={"lenet": 8, "resnet18": 2},
              sizes={"resnet18": 48}, store=store, progress=False)
    run = run_architectures("quick", **kw)
    t = run.table.set_index("arch")
    assert store.computed == 2 and list(t.index) == ["lenet", "resnet18"]
    assert t.loc["resnet18", "model"] == "resnet18_dlg" and t.loc["resnet18", "size"] == 48
    assert t.loc["resnet18", "params"] == 11_181_642 and t.loc["lenet", "params"] == 15_826
    assert run.originals["resnet18"].shape == (1, 3, 48, 48)
    assert (t["label_accuracy"] == 1.0).all()  # iDLG restores the label on both networks
    assert (t["final_loss"] < t["first_loss"]).all() and not t["diverged"].any()  # both attacks make progress
    assert set(run.curves["iteration"][run.curves["arch"] == "resnet18"]) == {0, 1, 2}
    # the resized original is the MSE target: the LeNet image equals the 32 px original
    assert np.allclose(resize_images(torch.as_tensor(run.originals["lenet"]), 32).numpy(), run.originals["lenet"])
    run_architectures("quick", **kw)
    assert store.loaded == 2


def test_committed_without_outputs_and_parameters_first():
    assert_clean_and_parameterized(NOTEBOOK, ("profile", "archs", "methods", "n_images", "iterations", "sizes", "seed",
                                              "device", "data_root", "results_root"))


@pytest.mark.slow
def test_architectures_notebook_executes(tmp_path, monkeypatch):
    nb = execute_notebook(NOTEBOOK, tmp_path, monkeypatch, profile="quick", archs=["lenet", "resnet18"], iterations=3,
                          sizes={"resnet18": 48}, device="cpu", results_root=str(tmp_path / "results"))
    summary = json.loads((tmp_path / "results" / "quick" / "architectures.json").read_text())
    assert summary["settings"]["iterations"] == {"lenet": 3, "resnet18": 3}
    assert len(summary["attacks"]) == 4 and summary["store"]["computed"] == 4
    assert [c["claim"] for c in summary["claims"]][0] == "lenet_order_smaller"
    assert set(summary["curves"]) == {"lenet/dlg", "lenet/idlg", "lenet/wdlg", "resnet18/dlg"}
    assert (tmp_path / "results" / "quick" / "architectures.png").exists()

    used, glued = glue_keys(nb)
    assert used and used <= glued, sorted(used - glued)
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
