"""All-gather that carries gradients, for losses computed on the global batch."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_distributed", "gather"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather(x: Tensor) -> Tensor:
    """``cat`` of ``x`` over all ranks (rank order) with gradients; ``x`` itself if not distributed.

    ``torch.distributed.nn.functional.all_gather``: its backward sums the gradients of all
    ranks (each rank computes the same global loss) and returns this rank's slice, so each
    rank's input gradient is ``world_size x`` the single-process one and DDP's averaging gives
    back the single-process parameter gradient. Every rank must pass the same batch size."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)
