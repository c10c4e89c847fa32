"""WDLG's Wasserstein estimators end to end, against independent code.

The references here are written plainly: the loss as one flat vector and torch's own norm, the
critic as a flat weight vector, torch.optim.LBFGS as the optimiser. A bug shared by the
package's losses and its own reference loop would not pass them.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wdlg_core.config import AttackConfig
from wdlg_core.data import load_images
from wdlg_core.engine import BatchedAttack, run_batch
from wdlg_core.models import build_model

ITERS = 20


@pytest.fixture(scope="module")
def case():
    images, labels = load_images("mnist", 2)
    model = build_model("lenet", (1, 28, 28), 10, seed=0).double()
    for p in model.parameters():
        p.requires_grad_(False)
    return images.double(), labels, model


def _plain_grad(model, x, label, create_graph):
    """The model's parameter gradient of cross-entropy at (x, label), as one flat vector."""
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    out = torch.func.functional_call(model, dict(zip([n for n, _ in model.named_parameters()], params)), (x,))
    grads = torch.autograd.grad(F.cross_entropy(out, label), params, create_graph=create_graph)
    return torch.cat([g.flatten() for g in grads])


def _plain_attack(model, image, label, seed, estimator, iters=ITERS, lr=1.0):
    """One WDLG attack with torch.optim.LBFGS (max_iter=1, no line search) and a plain loss."""
    true = _plain_grad(model, image, label, False).detach()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(image.shape, generator=gen).double().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=100)
    w = torch.zeros_like(true)  # the critic: f(g) = <w, g>, ||w||_2 <= 1

    def closure():
        opt.zero_grad()
        diff = _plain_grad(model, x, label, True) - true
        loss = torch.linalg.vector_norm(diff) if estimator == "dirac_whole" else (w * diff).sum()
        loss.backward()
        return loss

    for _ in range(iters):
        if estimator == "dual":  # 5 normalised ascent steps of length 1, projected on the unit ball
            diff = _plain_grad(model, x.detach(), label, False) - true
            for _ in range(5):
                w = w + diff / torch.linalg.vector_norm(diff)
                w = w / max(1.0, float(torch.linalg.vector_norm(w)))
        opt.step(closure)
    return x.detach()


@pytest.mark.parametrize("estimator", ["dirac_whole", "dual"])
def test_engine_matches_plain_torch_lbfgs(case, estimator):
    images, labels, model = case
    configs = [AttackConfig(method="wdlg", optimizer="lbfgs", lr=1.0, iterations=ITERS, seed=s,
                            estimator=estimator) for s in range(2)]
    results = run_batch(model, images[:, None], labels[:, None], configs)
    for i, r in enumerate(results):
        assert r.label_accuracy == 1.0  # iDLG's restoration, so the plain attack may use the true label
        ref = _plain_attack(model, images[i:i + 1], labels[i:i + 1], configs[i].seed, estimator)
        assert np.allclose(r.reconstruction, ref.clamp(0, 1).float().numpy(), atol=1e-5)
        assert abs(r.mses[-1] - r.mses[0]) > 1e-3  # and it moved
        if estimator == "dirac_whole":  # downhill (a fixed step on the dual's moving linear
            assert r.losses[-1] < 0.9 * r.losses[0]  # surrogate need not lower ||dW' - dW||)


def test_dual_attacks_with_the_line_search_move(case):
    """The bug of 0.3.0: the critic changed the loss but the line search kept its start value
    from the old critic, no trial point passed, and every dual attack froze at its start."""
    images, labels, model = case
    configs = [AttackConfig(method="wdlg", optimizer="lbfgs", lr=1.0, line_search="armijo", iterations=30,
                            seed=s, estimator="dual") for s in range(2)]
    for r in run_batch(model, images[:, None], labels[:, None], configs):
        assert not r.diverged
        assert len(np.unique(np.round(r.losses, 12))) == len(r.losses)  # a new loss every iteration
        assert abs(r.mses[-1] - r.mses[0]) > 1e-2  # the image moved (not necessarily towards the digit)


def test_each_line_search_sees_one_function(case):
    """Within a step, every evaluation (start point and trial points) uses the same critic, and
    the step's start value is that critic's value at the start point."""
    images, labels, model = case
    configs = [AttackConfig(method="wdlg", optimizer="lbfgs", lr=1.0, line_search="armijo", iterations=10,
                            seed=s, estimator="dual") for s in range(2)]
    attack = BatchedAttack(model, images[:, None], labels[:, None], configs)
    critic = attack.objective.loss_fn
    calls = []
    closure = attack.closure

    def recording(z, rows=None):
        values, grad = closure(z, rows)
        calls.append(torch.cat([w.flatten(1) for w in critic.weights], 1).clone())
        return values, grad

    attack.closure = recording
    for _ in range(10):
        z0 = attack.z.clone()
        calls.clear()
        attack.step()
        assert len(calls) >= 2  # the start point again, then at least one trial point
        assert all(torch.equal(c, calls[0]) for c in calls)
        fresh = closure(z0)[0]
        assert np.allclose([attack.losses[i][-1] for i in range(2)], fresh.numpy(), rtol=1e-12)
