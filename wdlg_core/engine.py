"""The batched attack engine: N independent attacks as one vectorised computation.

This is the package's one attack loop: every experiment of the book and every single attack
(:func:`wdlg_core.run_attack`, a batch of one) goes through here. Attack i has its own images, shared
gradient, dummy data (drawn from its own seed exactly as the one-attack reference loop of the
tests, ``tests/reference_attack.py``, draws it), label and optimiser state; the N attacks
share one model and one configuration (except the seed). Per iteration the engine

1. evaluates every attack's gradient-matching loss and its gradient w.r.t. that attack's
   dummy data in one pass (:class:`wdlg_core.matching.MatchingObjective`),
2. takes one step of a batched optimiser with per-attack state
   (:mod:`wdlg_core.optim`: L-BFGS with per-attack history and step, or Adam, optionally on
   signed gradients with a step-decayed learning rate, and the dummy images projected to
   [0, 1] after the step: Inverting Gradients' settings, ``AttackConfig.signed``,
   ``lr_decay``, ``boxed``; the objective adds ``tv_weight`` times the TV prior),
3. records losses, image MSE and snapshots exactly where the reference records them.

An attack whose loss turns NaN/inf is frozen at its last finite point and reported as
diverged (failed); the others go on undisturbed. Under L-BFGS with the Armijo search an attack
that meets a termination test stops for good (``optimizer.converged``, see
:mod:`wdlg_core.optim`): it is no longer evaluated, its curves stay flat at its last loss and
image, and the batch's cost shrinks to the attacks still running. The result of attack i does not depend on
the other attacks in the batch (tests check it against the reference and against itself
alone). Large N is split into chunks that fit a memory budget (:func:`chunk_size`). A batch
of one attack (``run_attack``, or a group or last chunk of one) evaluates its gradients with
a plain autograd pass instead of the batched paths (:mod:`wdlg_core.matching`, path
``"autograd"``): the same numbers up to float rounding, as fast as a hand-written loop.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import metrics
from .config import AttackConfig
from .labels import restore_labels
from .losses import make_loss
from .matching import MatchingObjective
from .models import num_outputs
from .optim import make_optimizer
from .result import AttackResult, assemble_result


def _same_batch_config(configs: list[AttackConfig]) -> AttackConfig:
    """The configuration shared by a batch (all fields but ``seed`` must agree)."""
    first = configs[0].replace(seed=0)
    for c in configs[1:]:
        if c.replace(seed=0) != first:
            raise ValueError("attacks in one batch must share their configuration except the seed; "
                             f"got {first} and {c.replace(seed=0)}")
    return configs[0]


def per_attack_mse(x: torch.Tensor, ground_truth: torch.Tensor) -> np.ndarray:
    """Image MSE of each attack's clipped dummy, after matching images for B > 1.

    x, ground_truth: (N, B, C, H, W). Returns (N,) float64.
    """
    rec = torch.nan_to_num(x.detach(), nan=0.0).clamp(0, 1).double()  # a diverged dummy must not crash matching
    if x.shape[1] == 1:
        return ((rec - ground_truth.double()) ** 2).flatten(1).mean(1).cpu().numpy()
    out = []
    for r, g in zip(rec, ground_truth):
        out.append(float(metrics.mse(r[metrics.match_order(r, g)], g).mean()))
    return np.asarray(out)


class BatchedAttack:
    """N attacks in flight: set up once, advanced one iteration at a time, then read out.

    Args:
        model: the shared network, on the device to compute on (its weights are constants;
            callers should switch off their ``requires_grad``, as :func:`run_batch` does).
        images: (N, B, C, H, W) float in [0, 1], the N attacked batches.
        labels: (N, B) int64.
        configs: N configurations, equal except for ``seed``.
        defense: optional callable applied to each attack's shared gradient (a list of
            per-parameter tensors) before the attacker sees it.
        path: per-attack gradient path of :class:`MatchingObjective`.

    Attributes: ``n``, ``b``, ``iteration`` (iterations done), ``stopped`` (N,) bool
    (diverged attacks, no longer recorded), ``objective``, ``optimizer``, ``z`` (N, D) the
    optimised variables (dummy data, and DLG's dummy labels).

    Raises:
        ValueError: shapes that do not agree, or configurations that differ beyond the seed.
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 configs: list[AttackConfig], defense=None, path: str = "auto"):
        if images.ndim != 5 or labels.shape != images.shape[:2] or len(configs) != images.shape[0]:
            raise ValueError(f"expected images (N, B, C, H, W), labels (N, B) and N configs; got "
                             f"{tuple(images.shape)}, {tuple(labels.shape)}, {len(configs)}")
        self.config = config = _same_batch_config(configs)
        self.configs, self.model = configs, model
        self.device, self.dtype = next(model.parameters()).device, next(model.parameters()).dtype
        self.images = images.to(self.device, self.dtype)                  # (N, B, C, H, W), model's dtype
        self.labels = labels.long().to(self.device)                       # (N, B)
        n, b = self.n, self.b = images.shape[:2]
        self.shape = shape = tuple(images.shape[2:])
        self.kind = getattr(model, "loss_kind", "cross_entropy")

        # the shared gradients (what the N clients send), one tensor (N, *param) per parameter
        target = self.labels.to(self.dtype) if self.kind == "logistic" else self.labels
        # one attack: the plain autograd pass, for the shared gradient as for the dummy's (so a
        # single attack accepts any model the reference loop accepts, dropout and train-mode BN too)
        client_path = "autograd" if n == 1 and path in ("auto", "autograd") else path
        true_grads = [g.detach() for g in
                      MatchingObjective(model, [], None, client_path).dummy_gradients(self.images, target)]
        if defense is not None:
            per_attack = [defense([g[i] for g in true_grads]) for i in range(n)]
            true_grads = [torch.stack([pa[j] for pa in per_attack]) for j in range(len(true_grads))]

        # dummy data and labels, drawn per attack exactly as the one-attack reference draws them
        self.k = k = num_outputs(model)
        xs, ys = [], []
        for c in configs:
            gen = torch.Generator().manual_seed(c.seed)
            xs.append(torch.randn(b, *shape, generator=gen))
            ys.append(torch.randn(b, k, generator=gen))
        dummy_x = torch.stack(xs).to(self.device, self.dtype)             # (N, B, C, H, W)
        self.joint = config.label_mode == "joint"
        if self.joint:
            self.restored = None
            dummy_y = torch.stack(ys).to(self.device, self.dtype)         # (N, B, K)
            self.z = torch.cat([dummy_x.flatten(1), dummy_y.flatten(1)], 1)  # (N, D + B*K)
        else:
            self.restored = torch.stack([restore_labels(model, [g[i] for g in true_grads], b) for i in range(n)])
            self.z = dummy_x.flatten(1).clone()                           # (N, D)
        self.dx = dummy_x[0].numel()

        loss_fn = make_loss(config.matching_loss, config.estimator, critic_steps=config.critic_steps,
                            critic_lr=config.critic_lr, critic_bound=config.critic_bound, batched=True)
        self.objective = MatchingObjective(model, true_grads, loss_fn, path=path, tv_weight=config.tv_weight)
        self.critic = getattr(loss_fn, "update", None)  # the dual estimator: trained once per iteration
        extra = ({"history_size": config.history_size, "row_closure": True} if config.optimizer == "lbfgs"
                 else {"signed": config.signed})
        if config.line_search == "armijo":
            extra["line_search"] = "armijo"
        self.optimizer = make_optimizer(config.optimizer, self.z, config.lr, **extra)

        self.iteration = 0
        self.stopped = np.zeros(n, dtype=bool)
        self.recorded = [[] for _ in range(n)]
        self.losses = [[] for _ in range(n)]
        self.mses = [[] for _ in range(n)]
        self.snapshots = [{} for _ in range(n)]
        if 0 in config.snapshots:
            self._snapshot(0)
        self.elapsed = 0.0

    def dummy(self, z=None, rows=None):
        """(dummy data (n, B, C, H, W), label target) from the flat variables ``z`` (n, D) of
        the attacks ``rows`` (int64 indices; None: z holds all N)."""
        z = self.z if z is None else z
        x = z[:, :self.dx].reshape(z.shape[0], self.b, *self.shape)
        if not self.joint:
            return x, (self.restored if rows is None else self.restored[rows])
        yl = z[:, self.dx:].reshape(z.shape[0], self.b, self.k)
        return x, torch.sigmoid(yl) if self.kind == "logistic" else torch.softmax(yl, -1)

    def closure(self, z, rows=None):
        """Every attack's loss (N,) and its gradient w.r.t. its own variables (N, D).

        ``rows``: (N,) bool, the attacks to evaluate (the optimiser leaves out those that have
        stopped); the other rows of the output are zeros. None: all.
        """
        if rows is None or bool(rows.all()):
            return self._evaluate(z, None)
        out_v, out_g = z.new_zeros(z.shape[0]), torch.zeros_like(z)
        idx = rows.nonzero().squeeze(1)
        if idx.numel():
            out_v[idx], out_g[idx] = self._evaluate(z[idx], idx)
        return out_v, out_g

    def _evaluate(self, z, rows):
        """Losses (n,) and gradients (n, D) of the attacks ``rows`` (int64; None: all) at z (n, D)."""
        zr = z.detach().requires_grad_(True)
        values = self.objective(*self.dummy(zr, rows), rows=rows)        # (n,)
        (grad,) = torch.autograd.grad(values.sum(), zr)
        return values.detach(), grad

    def _snapshot(self, it):
        snap = self.dummy()[0].detach().clamp(0, 1).cpu().numpy()
        for i in np.flatnonzero(~self.stopped):
            self.snapshots[i][it] = snap[i]

    def _train_critic(self, live):
        """The dual estimator: train the critics of the attacks ``live`` ((N,) bool) at their
        current dummy data; the optimiser then evaluates its start point again."""
        if self.critic is None or not bool(live.any()):
            return
        rows = None if bool(live.all()) else live.nonzero().squeeze(1)
        z = self.z.detach() if rows is None else self.z[rows].detach()
        dummy = self.objective.dummy_gradients(*self.dummy(z, rows))
        self.critic([g.detach() for g in dummy], self.objective.true_gradients(rows), rows=rows)
        self.optimizer.objective_changed()  # a new loss: the start point is evaluated again

    def step(self):
        """One iteration of every live attack (one optimiser step), recorded like the reference."""
        start = time.perf_counter()
        it = self.iteration = self.iteration + 1
        record = (it - 1) % self.config.record_every == 0
        mse_before = per_attack_mse(self.dummy()[0], self.images) if record else None
        live = self.optimizer.active  # (N,) not diverged, not converged
        self._train_critic(live)
        if self.config.lr_decay:  # step decay, as torch's MultiStepLR in the reference
            self.optimizer.lr = self.config.lr_at(it)
        if bool(live.any()):
            step_loss = self.optimizer.step(self.closure).double().cpu().numpy()  # losses at x_(it-1)
        else:  # every attack has stopped: nothing to evaluate, the curves stay flat
            step_loss = self.optimizer.loss.double().cpu().numpy()
        if self.config.boxed:  # box constraint: every dummy image back into [0, 1] (labels untouched)
            self.z[:, :self.dx].clamp_(0, 1)
        newly = self.optimizer.diverged.cpu().numpy() & ~self.stopped
        if record:
            for i in np.flatnonzero(~self.stopped):
                self.recorded[i].append(it - 1)
                self.losses[i].append(float(step_loss[i]))
                self.mses[i].append(float(mse_before[i]))
        self.stopped |= newly
        if it in self.config.snapshots:
            self._snapshot(it)
        self.elapsed += time.perf_counter() - start

    def results(self) -> list[AttackResult]:
        """Evaluate the final point (one more loss evaluation) and build the N results.

        ``wall_time`` of each result is the batch's optimisation time divided by N (an
        amortised cost that depends on N; ``meta["engine"]`` keeps the batch's time and N).
        """
        start = time.perf_counter()
        self._train_critic(torch.as_tensor(~self.stopped, device=self.z.device))  # the final point's own critic
        final_loss = self.closure(self.z)[0].double().cpu().numpy()
        final_mse = per_attack_mse(self.dummy()[0], self.images)
        elapsed = self.elapsed + time.perf_counter() - start
        # diverged attacks report their last point with a finite loss (the optimiser froze them
        # there); an attack whose final loss is not finite falls back to its last finite point
        z_ok = self.optimizer.x_finite
        out = []
        for i in range(self.n):
            diverged = bool(self.stopped[i])
            evals = int(self.optimizer.func_evals[i])
            z_i = self.z[i]
            if not diverged:
                self.recorded[i].append(self.iteration)
                self.losses[i].append(float(final_loss[i]))
                self.mses[i].append(float(final_mse[i]))
                evals += 1
                if not math.isfinite(float(final_loss[i])):
                    diverged, z_i = True, z_ok[i]
            x_i = z_i[:self.dx].reshape(self.b, *self.shape)
            if self.restored is not None:
                lab = self.restored[i]
            else:
                yl = z_i[self.dx:].reshape(self.b, self.k)
                lab = (yl > 0).long().reshape(-1) if self.kind == "logistic" else yl.argmax(-1)
            r = assemble_result(self.configs[i], x_i, lab, self.joint, self.images[i], self.labels[i],
                                self.recorded[i], self.losses[i], self.mses[i], self.snapshots[i],
                                elapsed / self.n, diverged, evals, self.device)
            r.meta["engine"] = {"batch_size": self.n, "batch_wall_time": elapsed, "path": self.objective.path}
            out.append(r)
        return out


