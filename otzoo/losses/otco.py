"""OTCO: InfoNCE over OT-transformed pairs (Kumaran, Mittal & Owsesney, slides)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ._base import ContrastiveLoss, check_positive
from .registry import register_loss
from .sinkhorn import entropic_log_plan

__all__ = ["OTCOLoss", "symmetric_infonce"]


def symmetric_infonce(x: Tensor, y: Tensor, tau: float) -> Tensor:
    """Mean of the row- and column-wise cross-entropies of ``x yᵀ / τ`` (diagonal positives)."""
    logits = x @ y.T / tau
    labels = torch.arange(x.shape[0], device=x.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


@register_loss("otco")
class OTCOLoss(ContrastiveLoss):
    """OTCO adapted to two image views: ``v = ẑ1`` and ``t = ẑ2`` play the two modalities.

    ``σ`` = balanced entropic OT plan between v and t (cost ``1 − cos``, marginals 1/B,
    ``iters`` iterations, no grad), OT-transformed features ``v' = normalize(B·σ t)``,
    ``t' = normalize(B·σᵀ v)``; the loss is the mean of three symmetric InfoNCE terms
    (temperature τ; each the average of row- and column-wise cross-entropy) over the
    ``B x B`` similarities of ``(v, t)``, ``(v', t)`` and ``(v, t')``, positives on the
    diagonal, every misaligned pair a negative.

    Deviation from the slides: the plan is recomputed every step; the slides' cache of plans
    across Δ batches cannot be applied to a new batch of different images.

    Args:
        tau: temperature (default 0.5); epsilon: OT ε (default 0.1); iters: Sinkhorn
        iterations (default 20); tol, domain: Sinkhorn options; gather_distributed.

    Shapes: ``z1, z2 (B, D)`` -> scalar; ``plan`` -> ``σ (B, B)`` (mass 1).
    """

    name = "otco"
    plan_layout = "cross_view"

    def __init__(self, tau: float = 0.5, epsilon: float = 0.1, iters: int = 20,
                 tol: Optional[float] = None, domain: str = "auto",
                 gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self.tau = check_positive(self.name, "tau", tau)
        self.epsilon = check_positive(self.name, "epsilon", epsilon)
        self._sinkhorn_options(iters, tol, domain)

    def _hparams(self):
        return ("tau", "epsilon", "iters", "tol", "domain")

    def objective(self, z1: Tensor, z2: Tensor, plan: Tensor) -> Tensor:
        """The loss with ``σ`` held fixed at ``plan (B, B)``."""
        v, t = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        sigma = plan.detach().to(v.dtype) * v.shape[0]
        v_ot, t_ot = F.normalize(sigma @ t, dim=1), F.normalize(sigma.T @ v, dim=1)
        return (symmetric_infonce(v, t, self.tau) + symmetric_infonce(v_ot, t, self.tau)
                + symmetric_infonce(v, t_ot, self.tau)) / 3

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        return self.objective(z1, z2, self._plan(z1, z2))

    def _plan(self, z1: Tensor, z2: Tensor) -> Tensor:
        v, t = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        return entropic_log_plan(1 - v @ t.T, self.epsilon, self.iters, tol=self.tol,
                                 domain=self.domain, cost_bound=2.0).exp()
