import pytest
import torch

from wdlg_core.models import MODELS, build_model


@pytest.mark.parametrize("shape,hidden", [((1, 28, 28), 588), ((3, 32, 32), 768)])
def test_lenet_matches_dlg_reference(shape, hidden):
    m = build_model("lenet", shape, 10, seed=0)
    assert m.fc.in_features == hidden
    assert m(torch.rand(2, *shape)).shape == (2, 10)
    for p in m.parameters():  # DLG's weights_init: U(-0.5, 0.5) on every weight and bias
        assert p.min() >= -0.5 and p.max() <= 0.5
        if p.numel() >= 100:  # a large draw from U(-0.5, 0.5) spans nearly the whole interval
            assert p.min() < -0.45 and p.max() > 0.45
    assert sum(isinstance(x, torch.nn.Sigmoid) for x in m.modules()) == 3


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (build_model("lenet", (1, 28, 28), 10, seed=s) for s in (0, 0, 1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_cnn6_is_bias_free_and_binary_variant_is_logistic():
    m = build_model("cnn6", (3, 32, 32), 10)
    assert m.fc.in_features == 3200 and all(p.ndim > 1 for p in m.parameters())
    assert m.loss_kind == "cross_entropy"
    b = build_model("cnn6_binary", (3, 32, 32), 10)
    assert b(torch.rand(2, 3, 32, 32)).shape == (2, 1) and b.loss_kind == "logistic"


def test_torchvision_model_has_sigmoid_not_relu():
    m = build_model("resnet18", (3, 32, 32), 10)
    assert not any(isinstance(x, torch.nn.ReLU) for x in m.modules())
    assert any(isinstance(x, torch.nn.Sigmoid) for x in m.modules())
    assert m(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_model("vgg", (3, 32, 32), 10)
    for name in MODELS:
        assert name in str(err.value)


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="in_shape"):
        build_model("lenet", (32, 32), 10)


@pytest.mark.parametrize("name,shape", [("densenet121", (3, 32, 32)), ("inception_v3", (3, 75, 75))])
def test_other_torchvision_models_are_sigmoid_and_take_their_inputs(name, shape):
    m = build_model(name, shape, 10)
    assert not any(isinstance(x, torch.nn.ReLU) for x in m.modules())
    out = m(torch.rand(1, *shape))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_torchvision_probe_leaves_batch_norm_statistics_alone():
    m = build_model("resnet18", (3, 32, 32), 10)
    bn = next(x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d))
    assert int(bn.num_batches_tracked) == 0 and torch.all(bn.running_var == 1)