class constant_weights:
    """Context manager: switch off ``requires_grad`` of a model's weights, restore on exit."""

    def __init__(self, model: nn.Module):
        self.params = list(model.parameters())

    def __enter__(self):
        self.flags = [p.requires_grad for p in self.params]
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p, f in zip(self.params, self.flags):
            p.requires_grad_(f)


def run_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, configs: list[AttackConfig], *,
              defense=None, path: str = "auto", progress=None, desc: str = "attack") -> list[AttackResult]:
    """Run N attacks as one computation (no chunking: see :func:`run_attacks`).

    Args:
        model, images (N, B, C, H, W), labels (N, B), configs, defense, path: see
            :class:`BatchedAttack`; ``defense`` may also be a list of N callables (or None),
            one per attack (:func:`wdlg_core.defenses.sequential`), e.g. noise seeded per attack.
        progress: a tqdm bar over iterations (True/False; None: only on a terminal).
        desc: the bar's label.

    Returns:
        N :class:`AttackResult`, in input order.
    """
    from tqdm.auto import tqdm

    with constant_weights(model):
        from .defenses import sequential

        defense = sequential(defense, images.shape[0])
        attack = BatchedAttack(model, images, labels, configs, defense=defense, path=path)
        bar = tqdm(range(attack.config.iterations), desc=desc, unit="it", leave=False,
                   disable=(False if progress else None if progress is None else True))
        for _ in bar:
            attack.step()
            if attack.stopped.all():
                break
        bar.close()
        return attack.results()


