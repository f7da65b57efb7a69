"""Generalized contrastive alignment (GCA): GCA-INCE, GCA-RINCE and GCA-UOT.

Chen, Lin, Liu, Xiao & Dyer, "Your contrastive learning problem is secretly a
distribution alignment problem", NeurIPS 2024 (reference code: nerdslab/gca). otzoo
implements the definitions of its spec (docs: losses.md), not a bug-compatible copy of
the reference code.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._base import (ContrastiveLoss, at_positives, check_positive, check_unit_interval, diagonal_mask, positives,
                    stacked_similarity)
from .functional import rince_terms, stacked_log_kernel
from .registry import register_loss
from .sinkhorn import kernel_for_domain, log_plan, row_logsumexp, sinkhorn, uot_kappa
from .targets import normalize_target

__all__ = ["GCAINCELoss", "GCARINCELoss", "GCAUOTLoss"]


class _SinkhornLoss(ContrastiveLoss):
    def _init_sinkhorn(self, epsilon, iters, tol, domain):
        self.epsilon = check_positive(self.name, "epsilon", epsilon)
        self._sinkhorn_options(iters, tol, domain)

    def _init_target(self, target: Optional[Tensor]) -> None:
        self.register_buffer("target", None if target is None else normalize_target(target, self.name))

    def _target_for(self, n: int, like: Tensor) -> Tensor:
        if self.target.shape[0] != n:
            raise ValueError(f"{self.name}: target is {tuple(self.target.shape)} but the (gathered) "
                             f"batch has n = 2B = {n} views; build it for this batch size")
        return self.target.to(device=like.device, dtype=like.dtype)


@register_loss("gca_ince")
class GCAINCELoss(_SinkhornLoss):
    """GCA-INCE: InfoNCE's target matched by a balanced Sinkhorn plan (GCA paper, Sec. 4.1).

    ``ℓ_ij = −(1 − S_ij)/ε`` (``ℓ_ii = −inf``); ``P`` = balanced, unit-marginal Sinkhorn of
    ``ℓ`` after ``iters`` (row step, column step) iterations from ``f = g = 0``;
    ``L = −(1/n) Σ_i log P_{i,t(i)}`` (``= KL(Π‖P)`` + const), gradients through the
    unrolled iterations. After only the first row step this is InfoNCE with ``τ = ε``.
    With ``target`` (e.g. :func:`domain_target`), ``L = −(1/n) Σ_ij P̂_ij log P_ij``.

    Args:
        epsilon: entropic regularisation ε (default 0.5).
        iters: full Sinkhorn iterations (default 10; 0 gives the raw kernel).
        target: optional ``(2B, 2B)`` target plan (rows are normalised).
        tol: optional early stop on the potentials' change (default None: all iterations).
        domain: ``"auto"`` (scaling domain when it cannot underflow), ``"log"``, ``"scaling"``.
        gather_distributed: compute the loss on the batch gathered from all ranks.

    Shapes: ``z1, z2 (B, D)`` -> scalar; ``plan`` -> ``P (2B, 2B)``.
    """

    name = "gca_ince"

    def __init__(self, epsilon: float = 0.5, iters: int = 10, target: Optional[Tensor] = None,
                 tol: Optional[float] = None, domain: str = "auto",
                 gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self._init_sinkhorn(epsilon, iters, tol, domain)
        self._init_target(target)

    def _hparams(self):
        return ("epsilon", "iters", "tol", "domain")

    def _solve(self, z1, z2) -> Tuple[Tensor, Tensor, Tensor]:
        lk = stacked_log_kernel(z1, z2, self.epsilon)
        f, g = sinkhorn(lk, self.iters, tol=self.tol, kernel=kernel_for_domain(lk, self.domain, 2 / self.epsilon))
        return lk, f, g

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        lk, f, g = self._solve(z1, z2)
        n = lk.shape[0]
        if self.target is None:
            return -(at_positives(lk) + f + g[positives(n, lk.device)]).mean()
        tgt = self._target_for(n, lk)
        logp = log_plan(lk, f, g)
        return -torch.where(tgt > 0, tgt * logp, torch.zeros_like(logp)).sum() / n

    def _plan(self, z1: Tensor, z2: Tensor) -> Tensor:
        return log_plan(*self._solve(z1, z2)).exp()


@register_loss("gca_rince")
class GCARINCELoss(_SinkhornLoss):
    """GCA-RINCE: RINCE on the Sinkhorn-rescaled kernel (GCA paper, Sec. 4.2, Eq. 13).

    Run ``iters`` balanced iterations on ``ℓ' = S/ε`` (diagonal ``−inf``; same plans as
    ``−(1 − S)/ε``), keep the column potential ``g`` and set ``log w_ij = ℓ'_ij + g_j``:
    ``L = (1/n) Σ_i [ −exp(q·log w_{i,t(i)})/q + exp(q·(log λ + LSE_j log w_ij))/q ]``.
    ``iters = 0`` gives RINCE with ``τ = ε`` exactly.

    Args:
        epsilon: ε (default 0.5); iters: full iterations (default 10, 0 allowed);
        q: exponent in (0, 1] (default 0.6); lam: λ > 0 (default 0.01);
        tol, domain, gather_distributed: as in :class:`GCAINCELoss`.

    Shapes: ``z1, z2 (B, D)`` -> scalar; ``plan`` -> ``P = exp(ℓ' + f ⊕ g) (2B, 2B)``.
    """

    name = "gca_rince"

    def __init__(self, epsilon: float = 0.5, iters: int = 10, q: float = 0.6, lam: float = 0.01,
                 tol: Optional[float] = None, domain: str = "auto",
                 gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self._init_sinkhorn(epsilon, iters, tol, domain)
        self.q = check_unit_interval(self.name, "q", q)
        self.lam = check_positive(self.name, "lam", lam)

    def _hparams(self):
        return ("epsilon", "iters", "q", "lam", "tol", "domain")

    def _solve(self, z1, z2):
        s = stacked_similarity(z1, z2)
        lk = (s / self.epsilon).masked_fill(diagonal_mask(s.shape[0], s.device), float("-inf"))
        kernel = kernel_for_domain(lk, self.domain, 2 / self.epsilon)
        f, g = sinkhorn(lk, self.iters, tol=self.tol, kernel=kernel)
        return lk, f, g, kernel

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        lk, _, g, kernel = self._solve(z1, z2)
        pos = at_positives(lk) + g[positives(lk.shape[0], lk.device)]
        return rince_terms(pos, row_logsumexp(lk, g, kernel), self.q, self.lam)

    def _plan(self, z1: Tensor, z2: Tensor) -> Tensor:
        lk, f, g, _ = self._solve(z1, z2)
        return log_plan(lk, f, g).exp()


@register_loss("gca_uot")
class GCAUOTLoss(_SinkhornLoss):
    """GCA-UOT: unbalanced (KL-relaxed marginals) Sinkhorn alignment (GCA paper, Sec. 3.3).

    ``ℓ = −(1 − S)/ε`` (diagonal ``−inf``), ``a = b = 1/n``, ``f = g = log(1/n)`` at start,
    ``κ_k = ρ_k/(ρ_k + ε)``; ``iters`` iterations of
    ``f_i ← κ1·(log a_i − LSE_j(ℓ_ij + g_j))``, ``g_j ← κ2·(log b_j − LSE_i(ℓ_ij + f_i))``;
    ``log P = ℓ + f ⊕ g``.

    ``L = r1·(1/n) Σ_i [LSE_j log P_ij − log P_{i,t(i)}]
        + r2·(1/n) Σ_i [−exp(q·(ℓ_{i,t(i)} + g_{t(i)}))/q + exp(q·(log λ − f_i))/q]``.

    The r2 term follows the reference code (it uses ``ℓ = −C/ε`` and depends on the batch
    size through ``a = 1/n``). ``target`` replaces ``Π`` in the r1 term:
    ``−(1/n) Σ_ij P̂_ij (log P_ij − LSE_k log P_ik)``. With ``ρ1 = ρ2 → ∞`` the plan is the
    balanced unit-marginal plan divided by n.

    Args:
        epsilon: ε (default 0.5); iters: full iterations (default 10);
        rho1, rho2: marginal relaxations ρ (default 0.2, the authors' CIFAR-10 config);
        q, lam: RINCE-like r2 term (default 0.6, 0.01);
        r1, r2: weights of the two terms (default 1.0, 0.2, the authors' CIFAR-10 command);
        target, tol, domain, gather_distributed: as in :class:`GCAINCELoss`.

    Shapes: ``z1, z2 (B, D)`` -> scalar; ``plan`` -> ``P (2B, 2B)`` (mass not 1).
    """

    name = "gca_uot"

    def __init__(self, epsilon: float = 0.5, iters: int = 10, rho1: float = 0.2,
                 rho2: float = 0.2, q: float = 0.6, lam: float = 0.01, r1: float = 1.0,
                 r2: float = 0.2, target: Optional[Tensor] = None, tol: Optional[float] = None,
                 domain: str = "auto", gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self._init_sinkhorn(epsilon, iters, tol, domain)
        self.rho1 = check_positive(self.name, "rho1", rho1)
        self.rho2 = check_positive(self.name, "rho2", rho2)
        self.q = check_unit_interval(self.name, "q", q)
        self.lam = check_positive(self.name, "lam", lam)
        self.r1 = check_positive(self.name, "r1", r1, allow_zero=True)
        self.r2 = check_positive(self.name, "r2", r2, allow_zero=True)
        self._init_target(target)

    def _hparams(self):
        return ("epsilon", "iters", "rho1", "rho2", "q", "lam", "r1", "r2", "tol", "domain")

    def _solve(self, z1, z2):
        lk = stacked_log_kernel(z1, z2, self.epsilon)
        kernel = kernel_for_domain(lk, self.domain, 2 / self.epsilon)
        log_a = -math.log(lk.shape[0])
        kappa = (uot_kappa(self.rho1, self.epsilon), uot_kappa(self.rho2, self.epsilon))
        f, g = sinkhorn(lk, self.iters, log_a=log_a, log_b=log_a, kappa=kappa, f0=log_a,
                        g0=log_a, tol=self.tol, kernel=kernel)
        return lk, f, g, kernel

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        lk, f, g, kernel = self._solve(z1, z2)
        n = lk.shape[0]
        lse = row_logsumexp(lk, g, kernel)  # LSE_j log P_ij − f_i
        pos = at_positives(lk) + g[positives(n, lk.device)]  # log P_{i,t(i)} − f_i
        if self.target is None:
            align = (lse - pos).mean()
        else:
            tgt = self._target_for(n, lk)
            logq = lk + g[None, :] - lse[:, None]
            align = -torch.where(tgt > 0, tgt * logq, torch.zeros_like(logq)).sum() / n
        return self.r1 * align + self.r2 * rince_terms(pos, -f, self.q, self.lam)

    def _plan(self, z1: Tensor, z2: Tensor) -> Tensor:
        lk, f, g, _ = self._solve(z1, z2)
        return log_plan(lk, f, g).exp()
