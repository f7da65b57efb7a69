"""The matching gap (Self-supervised learning with the matching gap, ICLR 2024 submission)."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from ._base import ContrastiveLoss, check_positive
from .functional import cross_view_cost, plan_entropy_term
from .registry import register_loss
from .sinkhorn import entropic_log_plan

__all__ = ["MatchingGapLoss"]


@register_loss("matching_gap")
class MatchingGapLoss(ContrastiveLoss):
    """Matching gap: mean paired cost minus the entropic optimal matching cost.

    Cross-view cost ``C_ij = ‖ẑ1_i − ẑ2_j‖²``; ``P*`` = entropic OT plan (marginals 1/B,
    ``iters`` Sinkhorn iterations, no grad);
    ``MG = (1/B) Σ_i C_ii − [<P*, C> + ε Σ P* log P*] − ε log B`` (``≥ 0`` at convergence).
    Gradient by Danskin's theorem: ``forward`` returns MG's value carrying the gradient of
    the surrogate ``<I/B − P*, C>``.

    Args:
        epsilon: ε (default 0.1); iters: Sinkhorn iterations (default 50);
        tol: optional early stop; domain: ``"auto"`` runs the scaling domain when it cannot
        underflow, with the same plan as the log domain (tested); gather_distributed.

    Shapes: ``z1, z2 (B, D)`` -> scalar; ``plan`` -> ``P* (B, B)`` (mass 1).
    """

    name = "matching_gap"
    plan_layout = "cross_view"

    def __init__(self, epsilon: float = 0.1, iters: int = 50, tol: Optional[float] = None,
                 domain: str = "auto", gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self.epsilon = check_positive(self.name, "epsilon", epsilon)
        self._sinkhorn_options(iters, tol, domain)

    def _hparams(self):
        return ("epsilon", "iters", "tol", "domain")

    def objective(self, z1: Tensor, z2: Tensor, plan: Tensor) -> Tensor:
        """MG at a fixed plan (value of MG, gradient of ``<I/B − plan, C>``)."""
        return self._objective(plan, cross_view_cost(z1, z2))

    def _objective(self, plan: Tensor, c: Tensor) -> Tensor:
        b = c.shape[0]
        plan = plan.detach().to(c.dtype)
        sur = c.diagonal().mean() - (plan * c).sum()
        with torch.no_grad():
            mg = sur - self.epsilon * plan_entropy_term(plan.log()) - self.epsilon * math.log(b)
        return mg + sur - sur.detach()

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        c = cross_view_cost(z1, z2)
        return self._objective(self._plan_from_cost(c), c)

    def _plan_from_cost(self, c: Tensor) -> Tensor:
        return entropic_log_plan(c, self.epsilon, self.iters, tol=self.tol, domain=self.domain,
                                 cost_bound=4.0).exp()

    def _plan(self, z1: Tensor, z2: Tensor) -> Tensor:
        return self._plan_from_cost(cross_view_cost(z1, z2))