# --- memory budget and chunking -----------------------------------------------------------

def bytes_per_attack(model: nn.Module, shape: tuple[int, ...], batch: int, config: AttackConfig) -> int:
    """Estimated peak memory of one attack inside a batch, in bytes (float32).

    Optimiser state: L-BFGS keeps 2 * history_size vectors of the attack's D numbers, Adam 2.
    Objective: the activations and input patch volume of every layer, and the per-image
    weight gradients, for the B images, kept for the double backward (a factor of 6 covers the
    explicit backward and the graph of the second). Models without an explicit layer sequence
    (vmap path) get a deliberately generous estimate. An estimate, not a measurement: the
    chunk size it gives is recorded in each result's metadata.
    """
    p0 = next(model.parameters())
    d = batch * int(np.prod(shape)) + batch * num_outputs(model)
    opt_floats = (2 * config.history_size + 6) * d if config.optimizer == "lbfgs" else 6 * d
    param_floats = sum(p.numel() for p in model.parameters())
    layers = getattr(model, "sequence", None)
    acts = 0
    with torch.no_grad():
        x = torch.zeros(1, *shape, device=p0.device, dtype=p0.dtype)
        for layer in (layers() if callable(layers) else [model]):
            y = layer(x)
            if isinstance(layer, nn.Conv2d):  # input patch volume C*k*k per output position (conv workspace)
                acts += x.shape[1] * layer.kernel_size[0] * layer.kernel_size[1] * y.shape[2] * y.shape[3]
            acts += y.numel()
            x = y
    if not callable(layers):  # vmap path: per-attack copies of every parameter gradient, and the
        acts = max(acts, 8 * int(np.prod(shape))) * 20  # activations we did not walk: stay cautious
    return p0.element_size() * (opt_floats + 6 * batch * (acts + param_floats) + 4 * param_floats)


