"""The batched objective equals the one-attack reference, attack by attack."""
import pytest
import torch

from wdlg_core import losses
from wdlg_core.gradients import parameter_gradient
from wdlg_core.matching import MatchingObjective, explicit_gradients, layer_sequence, vmap_gradients
from wdlg_core.models import build_model

CASES = [("lenet", (1, 28, 28), 10), ("lenet", (3, 32, 32), 100), ("cnn6", (3, 32, 32), 10),
         ("cnn6_binary", (3, 32, 32), 1)]


def _targets(kind, n, b, k, soft, gen):
    if kind == "logistic":
        return torch.rand(n, b, generator=gen, dtype=torch.float64)
    if soft:
        return torch.softmax(torch.randn(n, b, k, generator=gen, dtype=torch.float64), -1)
    return torch.randint(0, k, (n, b), generator=gen)


@pytest.mark.parametrize("name,shape,k", CASES)
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("b", [1, 3])
def test_per_attack_gradients_equal_the_reference(name, shape, k, soft, b):
    model = build_model(name, shape, k, seed=0).double()
    gen = torch.Generator().manual_seed(0)
    n = 4
    x = torch.rand(n, b, *shape, generator=gen, dtype=torch.float64)
    t = _targets(model.loss_kind, n, b, k, soft, gen)
    fast = explicit_gradients(layer_sequence(model), x, t, model.loss_kind)
    slow = vmap_gradients(model, x, t, model.loss_kind)
    for i in range(n):
        ref = parameter_gradient(model, x[i], t[i])
        for f, s, r in zip(fast, slow, ref):
            assert torch.allclose(f[i], r, atol=1e-10, rtol=1e-7)
            assert torch.allclose(s[i], r, atol=1e-10, rtol=1e-7)


@pytest.mark.parametrize("path,n", [("explicit", 3), ("vmap", 3), ("autograd", 1), ("auto", 1)])
@pytest.mark.parametrize("loss", ["euclidean", "dirac", "sorted"])
def test_objective_value_and_dummy_gradient_equal_the_reference(path, n, loss):
    model = build_model("lenet", (3, 32, 32), 10, seed=1).double()
    gen = torch.Generator().manual_seed(1)
    b = 2
    true = [torch.randn(n, *p.shape, generator=gen, dtype=torch.float64) * 0.01 for p in model.parameters()]
    x = torch.rand(n, b, 3, 32, 32, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 10, (n, b), generator=gen)
    name, est = ("euclidean", "dirac") if loss == "euclidean" else ("wasserstein", loss)
    obj = MatchingObjective(model, true, losses.make_loss(name, est, batched=True), path=path)
    assert obj.path == ("autograd" if n == 1 else path)  # a single attack takes the plain double backward
    values = obj(x, y)
    (gx,) = torch.autograd.grad(values.sum(), x)
    single = losses.make_loss(name, est)
    for i in range(n):
        xi = x[i].detach().requires_grad_()
        ref = single(parameter_gradient(model, xi, y[i], create_graph=True), [t[i] for t in true])
        (gi,) = torch.autograd.grad(ref, xi)
        assert torch.allclose(values[i], ref, rtol=1e-9)
        assert torch.allclose(gx[i], gi, rtol=1e-7, atol=1e-12)


def test_unsupported_models_fall_back_to_vmap_and_explicit_refuses():
    model = build_model("resnet18", (3, 32, 32), 10)
    true = [torch.zeros(2, *p.shape) for p in model.parameters()]
    assert MatchingObjective(model, true, losses.batched_euclidean).path == "vmap"
    one = [g[:1] for g in true]
    assert MatchingObjective(model, one, losses.batched_euclidean).path == "autograd"
    with pytest.raises(ValueError, match="one attack"):
        MatchingObjective(model, true, losses.batched_euclidean, path="autograd")
    with pytest.raises(ValueError, match="vmap"):
        MatchingObjective(model, true, losses.batched_euclidean, path="explicit")
    with pytest.raises(ValueError, match="auto, explicit, vmap, autograd"):
        MatchingObjective(model, true, losses.batched_euclidean, path="fast")
