"""The tests' oracle for the batched L-BFGS: one problem, a plain loop over Python lists.

It mirrors torch 2.13 ``torch.optim.LBFGS.step`` with ``max_iter=1`` and adds our optional
Armijo backtracking and divergence freezing, the algorithm of
:class:`wdlg_core.optim.BatchedLBFGS` for a single attack. ``tests/test_optim.py`` compares it
with torch and with the batched class attack by attack; ``tests/reference_attack.py`` runs
the one-attack reference loop with it.
"""
from __future__ import annotations

import torch
from torch import Tensor

from wdlg_core.optim import CURVATURE_EPS, _check_line_search


class LBFGSReference:
    """Single-problem L-BFGS, the same algorithm as :class:`BatchedLBFGS`, as a plain loop.

    Mirrors torch 2.13 ``torch.optim.LBFGS.step`` with ``max_iter=1`` (history kept in
    Python lists, the two-loop recursion of Nocedal & Wright Algorithm 7.4), plus the same
    optional Armijo backtracking and divergence freezing. Used by the tests as the
    attack-by-attack reference of the batched class.

    Args:
        x: (D,) float tensor, updated in place.
        lr, history_size, tolerance_grad, tolerance_change, line_search, max_ls, c1, shrink:
            as in :class:`BatchedLBFGS`.

    ``step(closure)``: ``closure(x) -> (loss 0-d tensor, grad (D,))``; returns the loss at
    the start point. Attributes: ``x``, ``diverged``, ``converged`` (Armijo: stopped for good
    by a termination test, as in :class:`BatchedLBFGS`), ``func_evals``, ``n_iter``,
    ``moved``, ``loss``.
    """

    def __init__(self, x: Tensor, lr: float = 1.0, history_size: int = 100,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 line_search: str | None = None, max_ls: int = 10, c1: float = 1e-4,
                 shrink: float = 0.5):
        if not isinstance(x, Tensor) or x.dim() != 1 or not x.is_floating_point():
            raise ValueError("x must be a 1-D floating-point tensor")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {history_size}")
        _check_line_search(line_search, max_ls, c1, shrink)
        self.x = x.detach()
        self.lr, self.m = float(lr), int(history_size)
        self.tolerance_grad, self.tolerance_change = tolerance_grad, tolerance_change
        self.line_search, self.max_ls, self.c1, self.shrink = line_search, max_ls, c1, shrink
        self.old_dirs, self.old_stps, self.ro = [], [], []  # y's, s's, 1/(y.s)
        self.H_diag = 1.0
        self.d = self.t = self.prev_flat_grad = None
        self.n_iter = 0
        self.func_evals = 0
        self.diverged = False
        self.converged = False
        self.moved = False
        self.loss = float("nan")
        self._x_ok = self.x.clone()
        self._cache = None

    def objective_changed(self) -> None:
        """The closure's function changed: the next step evaluates its start point again."""
        self._cache = None

    def _eval(self, closure, x):
        with torch.enable_grad():
            loss, grad = closure(x)
        self.func_evals += 1
        loss, grad = loss.detach(), grad.detach()
        return loss, grad, bool(torch.isfinite(loss)) and bool(torch.isfinite(grad).all())

    @torch.no_grad()
    def step(self, closure) -> Tensor:
        """One iteration (see the class docstring); a diverged problem does nothing, and a
        converged one (Armijo only) returns its last loss without evaluating."""
        self.moved = False
        if self.diverged:
            return torch.tensor(float("nan"))
        if self.converged:
            return torch.tensor(self.loss)
        if self._cache is not None:
            loss, g = self._cache
            self._cache = None
        else:
            loss, g, finite = self._eval(closure, self.x)
            if not finite:  # freeze at the last finite iterate
                self.diverged = True
                self.x.copy_(self._x_ok)
                return loss
            self._x_ok = self.x.clone()
            self.loss = float(loss)

        if self.line_search is not None:
            self._cache = (loss, g)  # x only changes below, where the cache is replaced
        if g.abs().max() <= self.tolerance_grad:
            self.converged = self.line_search is not None
            return loss
        self.n_iter += 1
        if self.n_iter == 1:
            d = g.neg()
            self.old_dirs, self.old_stps, self.ro = [], [], []
            self.H_diag = 1
        else:
            y = g.sub(self.prev_flat_grad)
            s = self.d.mul(self.t)
            ys = y.dot(s)
            if ys > CURVATURE_EPS:
                if len(self.old_dirs) == self.m:
                    self.old_dirs.pop(0)
                    self.old_stps.pop(0)
                    self.ro.pop(0)
                self.old_dirs.append(y)
                self.old_stps.append(s)
                self.ro.append(1.0 / ys)
                self.H_diag = ys / y.dot(y)
            num_old = len(self.old_dirs)
            al = [None] * num_old
            q = g.neg()
            for i in range(num_old - 1, -1, -1):
                al[i] = self.old_stps[i].dot(q) * self.ro[i]
                q.add_(self.old_dirs[i], alpha=-al[i])
            d = r = torch.mul(q, self.H_diag)
            for i in range(num_old):
                be_i = self.old_dirs[i].dot(r) * self.ro[i]
                r.add_(self.old_stps[i], alpha=al[i] - be_i)
        self.prev_flat_grad = g.clone()
        if self.n_iter == 1:
            t = min(1.0, 1.0 / g.abs().sum()) * self.lr
        else:
            t = self.lr
        self.d, self.t = d, t
        gtd = g.dot(d)
        if gtd > -self.tolerance_change:
            self.converged = self.line_search is not None
            return loss

        if self.line_search is None:
            self.x.add_(d, alpha=t)
            self.moved = True
            return loss
        # Armijo backtracking (our algorithm, see the BatchedLBFGS docstring)
        f0 = loss
        seen_finite = False
        for _ in range(self.max_ls):
            xt = self.x + t * d
            ft, gt, finite = self._eval(closure, xt)
            seen_finite = seen_finite or finite
            if finite and ft <= f0 + self.c1 * t * gtd:
                self.x.copy_(xt)
                self.t = t
                self.moved = True
                self._x_ok = self.x.clone()
                self.loss = float(ft)
                self._cache = (ft, gt)
                # torch's lack-of-progress tests end the attack here
                self.converged = bool(abs(float(ft) - float(f0)) < self.tolerance_change
                                      or float((d * t).abs().max()) <= self.tolerance_change)
                return loss
            t = t * self.shrink
        self.diverged = not seen_finite
        # failed from a steepest-descent start: the next step would repeat it exactly
        self.converged = seen_finite and self.n_iter == 1
        self.n_iter = 0  # failed: stay, forget the history
        self.old_dirs, self.old_stps, self.ro = [], [], []
        return loss


