"""R-GAP (wdlg_core.rgap): near-exact closed-form recovery of real images, rank analysis
counts on small known cases, label inference, store round trip and clear errors."""
import numpy as np
import pytest
import torch
from torch import nn

from wdlg_core.data import load_images
from wdlg_core.gradients import shared_gradient
from wdlg_core.models import build_model
from wdlg_core.rgap import RGAPConfig, rank_analysis, reconstruct, rgap_attack, run_rgap_cached
from wdlg_core.store import Case, ResultStore


@pytest.fixture(scope="module")
def mnist():
    torch.set_num_threads(1)
    return load_images("mnist", 2)  # (2, 1, 28, 28), (2,)


def test_cnn6_recovers_a_real_image_where_rank_analysis_says_determined(mnist):
    x, y = mnist
    model = build_model("cnn6", (1, 28, 28), 10, seed=0)
    table, summary = rank_analysis(model, (1, 28, 28))
    assert summary["fully_determined"] and summary["rank_index"] == 0
    result = rgap_attack(x[:1], y[:1], model)
    assert result.mse < 1e-8                      # near-exact (float32 gradient, float64 solve)
    assert result.labels.tolist() == y[:1].tolist()  # label read off the bias-free 10-class head
    layers = result.meta["rgap"]["layers"]
    assert [l["rank"] for l in layers] == [l["unknowns"] for l in layers]  # every system full rank
    assert all(l["residual"] < 1e-4 for l in layers)


def test_logistic_head_infers_the_label_and_resolves_the_root(mnist):
    x, y = mnist
    model = build_model("cnn6_binary", (1, 28, 28), 1, seed=0)
    for label in (0, 1):
        result = rgap_attack(x[1:2], torch.tensor([label]), model)
        assert result.labels.tolist() == [label]
        assert result.mse < 1e-8


def test_lenet_with_biases_and_sigmoids_is_recovered(mnist):
    x, y = mnist
    model = build_model("lenet", (1, 28, 28), 10, seed=0)
    result = rgap_attack(x[:1], y[:1], model)
    assert result.mse < 1e-6 and result.labels.tolist() == y[:1].tolist()


def test_fcn_is_exact():
    x, _ = load_images("mnist", 1, offset=5)
    model = build_model("fcn", (1, 28, 28), 1, seed=1)
    assert rgap_attack(x, torch.tensor([1]), model).mse < 1e-10


def test_rank_analysis_counts_on_a_small_known_case():
    # conv 1->2 (k3, s1, p1) on 1x4x4, LeakyReLU, conv 2->2 (k3, s2, p1) -> 2x2x2, linear 8 -> 1
    class Tiny(nn.Module):
        loss_kind = "logistic"

        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 2, 3, 1, 1, bias=False)
            self.c2 = nn.Conv2d(2, 2, 3, 2, 1, bias=False)
            self.fc = nn.Linear(8, 1, bias=False)

        def sequence(self):
            return [self.c1, nn.LeakyReLU(0.2), self.c2, nn.LeakyReLU(0.2), nn.Flatten(), self.fc]

    table, summary = rank_analysis(Tiny(), (1, 4, 4))
    c1, c2 = table.to_dict("records")
    assert (c1["unknowns"], c1["forward"], c1["gradient"], c1["gradient_effective"], c1["virtual"]) == (16, 32, 18, 16, 0)
    # c2's input 2x4x4 = 32 unknowns, but it is a function of the 16 pixels: 16 virtual constraints
    assert (c2["unknowns"], c2["forward"], c2["gradient"], c2["gradient_effective"], c2["virtual"]) == (32, 8, 36, 32, 16)
    assert summary["rank_index"] == 0 and summary["unknowns"] == 48


def test_rank_analysis_reports_deficiency_and_measured_rank():
    # a wide first layer that sees each pixel once: 1x8x8 -> 1x2x2 (k4, s4): 64 unknowns,
    # 4 forward and 16 gradient constraints -> deficiency 44
    class Wide(nn.Module):
        loss_kind = "cross_entropy"

        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 1, 4, 4, 0, bias=False)
            self.fc = nn.Linear(4, 3, bias=True)

        def sequence(self):
            return [self.c1, nn.Sigmoid(), nn.Flatten(), self.fc]

        def forward(self, x):
            return self.fc(torch.sigmoid(self.c1(x)).flatten(1))

    torch.manual_seed(0)
    model = Wide()
    table, summary = rank_analysis(model, (1, 8, 8), image=torch.rand(1, 1, 8, 8), label=2)
    row = table.iloc[0]
    assert (row["unknowns"], row["forward"], row["gradient_effective"], row["deficiency"]) == (64, 4, 16, 44)
    assert not summary["fully_determined"] and summary["rank_index"] == 44
    assert row["rank"] <= 20 and summary["measured_rank_index"] >= 44


def test_store_round_trip(tmp_path, mnist):
    x, y = mnist
    store = ResultStore(root=tmp_path, profile="t")
    model = build_model("lenet", (1, 28, 28), 10, seed=0)
    case = Case(dataset="mnist", indices=(0,), model="lenet")
    cfg = RGAPConfig()
    first, computed = run_rgap_cached(store, cfg, case, x[:1], y[:1], model)
    again, computed_again = run_rgap_cached(store, cfg, case, x[:1], y[:1], model)
    assert computed and not computed_again
    assert again.config == cfg and again.mse == pytest.approx(first.mse)
    np.testing.assert_array_equal(again.reconstruction, first.reconstruction)
    assert store.load(RGAPConfig(label="known"), case) is None
    assert store.to_frame()["method"].tolist() == ["rgap"]


def test_errors_name_the_problem(mnist):
    x, y = mnist
    with pytest.raises(ValueError, match="sequence"):
        rgap_attack(torch.rand(1, 1, 28, 28), torch.tensor([0]), nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))

    class WithReLU(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 2, 3, bias=False)
            self.fc = nn.Linear(2 * 26 * 26, 10, bias=False)

        def sequence(self):
            return [self.c, nn.ReLU(), nn.Flatten(), self.fc]

    with pytest.raises(ValueError, match="ReLU"):
        rank_analysis(WithReLU(), (1, 28, 28))
    model = build_model("lenet", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="one image"):
        rgap_attack(x, y, model)
    with pytest.raises(ValueError, match="valid choices: infer, known"):
        RGAPConfig(label="guess")
    with pytest.raises(ValueError, match="one gradient per model parameter"):
        reconstruct(model, shared_gradient(model, x[:1], y[:1])[:-1], (1, 28, 28))
    binary = build_model("fcn", (1, 28, 28), 1, seed=1)  # bias-free logistic head
    zero = [torch.zeros_like(p) for p in binary.parameters()]
    with pytest.raises(ValueError, match="head's weight gradient is zero"):
        reconstruct(binary, zero, (1, 28, 28))
