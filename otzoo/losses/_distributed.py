"""All-gather that carries gradients, for losses computed on the global batch."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_distributed", "gather"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherWithGrad(torch.autograd.Function):
    """Forward: concatenate every rank's tensor. Backward: sum the gradients of all ranks
    (each rank computes the same global loss) and return this rank's slice, so that each
    rank's input gradient is ``world_size x`` the single-process one and DDP's averaging
    gives back the single-process parameter gradient."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.rank, ctx.batch = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.batch:(ctx.rank + 1) * ctx.batch]


def gather(x: Tensor) -> Tensor:
    """``cat`` of ``x`` over all ranks (rank order) with gradients; ``x`` itself if not distributed.

    Every rank must pass the same batch size."""
    if not is_distributed():
        return x
    if x.requires_grad:
        return _GatherWithGrad.apply(x)
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)
