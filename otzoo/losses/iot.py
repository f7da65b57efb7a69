"""IOT-CL: contrastive learning as inverse optimal transport (Shi et al., ICML 2023)."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ._base import ContrastiveLoss, at_positives, check_choice, check_positive, diagonal_mask, positives
from .functional import stacked_log_kernel
from .registry import register_loss
from .sinkhorn import kernel_for_domain, log_plan, sinkhorn

__all__ = ["IOTLoss", "IOTUniformLoss"]

CONSTRAINTS = ("u1", "ua", "uab")


class _IOTBase(ContrastiveLoss):
    def _init_iot(self, epsilon, constraint, iters, tol, domain):
        self.epsilon = check_positive(self.name, "epsilon", epsilon)
        self.constraint = check_choice(self.name, "constraint", constraint, CONSTRAINTS)
        self._sinkhorn_options(iters, tol, domain)

    def _log_plan(self, z1: Tensor, z2: Tensor) -> Tensor:
        """``log P`` (total mass n) of the constraint set, ``(2B, 2B)``."""
        lk = stacked_log_kernel(z1, z2, self.epsilon)
        n = lk.shape[0]
        if self.constraint == "u1":
            return lk - torch.logsumexp(lk.flatten(), 0) + math.log(n)
        if self.constraint == "ua":
            return lk.log_softmax(dim=1)
        f, g = sinkhorn(lk, self.iters, tol=self.tol, kernel=kernel_for_domain(lk, self.domain, 2 / self.epsilon))
        return log_plan(lk, f, g)

    def _iot_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        # the same value as −mean log P_{i,t(i)} (+ log n for u1), without the n x n log P
        lk = stacked_log_kernel(z1, z2, self.epsilon)
        n = lk.shape[0]
        if self.constraint == "u1":
            return torch.logsumexp(lk.flatten(), 0) - at_positives(lk).mean()
        if self.constraint == "ua":
            return F.cross_entropy(lk, positives(n, lk.device))
        f, g = sinkhorn(lk, self.iters, tol=self.tol, kernel=kernel_for_domain(lk, self.domain, 2 / self.epsilon))
        return -(at_positives(lk) + f + g[positives(n, lk.device)]).mean()

    def _plan(self, z1: Tensor, z2: Tensor) -> Tensor:
        return self._log_plan(z1, z2).exp()


@register_loss("iot")
class IOTLoss(_IOTBase):
    """IOT-CL loss (Shi et al., "Understanding and generalizing contrastive learning from the
    inverse optimal transport perspective", ICML 2023), on the 2B stacked views.

    ``ℓ_ij = −(1 − S_ij)/ε``, ``ℓ_ii = −inf`` (a view is never its own match). Coupling ``P``
    of total mass n under the constraint set:

    - ``"u1"``:  ``log P = ℓ − LSE_{k,l} ℓ_kl + log n``; ``L = −(1/n) Σ_i log P_{i,t(i)} + log n``
      (the paper's Eq. 20: one softmax over all entries).
    - ``"ua"``:  row softmax; ``L`` = InfoNCE with ``τ = ε`` (Eq. 13).
    - ``"uab"``: ``iters`` balanced Sinkhorn iterations (K of the paper);
      ``L = −(1/n) Σ_i log P_{i,t(i)}`` (= ``gca_ince`` with ``iters = K``).

    Args:
        epsilon: ε (default 0.5); constraint: ``"u1" | "ua" | "uab"`` (default ``"uab"``);
        iters: K (default 2, the paper's best CIFAR-10 setting; used by ``"uab"`` only);
        tol, domain: Sinkhorn early stop / domain; gather_distributed: global batch.

    Shapes: ``z1, z2 (B, D)`` -> scalar; ``plan`` -> ``P (2B, 2B)``.
    """

    name = "iot"

    def __init__(self, epsilon: float = 0.5, constraint: str = "uab", iters: int = 2,
                 tol: Optional[float] = None, domain: str = "auto",
                 gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self._init_iot(epsilon, constraint, iters, tol, domain)

    def _hparams(self):
        return ("epsilon", "constraint", "iters", "tol", "domain")

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        return self._iot_loss(z1, z2)


@register_loss("iot_uni")
class IOTUniformLoss(_IOTBase):
    """IOT-CL with the uniformity penalty on the coupling (Shi et al., ICML 2023, Eq. 24).

    ``L = L_IOT + λ_p · KL(Q̄‖P)`` with ``P`` the coupling of :class:`IOTLoss` for
    ``constraint``, ``m`` = the mean of ``P`` over all negative entries (``i ≠ j``,
    ``j ≠ t(i)``; a scalar, not detached), ``Q̄`` = ``P`` on the positives and ``m`` on the
    negatives, the diagonal excluded:
    ``KL term = (1/n) Σ_i Σ_{j negative} m·(log m − log P_ij)`` (positives contribute 0).

    Args:
        epsilon: ε (default 0.5); constraint: default ``"ua"`` (the paper's Table 2 setting);
        iters: K for ``"uab"`` (default 2); lambda_p: penalty weight λ_p (default 0.5);
        tol, domain, gather_distributed: as in :class:`IOTLoss`.

    Shapes: ``z1, z2 (B, D)`` -> scalar; ``plan`` -> ``P (2B, 2B)``.
    """

    name = "iot_uni"

    def __init__(self, epsilon: float = 0.5, constraint: str = "ua", iters: int = 2,
                 lambda_p: float = 0.5, tol: Optional[float] = None, domain: str = "auto",
                 gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self._init_iot(epsilon, constraint, iters, tol, domain)
        self.lambda_p = check_positive(self.name, "lambda_p", lambda_p, allow_zero=True)

    def _hparams(self):
        return ("epsilon", "constraint", "iters", "lambda_p", "tol", "domain")

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        # Every sum over the n x n log P is reduced to O(n) and O(nd) terms, since
        # log P_ij = ℓ_ij + f_i + g_j off the diagonal and Σ_{i≠j} S_ij = ‖Σ ẑ‖² − Σ ‖ẑ_i‖²;
        # the value is the definition's (checked against a loop reference in the tests).
        zhat = F.normalize(torch.cat([z1, z2]), dim=1)
        s = zhat @ zhat.T
        n = s.shape[0]
        lk = ((s - 1) / self.epsilon).masked_fill(diagonal_mask(n, s.device), float("-inf"))
        t = positives(n, s.device)
        if self.constraint == "u1":
            f = (math.log(n) - torch.logsumexp(lk.flatten(), 0)).expand(n)
            g = torch.zeros_like(f)
            mass = n
        elif self.constraint == "ua":
            f = -torch.logsumexp(lk, dim=1)
            g = torch.zeros_like(f)
            mass = n
        else:
            kernel = kernel_for_domain(lk, self.domain, 2 / self.epsilon)
            f, g = sinkhorn(lk, self.iters, tol=self.tol, kernel=kernel)
            if kernel is not None:
                mass = (f.exp() @ kernel) @ g.exp()
            else:
                mass = torch.logsumexp(log_plan(lk, f, g).flatten(), 0).exp()
        log_pos = at_positives(lk) + f + g[t]
        base = -log_pos.mean() + (math.log(n) if self.constraint == "u1" else 0.0)
        total = zhat.sum(0)
        sum_offdiag_s = total @ total - (zhat * zhat).sum()
        sum_offdiag_l = (sum_offdiag_s - n * (n - 1)) / self.epsilon
        sum_log_neg = sum_offdiag_l + (n - 1) * (f.sum() + g.sum()) - log_pos.sum()
        count = n * (n - 2)
        m = (mass - log_pos.exp().sum()) / count
        return base + self.lambda_p * (count * m * m.log() - m * sum_log_neg) / n
