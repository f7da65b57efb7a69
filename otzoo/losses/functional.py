"""The math several losses share, as plain functions: each loss module imports these (and ``_base``,
``sinkhorn``), never another loss. Shapes: ``z1, z2 (B, D)`` views; ``S`` the ``(2B, 2B)`` cosine
similarities of the stacked batch ``cat([z1, z2])``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._base import diagonal_mask, stacked_similarity
from .sinkhorn import masked_log_kernel

__all__ = ["masked_logits", "stacked_log_kernel", "rince_terms", "cross_view_cost", "plan_entropy_term"]


def masked_logits(z1: Tensor, z2: Tensor, tau: float) -> Tensor:
    """``S / τ`` of the stacked batch with ``-inf`` on the diagonal, shape ``(2B, 2B)``."""
    s = stacked_similarity(z1, z2) / tau
    return s.masked_fill(diagonal_mask(s.shape[0], s.device), float("-inf"))


def stacked_log_kernel(z1: Tensor, z2: Tensor, epsilon: float) -> Tensor:
    """``ℓ = −(1 − S)/ε`` of the stacked batch, ``−inf`` on the diagonal, ``(2B, 2B)``."""
    return masked_log_kernel(1 - stacked_similarity(z1, z2), epsilon)


def rince_terms(pos: Tensor, lse: Tensor, q: float, lam: float) -> Tensor:
    """``mean(−exp(q·pos)/q + exp(q·(log λ + lse))/q)`` for per-row ``pos`` and ``lse``."""
    return (-(q * pos).exp() / q + (q * (math.log(lam) + lse)).exp() / q).mean()


def cross_view_cost(x: Tensor, y: Tensor) -> Tensor:
    """``C_ij = ‖x̂_i − ŷ_j‖²`` of L2-normalised rows, ``(B, B)``."""
    x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    return (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * (x @ y.T)


def plan_entropy_term(log_p: Tensor) -> Tensor:
    """``Σ P log P`` from ``log P`` (entries with ``P = 0`` contribute 0, never 0·log 0)."""
    p = log_p.exp()
    return torch.where(p > 0, p * log_p, torch.zeros_like(p)).sum()
