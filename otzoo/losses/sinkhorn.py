"""Batched entropic Sinkhorn (balanced and KL-unbalanced) in the log or the scaling domain.

Everything works on a *log-kernel* ``ℓ`` of shape ``(..., n, m)`` (``ℓ = -C / ε``, with
``-inf`` where mass is forbidden, e.g. the masked diagonal) and returns the dual potentials
``f (..., n)`` and ``g (..., m)`` with ``log P = ℓ + f[..., :, None] + g[..., None, :]``.

Iterations are counted in half-steps, row step first, starting from ``f0, g0``:

- row step    ``f_i ← κ1 · (log a_i − LSE_j(ℓ_ij + g_j))``
- column step ``g_j ← κ2 · (log b_j − LSE_i(ℓ_ij + f_i))``

``κ = 1`` is the balanced problem; ``κ_k = ρ_k / (ρ_k + ε)`` is the KL-relaxed (unbalanced)
one (:func:`uot_kappa`). ``iters`` full iterations are ``2 * iters`` half-steps.

The scaling domain computes the kernel ``K = exp(ℓ)`` once and iterates
``u = (a / K v)^κ1``, ``v = (b / Kᵀ u)^κ2`` with matrix-vector products, which is much
faster than one logsumexp per half-step; it is used (``domain="auto"``) only when ``exp``
cannot underflow or overflow: the span of the finite entries of ``ℓ`` must stay below
about a third of ``log(finfo.max)`` when gradients flow (the backward squares ``1 / K v``)
and two thirds without gradients. Both domains compute the same function (tested).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from ._base import diagonal_mask

__all__ = ["sinkhorn", "log_plan", "row_logsumexp", "uot_kappa", "masked_log_kernel",
           "choose_domain", "kernel_for_domain", "scaling_domain_is_safe", "entropic_log_plan"]

Marginal = Union[float, Tensor]


def uot_kappa(rho: float, epsilon: float) -> float:
    """``ρ / (ρ + ε)``: the exponent of a KL-relaxed marginal (1.0 for ``rho=inf``)."""
    return 1.0 if math.isinf(rho) else rho / (rho + epsilon)


def masked_log_kernel(cost: Tensor, epsilon: float) -> Tensor:
    """``ℓ = -cost / ε`` with ``-inf`` on the diagonal of the last two dims (masked_fill)."""
    return (-cost / epsilon).masked_fill(diagonal_mask(cost.shape[-1], cost.device), float("-inf"))


def scaling_domain_is_safe(log_kernel: Tensor, with_grad: bool) -> bool:
    """True when ``exp(log_kernel)`` and the scaling iterates stay inside the dtype's range."""
    if not log_kernel.dtype.is_floating_point or log_kernel.numel() == 0:
        return False
    finite = torch.isfinite(log_kernel)
    lk = log_kernel.detach()
    hi = lk.masked_fill(~finite, float("-inf")).amax()
    lo = lk.masked_fill(~finite, float("inf")).amin()
    span = max(float(hi.abs()), float(lo.abs()), float(hi - lo))
    limit = math.log(torch.finfo(log_kernel.dtype).max) * (0.35 if with_grad else 0.7)
    # every row and column must keep at least one finite entry, or K v = 0
    rows_ok = bool(finite.any(-1).all()) and bool(finite.any(-2).all())
    return span <= limit and rows_ok


def _as_log_marginal(x: Marginal, like: Tensor) -> Tensor:
    return x if isinstance(x, Tensor) else torch.full((), float(x), dtype=like.dtype, device=like.device)


