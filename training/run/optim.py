"""The optimizer and the learning-rate schedule of a run (also the fine-tuning protocol's schedule)."""
import math

import torch
from torch import nn

__all__ = ["build_optimizer", "warmup_cosine"]


def build_optimizer(model: nn.Module, o: dict, batch_size: int) -> torch.optim.Optimizer:
    """SGD, LARS or AdamW at ``lr * batch_size / lr_batch``; weights (ndim > 1) get weight decay, biases
    and norm parameters do not (timm's ``param_groups_weight_decay``; LARS skips their adaptation)."""
    from timm.optim import param_groups_weight_decay

    lr = o["lr"] * batch_size / o["lr_batch"]
    groups = param_groups_weight_decay(model, o["weight_decay"])
    if o["name"] == "lars":
        from timm.optim import Lars  # skips trust-ratio adaptation where weight_decay == 0

        return Lars(groups, lr=lr, momentum=o["momentum"], nesterov=o["nesterov"], trust_coeff=o["trust_coeff"])
    if o["name"] == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(o.get("betas", (0.9, 0.999))))
    return torch.optim.SGD(groups, lr=lr, momentum=o["momentum"], nesterov=o["nesterov"])


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """LR multiplier for ``torch.optim.lr_scheduler.LambdaLR``: linear warmup from 0 over
    warmup_steps, then cosine to min_ratio, closed form per step (so a resumed run gets the
    rate of a straight one exactly; torch's chained CosineAnnealingLR drifts, and timm's
    scheduler warms up from a separate initial rate)."""
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f
