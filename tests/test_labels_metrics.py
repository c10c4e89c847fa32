import numpy as np
import pytest
import torch

from wdlg_core import metrics
from wdlg_core.data import load_images
from wdlg_core.gradients import shared_gradient
from wdlg_core.labels import restore_labels
from wdlg_core.models import build_model


@pytest.mark.parametrize("dataset,classes", [("mnist", 10), ("cifar100", 100)])
def test_idlg_restores_the_label_of_real_images(dataset, classes):
    images, labels = load_images(dataset, 5)
    model = build_model("lenet", tuple(images.shape[1:]), classes, seed=0)
    for x, y in zip(images, labels):
        g = shared_gradient(model, x[None], y[None])
        assert int(restore_labels(model, g, 1)[0]) == int(y)


def test_batch_label_restoration_recovers_distinct_labels():
    images, labels = load_images("mnist", 4)
    assert len(set(labels.tolist())) == 4
    model = build_model("lenet", (1, 28, 28), 10, seed=0)
    restored = restore_labels(model, shared_gradient(model, images, labels), 4)
    assert metrics.label_accuracy(restored, labels) == 1.0


def test_label_restoration_refuses_a_logistic_head():
    model = build_model("cnn6_binary", (3, 32, 32), 1)
    g = shared_gradient(model, torch.rand(1, 3, 32, 32), torch.tensor([1]))
    with pytest.raises(ValueError, match="cross-entropy"):
        restore_labels(model, g, 1)


def test_mse_psnr_ssim_on_known_cases():
    a = torch.zeros(2, 1, 8, 8)
    b = torch.full((2, 1, 8, 8), 0.1)
    assert np.allclose(metrics.mse(a, b), 0.01)
    assert np.allclose(metrics.psnr(a, b), 20.0)
    img = torch.rand(1, 3, 16, 16)
    assert metrics.ssim(img, img)[0] == pytest.approx(1.0)
    assert metrics.ssim(img, torch.rand(1, 3, 16, 16))[0] < 0.5


def test_match_order_undoes_a_permutation():
    x = torch.rand(4, 1, 8, 8)
    perm = torch.tensor([2, 0, 3, 1])
    shuffled = x[perm]
    order = metrics.match_order(shuffled, x)
    assert torch.equal(shuffled[order], x)


def test_success_threshold_and_nan():
    assert metrics.success(5e-4) and not metrics.success(2e-3) and not metrics.success(float("nan"))