def sinkhorn(
    log_kernel: Tensor,
    iters: int,
    *,
    half_steps: Optional[int] = None,
    log_a: Marginal = 0.0,
    log_b: Marginal = 0.0,
    kappa: Tuple[float, float] = (1.0, 1.0),
    f0: Marginal = 0.0,
    g0: Marginal = 0.0,
    tol: Optional[float] = None,
    domain: str = "auto",
    danskin: bool = False,
    kernel: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """Run Sinkhorn on ``log_kernel (..., n, m)`` and return the potentials ``(f, g)``.

    Args:
        log_kernel: ``ℓ = -C / ε`` (``-inf`` entries allowed, never ``nan``).
        iters: full iterations (row step + column step); ignored if ``half_steps`` is given.
        half_steps: number of half-steps (odd numbers end after a row step).
        log_a, log_b: log marginals, scalars or ``(..., n)`` / ``(..., m)`` (default 0: unit).
        kappa: ``(κ1, κ2)``; ``(1, 1)`` is balanced, see :func:`uot_kappa`.
        f0, g0: initial potentials (default 0).
        tol: stop early once a full iteration moves no potential by more than ``tol``
            (checked every iteration; ``None`` runs all iterations).
        domain: ``"log"``, ``"scaling"`` or ``"auto"`` (scaling when it cannot underflow).
        danskin: compute under ``no_grad`` and return detached potentials.
        kernel: ``exp(log_kernel)`` if the caller already has it (implies the scaling domain).
    """
    if domain not in ("auto", "log", "scaling"):
        raise ValueError(f"sinkhorn: domain must be 'auto', 'log' or 'scaling', got {domain!r}")
    steps = 2 * int(iters) if half_steps is None else int(half_steps)
    if steps < 0:
        raise ValueError(f"sinkhorn: the number of iterations must be >= 0, got {steps} half-steps")
    if danskin:
        with torch.no_grad():
            f, g = sinkhorn(log_kernel, iters, half_steps=steps, log_a=log_a, log_b=log_b,
                            kappa=kappa, f0=f0, g0=g0, tol=tol, domain=domain, kernel=kernel)
        return f.detach(), g.detach()

    lk = log_kernel
    shape_f, shape_g = lk.shape[:-1], lk.shape[:-2] + lk.shape[-1:]
    log_a, log_b = _as_log_marginal(log_a, lk), _as_log_marginal(log_b, lk)
    f = _as_log_marginal(f0, lk).expand(shape_f)
    g = _as_log_marginal(g0, lk).expand(shape_g)
    k1, k2 = float(kappa[0]), float(kappa[1])
    if kernel is not None or choose_domain(lk, domain) == "scaling":
        K = lk.exp() if kernel is None else kernel
        return _sinkhorn_scaling(K, steps, log_a, log_b, k1, k2, f, g, tol)
    return _sinkhorn_log(lk, steps, log_a, log_b, k1, k2, f, g, tol)


def choose_domain(log_kernel: Tensor, domain: str = "auto", bound: Optional[float] = None) -> str:
    """Resolve ``"auto"`` to ``"scaling"`` when :func:`scaling_domain_is_safe`, else ``"log"``.

    ``bound``: a known bound on both ``|ℓ|`` and the span of the finite entries (e.g.
    ``2/ε`` for a cosine cost with only the diagonal masked); it replaces the scan of ℓ."""
    if domain not in ("auto", "log", "scaling"):
        raise ValueError(f"sinkhorn: domain must be 'auto', 'log' or 'scaling', got {domain!r}")
    if domain != "auto":
        return domain
    with_grad = torch.is_grad_enabled() and log_kernel.requires_grad
    if bound is not None and log_kernel.dtype.is_floating_point:
        limit = math.log(torch.finfo(log_kernel.dtype).max) * (0.35 if with_grad else 0.7)
        return "scaling" if bound <= limit else "log"
    return "scaling" if scaling_domain_is_safe(log_kernel, with_grad) else "log"


def kernel_for_domain(log_kernel: Tensor, domain: str, bound: float) -> Optional[Tensor]:
    """``exp(ℓ)`` when :func:`choose_domain` picks the scaling domain (``bound``: a known bound of
    ``|ℓ|`` and its span, e.g. ``2/ε`` for a cosine kernel), else None (run in the log domain)."""
    return log_kernel.exp() if choose_domain(log_kernel, domain, bound) == "scaling" else None


def row_logsumexp(log_kernel: Tensor, g: Tensor, kernel: Optional[Tensor] = None) -> Tensor:
    """``LSE_j(ℓ_ij + g_j)``, through ``log(K exp(g))`` when the kernel ``K`` is given."""
    if kernel is not None:
        return (kernel @ g.exp().unsqueeze(-1)).squeeze(-1).log()
    return torch.logsumexp(log_kernel + g.unsqueeze(-2), dim=-1)


def _converged(tol, new, old) -> bool:
    return tol is not None and max(float((n - o).detach().abs().amax()) for n, o in zip(new, old)) <= tol


def _sinkhorn_log(lk, steps, log_a, log_b, k1, k2, f, g, tol):
    for step in range(steps):
        if step % 2 == 0:
            prev = (f, g)
            lse = torch.logsumexp(lk + g.unsqueeze(-2), dim=-1)
            f = log_a - lse if k1 == 1.0 else k1 * (log_a - lse)
        else:
            lse = torch.logsumexp(lk + f.unsqueeze(-1), dim=-2)
            g = log_b - lse if k2 == 1.0 else k2 * (log_b - lse)
            if step > 1 and _converged(tol, (f, g), prev):
                break
    return f, g


def _sinkhorn_scaling(K, steps, log_a, log_b, k1, k2, f, g, tol):
    constants = all(not t.requires_grad for t in (log_a, log_b, f, g))
    if K.requires_grad and torch.is_grad_enabled() and K.dim() == 2 and constants and steps > 0:
        return _ScalingSinkhorn.apply(K, steps, log_a, log_b, k1, k2, f, g, tol)
    return _sinkhorn_scaling_unrolled(K, steps, log_a, log_b, k1, k2, f, g, tol)


class _ScalingSinkhorn(torch.autograd.Function):
    """The unrolled scaling-domain iterations with a hand-written backward: the same
    gradient as autograd through the loop (tested), but the kernel's gradient
    ``Σ_t (outer products)`` is assembled by one matrix product instead of 2·iters
    rank-one updates of an n x m matrix (the memory traffic that dominated)."""

    @staticmethod
    def forward(ctx, K, steps, log_a, log_b, k1, k2, f, g, tol):
        a, b = log_a.exp(), log_b.exp()
        u, v = f.exp(), g.exp()
        ins, dens = [], []  # per half-step: the input vector and K v (row) or Kᵀ u (column)
        for step in range(steps):
            if step % 2 == 0:
                prev = (u, v)
                x = K @ v
                u = a / x if k1 == 1.0 else (a / x) ** k1
                ins.append(v)
                dens.append(x)
            else:
                y = u @ K
                v = b / y if k2 == 1.0 else (b / y) ** k2
                ins.append(u)
                dens.append(y)
                if step > 1 and _converged(tol, (u.log(), v.log()), (prev[0].log(), prev[1].log())):
                    break
        ctx.kappa = (k1, k2)
        ctx.save_for_backward(K, torch.stack(ins), torch.stack(dens))
        return u.log(), v.log()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_f, grad_g):
        K, ins, dens = ctx.saved_tensors
        k1, k2 = ctx.kappa
        f_bar, g_bar = grad_f.clone(), grad_g.clone()  # adjoints of log u, log v
        left, right = [], []  # K̄ = Σ left_t right_tᵀ
        for t in range(ins.shape[0] - 1, -1, -1):
            if t % 2 == 0:  # row step: log u = κ1 (log a − log(K v_in))
                alpha = f_bar / dens[t]
                v_in = ins[t]
                g_bar = g_bar - k1 * v_in * (alpha @ K)
                left.append(-k1 * alpha)
                right.append(v_in)
                f_bar = torch.zeros_like(f_bar)
            else:  # column step: log v = κ2 (log b − log(Kᵀ u_in))
                beta = g_bar / dens[t]
                u_in = ins[t]
                f_bar = f_bar - k2 * u_in * (K @ beta)
                left.append(-k2 * u_in)
                right.append(beta)
                g_bar = torch.zeros_like(g_bar)
        grad_K = torch.stack(left, 1) @ torch.stack(right, 0)
        return grad_K, None, None, None, None, None, None, None, None


