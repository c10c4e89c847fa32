import pytest
import torch

from wdlg_core import losses
from wdlg_core.gradients import parameter_gradient, shared_gradient
from wdlg_core.models import build_model


def grads(seed, shapes=((4, 3), (5,))):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


@pytest.mark.parametrize("name", ["euclidean", "dirac_whole", "dirac", "sorted", "dual"])
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
    # the whole-gradient reading: one L2 norm over all parameters, the square root of DLG's loss
    flat = torch.cat([(x - y).flatten() for x, y in zip(a, b)])
    assert float(losses.wasserstein_dirac_whole(a, b)) == pytest.approx(float(flat.norm()), abs=1e-9)  # smoothing: -1e-10
    assert float(losses.wasserstein_dirac_whole(a, b)) ** 2 == pytest.approx(float(losses.euclidean(a, b)), rel=1e-9)
    # the per-layer sum lies between the whole norm and sqrt(L) times it
    whole, per_layer = float(losses.wasserstein_dirac_whole(a, b)), float(losses.wasserstein_dirac(a, b))
    assert whole < per_layer <= 2 ** 0.5 * whole
    # 1-D W1 is permutation invariant: a shuffled layer is at distance zero
    perm = [x.reshape(-1)[torch.randperm(x.numel())].reshape(x.shape) for x in a]
    assert float(losses.wasserstein_sorted(a, perm)) == pytest.approx(0.0, abs=1e-12)
    # and its value is the sum over layers of the 1-D W1 between the layers' entries (scipy)
    from scipy.stats import wasserstein_distance

    expected = sum(wasserstein_distance(x.flatten().numpy(), y.flatten().numpy()) for x, y in zip(a, b))
    assert float(losses.wasserstein_sorted(a, b)) == pytest.approx(expected, rel=1e-12)


def test_dual_critic_reaches_its_closed_form_within_one_percent():
    """After one update of its default steps the critic's value is within 1% of K ||a - b||_2
    (the closed form written plainly), from w = 0 and from a critic trained elsewhere (a warm
    start 90+ degrees off, as after the dummy moved), and never above it."""
    a, b = grads(0), grads(1)
    for bound in (1.0, 0.01):
        target = float(losses.dual_closed_form(a, b, bound=bound))
        assert target == pytest.approx(bound * float(torch.cat([(x - y).flatten() for x, y in zip(a, b)]).norm()))
        critic = losses.DualCritic(bound=bound)
        assert float(critic(a, b)) == 0.0  # untrained: w = 0
        critic.update(a, b)
        assert float(critic(a, b)) == pytest.approx(target, rel=1e-2) and float(critic(a, b)) <= target * (1 + 1e-12)
        # warm starts on the sphere at several angles from the optimum, the slowest (about
        # 125 degrees) included: five steps of length K reach it within 1%
        u = torch.cat([(x - y).flatten() for x, y in zip(a, b)])
        u = u / u.norm()
        v = torch.randn(u.shape, generator=torch.Generator().manual_seed(5), dtype=u.dtype)
        v = v - (v @ u) * u
        v = v / v.norm()
        for degrees in (90, 125, 150, 179):
            angle = torch.tensor(degrees * torch.pi / 180, dtype=u.dtype)
            w = bound * (torch.cos(angle) * u + torch.sin(angle) * v)
            critic = losses.DualCritic(bound=bound)
            critic.weights = [t[None].clone() for t in torch.split(w, [x.numel() for x in a])]
            critic.weights = [t.reshape(1, *x.shape) for t, x in zip(critic.weights, a)]
            before = float(critic(a, b))
            critic.update(a, b)
            after = float(critic(a, b))
            assert before < after <= target * (1 + 1e-12)
            assert after == pytest.approx(target, rel=1e-2), degrees


def test_dual_critic_step_count_and_length_matter():
    """Unlike a saturating critic, fewer or shorter steps leave it further from its optimum."""
    a, b = grads(0), grads(1)
    target = float(losses.dual_closed_form(a, b))
    gaps = []
    for steps, lr in ((1, 0.1), (1, 0.5), (5, 0.5)):
        critic = losses.DualCritic(steps=steps, lr=lr)
        critic.update(a, b)
        gaps.append(target - float(critic(a, b)))
    assert gaps[0] > gaps[1] > gaps[2] >= 0
    assert gaps[0] > 0.5 * target  # one step of 0.1 K from w = 0: a tenth of the way


def test_dual_critic_is_not_an_l1_distance():
    """The critic's value tracks the L2 distance of the whole gradient, not the L1 one."""
    a, b = grads(0), grads(1)
    critic = losses.DualCritic()
    critic.update(a, b)
    l1 = float(sum((x - y).abs().sum() for x, y in zip(a, b)))
    l2 = float(torch.cat([(x - y).flatten() for x, y in zip(a, b)]).norm())
    assert float(critic(a, b)) == pytest.approx(l2, rel=1e-2)
    assert abs(float(critic(a, b)) - l1) > 0.5 * l2


def test_dual_critic_batched_attacks_are_independent():
    """Attack i's critic depends on attack i's gradients only (the batched form against one-attack critics)."""
    pairs = [(grads(2 * i), grads(2 * i + 1)) for i in range(3)]
    batched = losses.BatchedDualCritic(steps=2, lr=0.3)
    dummy = [torch.stack([p[0][j] for p in pairs]) for j in range(2)]
    true = [torch.stack([p[1][j] for p in pairs]) for j in range(2)]
    batched.update(dummy, true)
    values = batched(dummy, true)
    for i, (a, b) in enumerate(pairs):
        one = losses.DualCritic(steps=2, lr=0.3)
        one.update(a, b)
        assert float(values[i]) == pytest.approx(float(one(a, b)), rel=1e-12)


def test_dual_loss_is_differentiable_wrt_dummy_gradient():
    a, b = grads(0), grads(1)
    a = [x.requires_grad_() for x in a]
    critic = losses.DualCritic()
    critic.update(a, b)
    critic(a, b).backward()
    # at the critic's optimum the gradient is K (a - b) / ||a - b||: the gradient of the closed form
    ref = [x.detach().clone().requires_grad_() for x in a]
    losses.dual_closed_form(ref, b).backward()
    for got, want in zip(a, ref):
        assert torch.allclose(got.grad, want.grad, rtol=1e-2, atol=1e-3 * float(want.grad.abs().max()))


@pytest.mark.parametrize("name", ["euclidean", "dirac_whole", "dirac", "sorted"])
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
