"""SimCLR / InfoNCE (NT-Xent over the 2B views)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ._base import ContrastiveLoss, check_positive, positives
from .functional import masked_logits
from .registry import register_loss

__all__ = ["InfoNCELoss"]


@register_loss("simclr", aliases=("ince",))
class InfoNCELoss(ContrastiveLoss):
    """SimCLR's NT-Xent / InfoNCE loss (Chen et al., ICML 2020; the INCE of Chen et al.,
    NeurIPS 2024, "Your contrastive learning problem is secretly a distribution alignment
    problem").

    ``L = (1/n) Σ_i [ LSE_{j≠i} S_ij/τ − S_{i,t(i)}/τ ]`` with ``S = ẑ ẑᵀ`` the cosine
    similarities of ``cat([z1, z2])`` (``n = 2B`` rows) and ``t(i) = (i + B) mod n``.

    Args:
        tau: temperature τ (default 0.5).
        gather_distributed: compute the loss on the batch gathered from all ranks.

    Shapes: ``z1, z2 (B, D)`` -> scalar. ``plan``: the row-softmax coupling ``(2B, 2B)``.
    """

    name = "simclr"

    def __init__(self, tau: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self.tau = check_positive(self.name, "tau", tau)

    def _hparams(self):
        return ("tau",)

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        logits = masked_logits(z1, z2, self.tau)
        return F.cross_entropy(logits, positives(logits.shape[0], logits.device))

    def _plan(self, z1: Tensor, z2: Tensor) -> Tensor:
        return masked_logits(z1, z2, self.tau).softmax(dim=1)