def _sinkhorn_scaling_unrolled(K, steps, log_a, log_b, k1, k2, f, g, tol):
    # K = exp(ℓ) is computed once by the caller; exp(-inf) = 0 masks exactly
    a, b = log_a.exp(), log_b.exp()
    u, v = f.exp(), g.exp()
    for step in range(steps):
        if step % 2 == 0:
            prev = (u, v)
            Kv = (K @ v.unsqueeze(-1)).squeeze(-1)
            u = a / Kv if k1 == 1.0 else (a / Kv) ** k1
        else:
            Ktu = (u.unsqueeze(-2) @ K).squeeze(-2)
            v = b / Ktu if k2 == 1.0 else (b / Ktu) ** k2
            if step > 1 and _converged(tol, (u.log(), v.log()), (prev[0].log(), prev[1].log())):
                break
    return u.log(), v.log()


def log_plan(log_kernel: Tensor, f: Tensor, g: Tensor) -> Tensor:
    """``log P = ℓ + f ⊕ g`` for potentials from :func:`sinkhorn`."""
    return log_kernel + f.unsqueeze(-1) + g.unsqueeze(-2)


def entropic_log_plan(cost: Tensor, epsilon: float, iters: int, *, tol: Optional[float] = None,
                      domain: str = "auto", cost_bound: Optional[float] = None) -> Tensor:
    """``log P*`` of balanced entropic OT with uniform marginals ``1/n``, ``1/m`` (no grad).

    ``cost (..., n, m)``; ``iters`` full iterations from ``f = g = 0``; ``cost_bound``: a
    known bound ``0 <= C <= cost_bound`` (skips scanning C to pick the domain)."""
    with torch.no_grad():
        lk = -cost.detach() / epsilon
        n, m = lk.shape[-2:]
        bound = None if cost_bound is None else cost_bound / epsilon
        f, g = sinkhorn(lk, iters, log_a=-math.log(n), log_b=-math.log(m), tol=tol,
                        domain=choose_domain(lk, domain, bound))
        return log_plan(lk, f, g)
