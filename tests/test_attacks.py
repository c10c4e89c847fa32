"""Attacks on real bundled images with fixed seeds."""

import numpy as np
import pytest
import torch

from wdlg_core import metrics, run_attack
from wdlg_core.data import load_images
from wdlg_core.models import build_model
from wdlg_core.result import AttackResult


@pytest.fixture(scope="module")
def digit():
    images, labels = load_images("mnist", 1)  # the first MNIST test digit (a 7)
    return images, labels


@pytest.mark.parametrize("method", ["dlg", "idlg"])
def test_dlg_and_idlg_reconstruct_a_real_mnist_digit(digit, method):
    """Paper Table 1 settings (L-BFGS, lr 0.1) on LeNet: the digit comes back (MSE < 1e-3)."""
    images, labels = digit
    r = run_attack(images, labels, method=method, model="lenet", optimizer="lbfgs", lr=0.1,
                   iterations=400, seed=0, record_every=10)
    assert not r.diverged
    assert r.mse < 1e-3 and r.success and r.psnr > 30
    assert r.label_accuracy == 1.0
    assert r.iterations_to_success is not None and r.iterations_to_success <= 400
    assert r.mses[0] > 0.1 and r.losses[-1] < r.losses[0]  # it really started from noise


def test_same_seed_same_result_and_seed_changes_the_dummy(digit):
    images, labels = digit
    kw = dict(method="wdlg", optimizer="adam", lr=0.1, iterations=5)
    a, b = run_attack(images, labels, seed=1, **kw), run_attack(images, labels, seed=1, **kw)
    c = run_attack(images, labels, seed=2, **kw)
    assert np.array_equal(a.reconstruction, b.reconstruction)
    assert np.array_equal(a.losses, b.losses)
    assert not np.array_equal(a.reconstruction, c.reconstruction)


@pytest.mark.parametrize("estimator", ["dirac", "sorted", "dual"])
def test_wdlg_estimators_reduce_the_loss_and_restore_the_label(digit, estimator):
    images, labels = digit
    r = run_attack(images, labels, method="wdlg", estimator=estimator, optimizer="adam", lr=0.1,
                   iterations=30, snapshots=(0, 10, 30))
    assert r.label_accuracy == 1.0
    assert np.isfinite(r.losses).all() and not r.diverged
    assert r.losses[-1] < r.losses[0]
    assert sorted(r.snapshots) == [0, 10, 30] and r.snapshots[10].shape == (1, 1, 28, 28)
    if estimator == "dirac":  # the sorted reading is blind to where entries sit (see losses.py)
        assert r.mses[-1] < r.mses[0]


def test_batch_of_four_returns_matched_reconstructions():
    images, labels = load_images("cifar10", 8)
    keep = [0, 1, 4, 6]  # four distinct labels (3, 8, 6, 1): iDLG's batch rule needs distinct labels
    images, labels = images[keep], labels[keep]
    assert len(set(labels.tolist())) == 4
    r = run_attack(images, labels, method="idlg", optimizer="adam", lr=0.1, iterations=3,
                   num_classes=10)
    assert r.reconstruction.shape == (4, 3, 32, 32)
    assert r.labels.shape == (4,) and r.label_accuracy == 1.0
    assert 0 <= r.reconstruction.min() and r.reconstruction.max() <= 1
    # the reconstructions come back in the order of the images they best match
    order = metrics.match_order(torch.as_tensor(r.reconstruction), images)
    assert list(order) == [0, 1, 2, 3]


def test_a_diverged_attack_is_recorded_as_failed(digit):
    images, labels = digit
    overflow = lambda grads: [g * float("inf") for g in grads]  # noqa: E731 (an overflowed gradient)
    r = run_attack(images, labels, method="dlg", optimizer="lbfgs", lr=0.1, iterations=20, defense=overflow)
    assert r.diverged and not r.success
    assert r.iterations_to_success is None
    assert np.isfinite(r.reconstruction).all()  # the last finite dummy is kept


def test_result_round_trips_through_records(digit):
    images, labels = digit
    r = run_attack(images, labels, method="wdlg", optimizer="adam", iterations=4, snapshots=(2,))
    doc, arrays = r.to_record()
    back = AttackResult.from_record(doc, arrays)
    assert back.config == r.config and back.mse == r.mse
    assert np.array_equal(back.snapshots[2], r.snapshots[2])
    assert np.allclose(back.losses, r.losses)


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="xdlg"), "valid methods: dlg, idlg, wdlg, ig, sapag, rgap"),
    (dict(method="rgap", iterations=10), "closed form: it takes no iterations"),
    (dict(method="rgap", estimator="dual"), "valid options: label, rank_rtol, success_mse"),
    (dict(method="dlg", optimizer="sgd"), "lbfgs"),
    (dict(method="dlg", model="vgg"), "lenet"),
    (dict(method="dlg", estimator="sinkhorn"), "dirac"),
    (dict(method="dlg", learning_rate=0.1), "valid options"),
])
def test_bad_arguments_name_the_valid_choices(digit, kwargs, match):
    images, labels = digit
    with pytest.raises(ValueError, match=match):
        run_attack(images, labels, **kwargs)


def test_bad_shapes_and_ranges(digit):
    images, labels = digit
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        run_attack(images[0], labels, method="dlg")
    with pytest.raises(ValueError, match="labels"):
        run_attack(images, torch.tensor([1, 2]), method="dlg")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        run_attack(images * 255, labels, method="dlg")
    with pytest.raises(ValueError, match=r"\[0, 1\] \(no NaN\)"):
        run_attack(images * float("nan"), labels, method="dlg")
    with pytest.raises(ValueError, match="B >= 1"):
        run_attack(images[:0], labels[:0], method="dlg")


@pytest.mark.parametrize("labels, kwargs, match", [
    ([-1], {}, r"0 \.\. 9"),
    ([7], dict(num_classes=5), r"0 \.\. 4"),
    ([10], dict(model=build_model("lenet", (1, 28, 28), 10)), r"0 \.\. 9"),
])
def test_labels_outside_the_model_classes(digit, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_attack(digit[0], torch.tensor(labels), method="dlg", iterations=1, **kwargs)


def test_label_range_comes_from_the_model_output(digit):
    """The head registered first, the body after it: the output size, not the last Linear, counts."""
    class HeadFirst(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(4, 10)
            self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 4), torch.nn.Sigmoid())

        def forward(self, x):
            return self.head(self.body(x))

    result = run_attack(*digit, method="idlg", iterations=1, model=HeadFirst())  # label 7 of 10 classes
    assert result.true_labels.tolist() == [7]
    with pytest.raises(ValueError, match=r"0 \.\. 9"):
        run_attack(digit[0], torch.tensor([10]), method="idlg", iterations=1, model=HeadFirst())


@pytest.mark.parametrize("device, match", [("gpu", "valid examples: cpu, cuda"), ("cuda:0", "sees no CUDA")])
def test_bad_device_is_a_clear_error(digit, device, match):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ValueError, match=match):
        run_attack(*digit, method="dlg", iterations=1, device=device)
