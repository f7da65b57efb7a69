"""RINCE: robust InfoNCE (Chuang et al., CVPR 2022)."""
from __future__ import annotations

import torch
from torch import Tensor

from ._base import ContrastiveLoss, check_positive, check_unit_interval, positives
from .functional import masked_logits, rince_terms
from .registry import register_loss

__all__ = ["RINCELoss"]


@register_loss("rince")
class RINCELoss(ContrastiveLoss):
    """Robust InfoNCE (Chuang et al., "Robust Contrastive Learning against Noisy Views",
    CVPR 2022), over the 2B stacked views.

    ``L = (1/n) Σ_i [ −exp(q·s⁺_i)/q + exp(q·(log λ + LSE_{j≠i} s_ij))/q ]`` with
    ``s = S/τ``, ``s⁺_i = s_{i,t(i)}``; the LSE includes the positive and excludes ``i``.
    This is Eq. (2) of the GCA paper: ``(λ Σ_{j≠i} e^{s_ij})^q / q``.

    Args:
        tau: temperature τ (default 0.5).
        q: robustness exponent in (0, 1] (default 0.6).
        lam: weight λ > 0 of the negatives' mass (default 0.01).
        gather_distributed: compute the loss on the batch gathered from all ranks.

    Shapes: ``z1, z2 (B, D)`` -> scalar. ``plan``: the row-softmax coupling ``(2B, 2B)``.
    """

    name = "rince"

    def __init__(self, tau: float = 0.5, q: float = 0.6, lam: float = 0.01,
                 gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self.tau = check_positive(self.name, "tau", tau)
        self.q = check_unit_interval(self.name, "q", q)
        self.lam = check_positive(self.name, "lam", lam)

    def _hparams(self):
        return ("tau", "q", "lam")

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        s = masked_logits(z1, z2, self.tau)
        pos = s.gather(1, positives(s.shape[0], s.device)[:, None]).squeeze(1)
        return rince_terms(pos, torch.logsumexp(s, dim=1), self.q, self.lam)

    def _plan(self, z1: Tensor, z2: Tensor) -> Tensor:
        return masked_logits(z1, z2, self.tau).softmax(dim=1)
