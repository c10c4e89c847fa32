import pytest
import torch

from wdlg_core import losses
from wdlg_core.gradients import parameter_gradient, shared_gradient
from wdlg_core.models import build_model


def grads(seed, shapes=((4, 3), (5,))):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


@pytest.mark.parametrize("name", ["euclidean", "dirac", "sorted", "dual"])
def test_loss_is_zero_iff_gradients_match(name):
    fn = losses.make_loss("euclidean") if name == "euclidean" else losses.make_loss("wasserstein", name)
    a, b = grads(0), grads(1)
    if name == "dual":  # the critic is trained (once per attack iteration) before it is used
        fn.update(a, b)
    assert float(fn(a, [t.clone() for t in a])) == pytest.approx(0.0, abs=1e-12)
    assert float(fn(a, b)) > 1e-3


def test_closed_forms():
    a, b = grads(0), grads(1)
    assert float(losses.euclidean(a, b)) == pytest.approx(sum(float(((x - y) ** 2).sum()) for x, y in zip(a, b)))
    assert float(losses.wasserstein_dirac(a, b)) == pytest.approx(sum(float((x - y).norm()) for x, y in zip(a, b)))
    # 1-D W1 is permutation invariant: a shuffled layer is at distance zero
    perm = [x.reshape(-1)[torch.randperm(x.numel())].reshape(x.shape) for x in a]
    assert float(losses.wasserstein_sorted(a, perm)) == pytest.approx(0.0, abs=1e-12)
    # and its value is the sum over layers of the 1-D W1 between the layers' entries (scipy)
    from scipy.stats import wasserstein_distance

    expected = sum(wasserstein_distance(x.flatten().numpy(), y.flatten().numpy()) for x, y in zip(a, b))
    assert float(losses.wasserstein_sorted(a, b)) == pytest.approx(expected, rel=1e-12)


def test_dual_critic_approaches_its_closed_form_from_below():
    a, b = grads(0), grads(1)
    critic = losses.DualCritic(steps=1, lr=0.0002, clip=0.01)
    target = float(losses.dual_closed_form(a, b, clip=0.01))
    values = []
    for _ in range(20):
        critic.update(a, b)
        values.append(float(critic(a, b)))
    assert values[0] < target
    assert all(v <= target + 1e-9 for v in values)
    assert values[-1] == pytest.approx(target, rel=1e-6)
    assert values[-1] > values[0]


def test_dual_loss_is_differentiable_wrt_dummy_gradient():
    a, b = grads(0), grads(1)
    a = [x.requires_grad_() for x in a]
    critic = losses.DualCritic()
    for _ in range(3):
        critic.update(a, b)
    critic(a, b).backward()
    # at the critic's optimum the gradient is clip * sign(a - b)
    assert torch.allclose(a[0].grad, 0.01 * torch.sign(a[0].detach() - b[0]))


@pytest.mark.parametrize("name", ["euclidean", "dirac", "sorted"])
def test_twice_differentiable_through_model(name):
    """The attack differentiates the loss w.r.t. the dummy image (a double backward)."""
    model = build_model("lenet", (1, 28, 28), 10, seed=0)
    x = torch.rand(1, 1, 28, 28)
    true = shared_gradient(model, x, torch.tensor([3]))
    dummy = torch.randn(1, 1, 28, 28, requires_grad=True)
    fn = losses.make_loss("euclidean") if name == "euclidean" else losses.make_loss("wasserstein", name)
    loss = fn(parameter_gradient(model, dummy, torch.tensor([3]), create_graph=True), true)
    (gx,) = torch.autograd.grad(loss, dummy)
    assert torch.isfinite(loss) and torch.isfinite(gx).all() and gx.abs().sum() > 0


def test_unknown_names_list_valid_choices():
    with pytest.raises(ValueError, match="euclidean, wasserstein"):
        losses.make_loss("l1")
    with pytest.raises(ValueError, match="dirac"):
        losses.make_loss("wasserstein", "sinkhorn")


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        losses.euclidean(grads(0), grads(1, shapes=((4, 3), (6,))))