def memory_budget(device: str | torch.device) -> int:
    """Bytes the engine may use: 50% of the GPU's total memory, or 25% of the machine's RAM.

    Taken from the totals, not from what is free at the moment, so that the same machine always
    chunks a sweep the same way (float32 results depend, at rounding level, on the batch size).
    ``$WDLG_MEMORY_BUDGET_MB`` overrides it.
    """
    env = os.environ.get("WDLG_MEMORY_BUDGET_MB")
    if env:
        return int(float(env) * 2 ** 20)
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(0.5 * torch.cuda.get_device_properties(dev).total_memory)
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        total = 8 * 2 ** 30
    return int(0.25 * total)


def chunk_size(n: int, per_attack: int, budget: int, max_chunk: int = 512) -> int:
    """How many attacks fit in one chunk: min(n, budget // per_attack, max_chunk), at least 1."""
    return max(1, min(n, budget // max(per_attack, 1), max_chunk))


@dataclass
class BatchPlan:
    """How :func:`run_attacks` splits N attacks: chunk size and the estimate behind it."""

    n: int
    chunk: int
    bytes_per_attack: int
    budget: int


def plan(model: nn.Module, shape, batch: int, config: AttackConfig, n: int, device="cpu",
         max_chunk: int = 512) -> BatchPlan:
    """The chunking :func:`run_attacks` will use for ``n`` attacks."""
    per = bytes_per_attack(model, tuple(shape), batch, config)
    budget = memory_budget(device)
    return BatchPlan(n, chunk_size(n, per, budget, max_chunk), per, budget)


def run_attacks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, configs: list[AttackConfig], *,
                defense=None, path: str = "auto", max_chunk: int = 512, progress=None, on_result=None,
                desc: str = "attacks") -> list[AttackResult]:
    """Run N attacks in memory-sized chunks of :func:`run_batch`.

    Args:
        model, images (N, B, C, H, W), labels (N, B), configs, defense, path: see :func:`run_batch`
            (a list of N per-attack defences is split with the chunks).
        max_chunk: upper bound on the chunk size.
        progress: tqdm bars over chunks and iterations (None: only on a terminal).
        on_result: called as ``on_result(index, result)`` for each attack of a chunk as soon
            as the chunk finishes (the store saves there, one record per attack: an interrupted
            run keeps every finished chunk and loses only the chunk in progress, at most
            ``max_chunk`` attacks; pass a smaller ``max_chunk`` for finer checkpoints).

    Returns:
        N results in input order.
    """
    from tqdm.auto import tqdm

    n = images.shape[0]
    if len(configs) != n or labels.shape[:1] != images.shape[:1]:
        raise ValueError(f"got {n} image batches, {labels.shape[0]} label rows and {len(configs)} configs")
    if n == 0:
        return []
    device = next(model.parameters()).device
    p = plan(model, images.shape[2:], images.shape[1], configs[0], n, device, max_chunk)
    results: list[AttackResult] = []
    starts = range(0, n, p.chunk)
    bar = tqdm(starts, desc=desc, unit="chunk", disable=(False if progress else None if progress is None else True)) \
        if len(starts) > 1 else starts
    for s in bar:
        e = min(n, s + p.chunk)
        part = defense if defense is None or callable(defense) else list(defense)[s:e]
        chunk = run_batch(model, images[s:e], labels[s:e], configs[s:e], defense=part, path=path,
                          progress=progress, desc=f"{desc} {s + 1}-{e}/{n}")
        for j, r in enumerate(chunk):
            r.meta["engine"]["chunk"] = p.chunk
            if on_result is not None:
                on_result(s + j, r)
        results.extend(chunk)
    return results
