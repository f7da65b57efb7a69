"""Target plans for GCA (section 3.4 of the GCA paper): encode which pairs should match."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

__all__ = ["domain_target", "normalize_target"]


def domain_target(domains: Union[Sequence, Tensor], alpha: float = 0.0, beta: float = 0.0,
                  *, dtype: torch.dtype = torch.float32,
                  device: Optional[Union[str, torch.device]] = None) -> Tensor:
    """Row-normalised target plan ``P̂`` of shape ``(2B, 2B)`` from per-image domain labels.

    ``P_tgt = Π + α·[D_i = D_j, j ∉ {i, t(i)}] + β·[D_i ≠ D_j]`` with zero diagonal, where
    ``D = cat([domains, domains])`` (both views of image k share its domain), ``Π`` the
    positive-pair matrix (``t(i) = (i + B) mod 2B``), then every row divided by its sum.
    ``alpha = beta = 0`` gives ``Π`` itself, the default target of ``gca_ince``/``gca_uot``.

    Args:
        domains: length-B sequence or tensor of hashable domain (or class) labels.
        alpha: weight ≥ 0 of other images of the same domain.
        beta: weight ≥ 0 of images of other domains.

    Deviation from the paper (following otzoo's spec): the GCA paper adds α to *every*
    same-domain pair ``i ≠ j`` and does not normalise; here the positive keeps weight 1,
    and rows are normalised so the r1 term is a cross-entropy.
    """
    for name, v in (("alpha", alpha), ("beta", beta)):
        if not (float(v) >= 0) or float(v) == float("inf"):
            raise ValueError(f"domain_target: {name} must be finite and >= 0, got {v}")
    if isinstance(domains, Tensor):
        codes = domains.reshape(-1).to(device=device)
    else:
        lookup = {}
        codes = torch.tensor([lookup.setdefault(d, len(lookup)) for d in domains], device=device)
    b = codes.numel()
    if b < 2:
        raise ValueError(f"domain_target: needs labels for B >= 2 images, got {b}")
    d = torch.cat([codes, codes])
    n = 2 * b
    idx = torch.arange(n, device=d.device)
    eye = idx[:, None] == idx[None, :]
    pos = idx[None, :] == ((idx + b) % n)[:, None]
    same = d[:, None] == d[None, :]
    p = pos.to(dtype) + alpha * (same & ~eye & ~pos).to(dtype) + beta * (~same).to(dtype)
    return p / p.sum(dim=1, keepdim=True)


def normalize_target(target: Tensor, loss: str) -> Tensor:
    """Validate a user target plan (square, finite, ≥ 0, zero diagonal) and row-normalise it."""
    if not isinstance(target, Tensor) or target.dim() != 2 or target.shape[0] != target.shape[1]:
        shape = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"{loss}: target must be a (2B, 2B) tensor, got {shape}; "
                         "build one with otzoo.losses.domain_target")
    target = target.detach().float() if target.dtype != torch.float64 else target.detach()
    if not bool(torch.isfinite(target).all()) or bool((target < 0).any()):
        raise ValueError(f"{loss}: target must be finite and non-negative")
    if bool((target.diagonal() != 0).any()):
        raise ValueError(f"{loss}: target must have a zero diagonal (a view is never "
                         "matched with itself)")
    rows = target.sum(dim=1, keepdim=True)
    if bool((rows <= 0).any()):
        raise ValueError(f"{loss}: every row of target needs positive mass")
    return target / rows
