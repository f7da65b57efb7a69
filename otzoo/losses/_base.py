"""Shared plumbing of the otzoo losses: validation, dtype/autocast handling, gathering."""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._distributed import gather

__all__ = ["ContrastiveLoss", "NonFiniteInputError", "stacked_similarity", "positives", "at_positives",
           "diagonal_mask", "check_positive", "check_int", "check_unit_interval", "check_choice", "DOMAINS"]

DOMAINS = ("auto", "log", "scaling")  # where Sinkhorn runs: see otzoo.losses.sinkhorn.choose_domain


class NonFiniteInputError(ValueError):
    """An input embedding holds NaN or inf (typically a diverged model)."""


def check_positive(loss: str, name: str, value, allow_zero: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{loss}: {name} must be a number, got {value!r}") from None
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not math.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{loss}: {name} must be finite and {bound}, got {value}; "
                         f"pass e.g. {name}=0.5")
    return value


def check_int(loss: str, name: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{loss}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_unit_interval(loss: str, name: str, value) -> float:
    value = check_positive(loss, name, value)
    if value > 1:
        raise ValueError(f"{loss}: {name} must lie in (0, 1], got {value}; e.g. {name}=0.6")
    return value


def check_choice(loss: str, name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{loss}: {name} must be one of {list(choices)}, got {value!r}")
    return value


def positives(n: int, device) -> Tensor:
    """``t(i) = (i + B) mod n`` for the stacked layout of ``n = 2B`` rows."""
    return torch.arange(n, device=device).roll(n // 2)


def stacked_similarity(z1: Tensor, z2: Tensor) -> Tensor:
    """``S = ẑ ẑᵀ`` for ``ẑ = normalize(cat([z1, z2]))`` (zero rows stay zero, no NaN)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return z @ z.T


def at_positives(x: Tensor) -> Tensor:
    """``x[i, t(i)]`` for each row ``i`` of a stacked ``(2B, 2B)`` matrix."""
    return x.gather(1, positives(x.shape[0], x.device)[:, None]).squeeze(1)


def diagonal_mask(n: int, device) -> Tensor:
    """``(n, n)`` bool mask of the diagonal: a view is never its own candidate."""
    return torch.eye(n, dtype=torch.bool, device=device)


class ContrastiveLoss(nn.Module):
    """Base class: ``forward(z1, z2, **extras)`` validates, gathers, casts to fp32 (or the
    wider input dtype) with autocast disabled and calls ``_loss``; ``plan`` calls ``_plan``
    under ``no_grad``. Subclasses set ``name``, ``extras`` (required keyword inputs) and
    ``plan_layout``: ``"stacked"`` when ``plan`` is ``(2B, 2B)`` over both views stacked
    (``[view 1; view 2]``, positives at ``(k, k + B)``), ``"cross_view"`` when it is ``(B, B)``
    with rows from view 1 and columns from view 2 (positives on the diagonal).

    ``check_finite`` (default True): raise :class:`NonFiniteInputError` on NaN/inf inputs.
    That check reads a value back from the device; a training loop that watches the loss
    for non-finite values itself can set it to False to keep its step free of host syncs
    (shape, dtype and device checks stay on: they need no sync)."""

    name: str = "loss"
    extras: Tuple[str, ...] = ()
    plan_layout: str = "stacked"
    check_finite: bool = True

    def __init__(self, gather_distributed: bool = False) -> None:
        super().__init__()
        self.gather_distributed = bool(gather_distributed)

    # --- input handling -------------------------------------------------------------
    def _check(self, tensors: Dict[str, Tensor]) -> None:
        name = self.name
        ref_key = next(iter(tensors))
        ref = tensors[ref_key]
        for key, x in tensors.items():
            if not isinstance(x, Tensor):
                raise ValueError(f"{name}: {key} must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() != 2:
                raise ValueError(f"{name}: {key} must have shape (B, D), got {tuple(x.shape)}; "
                                 "flatten or pool the features first")
            if not (x.is_floating_point()):
                raise ValueError(f"{name}: {key} must be a floating point tensor, got {x.dtype}")
            if x.device != ref.device:
                raise ValueError(f"{name}: {key} is on {x.device} but {ref_key} is on "
                                 f"{ref.device}; move all inputs to one device")
            if x.shape[0] != ref.shape[0]:
                raise ValueError(f"{name}: {key} has batch size {x.shape[0]} but {ref_key} has "
                                 f"{ref.shape[0]}; row k of every input must be image k")
            if self.check_finite and not bool(torch.isfinite(x).all()):
                raise NonFiniteInputError(f"{name}: {key} contains NaN or inf; check the model outputs "
                                 "(e.g. lower the learning rate or enable gradient clipping)")
        if ref.shape[0] < 2:
            raise ValueError(f"{name}: needs a batch of B >= 2 pairs, got B = {ref.shape[0]}")

    def _prepare(self, z1: Tensor, z2: Tensor, extras: Dict[str, Optional[Tensor]],
                 gather_inputs: bool) -> Dict[str, Tensor]:
        unknown = set(extras) - set(self.extras)
        if unknown:
            raise ValueError(f"{self.name}: unexpected keyword input(s) {sorted(unknown)}; "
                             f"this loss takes {list(self.extras) or 'none'}")
        missing = [k for k in self.extras if extras.get(k) is None]
        if missing:
            raise ValueError(f"{self.name}: missing keyword input(s) {missing}; call "
                             f"loss(z1, z2, {', '.join(k + '=...' for k in self.extras)})")
        tensors = {"z1": z1, "z2": z2, **{k: extras[k] for k in self.extras}}
        self._check(tensors)
        if tensors["z1"].shape != tensors["z2"].shape:
            raise ValueError(f"{self.name}: z1 and z2 must have the same shape, got "
                             f"{tuple(z1.shape)} and {tuple(z2.shape)}")
        self._check_pairs(tensors)
        if gather_inputs:
            tensors = {k: gather(v) for k, v in tensors.items()}
        dtype = torch.promote_types(torch.float32, z1.dtype)
        return {k: v.to(dtype) for k, v in tensors.items()}

    def _sinkhorn_options(self, iters, tol, domain) -> None:
        """Validate and set the Sinkhorn options every OT loss shares: ``iters``, ``tol``, ``domain``."""
        self.iters = check_int(self.name, "iters", iters)
        self.tol = None if tol is None else check_positive(self.name, "tol", tol)
        self.domain = check_choice(self.name, "domain", domain, DOMAINS)

    def _check_pairs(self, tensors: Dict[str, Tensor]) -> None:
        """Hook for extra shape checks (e.g. h1 vs h2)."""

    # --- public API -----------------------------------------------------------------
    def forward(self, z1: Tensor, z2: Tensor, **extras: Tensor) -> Tensor:
        with torch.autocast(z1.device.type if isinstance(z1, Tensor) else "cpu", enabled=False):
            t = self._prepare(z1, z2, extras, self.gather_distributed)
            return self._loss(**t)

    @torch.no_grad()
    def plan(self, z1: Tensor, z2: Tensor, **extras: Tensor) -> Tensor:
        """The coupling this loss uses (no gradient)."""
        with torch.autocast(z1.device.type if isinstance(z1, Tensor) else "cpu", enabled=False):
            t = self._prepare(z1, z2, extras, self.gather_distributed)
            return self._plan(**t)

    def _loss(self, **inputs: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _plan(self, **inputs: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hparams())

    def _hparams(self) -> Tuple[str, ...]:
        return ()
