"""BYOL's symmetrised regression loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._base import ContrastiveLoss
from .registry import register_loss

__all__ = ["BYOLLoss"]


@register_loss("byol")
class BYOLLoss(ContrastiveLoss):
    """BYOL (Grill et al., NeurIPS 2020), the negative-free member of the GCA family.

    Called as ``loss(p1, p2, t1=, t2=)``: ``p`` = online predictor outputs ``(B, D)``,
    ``t`` = EMA target projections ``(B, D)`` (detached inside the loss).
    ``L = mean_i(2 − 2 cos(p1_i, t2_i)) + mean_i(2 − 2 cos(p2_i, t1_i))``.
    The EMA schedule belongs to the training method.

    ``plan`` returns the row-softmax coupling of GCA's Theorem 4 kernel
    ``exp(−‖p̂1_i − t̂2_j‖)``, ``(B, B)``.
    """

    name = "byol"
    plan_layout = "cross_view"
    extras = ("t1", "t2")

    def __init__(self, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)

    def _check_pairs(self, t) -> None:
        if t["t1"].shape != t["z1"].shape or t["t2"].shape != t["z2"].shape:
            raise ValueError(f"byol: t1, t2 must have the shape of p1, p2 {tuple(t['z1'].shape)}, "
                             f"got {tuple(t['t1'].shape)} and {tuple(t['t2'].shape)}")

    def _loss(self, z1: Tensor, z2: Tensor, t1: Tensor, t2: Tensor) -> Tensor:
        p1, p2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        t1, t2 = F.normalize(t1.detach(), dim=1), F.normalize(t2.detach(), dim=1)
        return (2 - 2 * (p1 * t2).sum(1)).mean() + (2 - 2 * (p2 * t1).sum(1)).mean()

    def _plan(self, z1: Tensor, z2: Tensor, t1: Tensor, t2: Tensor) -> Tensor:
        p1, t2 = F.normalize(z1, dim=1), F.normalize(t2, dim=1)
        return (-torch.cdist(p1, t2)).softmax(dim=1)
