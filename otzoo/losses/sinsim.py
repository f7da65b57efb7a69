"""SinSim: Sinkhorn-regularised SimCLR (Sepanj & Fieguth)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ._base import ContrastiveLoss, check_positive
from .infonce import InfoNCELoss
from .functional import cross_view_cost, plan_entropy_term
from .registry import register_loss
from .sinkhorn import entropic_log_plan

__all__ = ["SinSimLoss"]


@register_loss("sinsim")
class SinSimLoss(ContrastiveLoss):
    """SinSim (Sepanj & Fieguth, "SinSim: Sinkhorn-Regularized SimCLR"): SimCLR on the
    projections plus a Sinkhorn (entropic OT) term on the backbone features.

    Called as ``loss(z1, z2, h1=, h2=)`` with ``z (B, D)`` projector outputs and
    ``h (B, F)`` backbone features of the same images.
    ``L = InfoNCE_τ(z1, z2) + β · W(h1, h2)``,
    ``W = <P*, C> + ε_h Σ P* log P*``, ``C_ij = ‖ĥ1_i − ĥ2_j‖²`` (L2-normalised features),
    ``P*`` the entropic OT plan with uniform marginals 1/B after ``iters`` iterations,
    computed under no_grad (Danskin: the gradient of W is ``<P*, ∂C>``).

    The paper fixes neither the cost, ε nor β: squared distance of normalised features,
    ``epsilon_h = 0.1`` and ``beta = 0.5`` are otzoo's defaults; ``iters = 10`` is the
    paper's default count.

    Args:
        tau: SimCLR temperature (default 0.5); beta: weight β of W (default 0.5);
        epsilon_h: ε of the feature OT (default 0.1); iters: Sinkhorn iterations (10);
        tol, domain: Sinkhorn early stop / domain; gather_distributed: global batch.

    Shapes: ``z1, z2 (B, D)``, ``h1, h2 (B, F)`` -> scalar; ``plan`` -> ``P* (B, B)`` on h.
    """

    name = "sinsim"
    plan_layout = "cross_view"
    extras = ("h1", "h2")

    def __init__(self, tau: float = 0.5, beta: float = 0.5, epsilon_h: float = 0.1,
                 iters: int = 10, tol: Optional[float] = None, domain: str = "auto",
                 gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self.tau = check_positive(self.name, "tau", tau)
        self.beta = check_positive(self.name, "beta", beta, allow_zero=True)
        self.epsilon_h = check_positive(self.name, "epsilon_h", epsilon_h)
        self._sinkhorn_options(iters, tol, domain)
        self._simclr = InfoNCELoss(tau=self.tau)

    def _hparams(self):
        return ("tau", "beta", "epsilon_h", "iters", "tol", "domain")

    def _check_pairs(self, t) -> None:
        if t["h1"].shape != t["h2"].shape:
            raise ValueError(f"sinsim: h1 and h2 must have the same shape, got "
                             f"{tuple(t['h1'].shape)} and {tuple(t['h2'].shape)}")

    def objective(self, z1: Tensor, z2: Tensor, plan: Tensor, h1: Tensor, h2: Tensor) -> Tensor:
        """The loss with the feature plan held fixed at ``plan (B, B)``."""
        return self._objective(z1, z2, plan, cross_view_cost(h1, h2))

    def _objective(self, z1, z2, plan, c):
        plan = plan.detach().to(c.dtype)
        with torch.no_grad():  # constant at a fixed plan
            entropy = self.epsilon_h * plan_entropy_term(plan.log())
        return self._simclr._loss(z1, z2) + self.beta * ((plan * c).sum() + entropy)

    def _loss(self, z1: Tensor, z2: Tensor, h1: Tensor, h2: Tensor) -> Tensor:
        c = cross_view_cost(h1, h2)
        return self._objective(z1, z2, self._plan_from_cost(c), c)

    def _plan_from_cost(self, c: Tensor) -> Tensor:
        return entropic_log_plan(c, self.epsilon_h, self.iters, tol=self.tol,
                                 domain=self.domain, cost_bound=4.0).exp()

    def _plan(self, z1: Tensor, z2: Tensor, h1: Tensor, h2: Tensor) -> Tensor:
        return self._plan_from_cost(cross_view_cost(h1, h2))
