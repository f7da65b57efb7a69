"""Fine-tuning: backbone + a fresh linear head trained end to end, then test top-1, on any device."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..device import autocast, resolve_device

__all__ = ["finetune", "FINETUNE_RECIPE"]

FINETUNE_RECIPE = "SGD momentum 0.9, cosine schedule, no warmup"


def finetune(model: nn.Module, train_set: Dataset, test_set: Dataset, num_classes: int,
             epochs: int = 10, lr: float = 0.05, weight_decay: float = 5e-4, batch_size: int = 128,
             num_workers: int = 0, precision: str = "fp32", seed: int = 0, progress: bool = True,
             device=None) -> dict:
    """Train backbone + a fresh linear head end to end (:data:`FINETUNE_RECIPE`) on ``device``.

    ``train_set`` should carry the training augmentation. Returns ``{"finetune_top1": ...}``.
    """
    device = resolve_device(device) if isinstance(device, str) else (device or next(model.parameters()).device)
    torch.manual_seed(seed)
    model.reset_classifier(num_classes)
    model.to(device)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=len(train_set) > batch_size,
                        num_workers=num_workers, generator=g, pin_memory=device.type == "cuda")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    total = max(1, epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="finetune", unit="step", leave=False)
    loss = torch.full((), float("nan"))
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)
            with autocast(device, precision):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    model.eval()
    correct = n = 0
    with torch.inference_mode():
        for x, y in DataLoader(test_set, batch_size=256, num_workers=num_workers):
            y = torch.as_tensor(y)
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
            n += len(y)
    return {"finetune_top1": round(100.0 * correct / n, 2), "final_loss": float(loss.detach()),
            "recipe": {"optimizer": FINETUNE_RECIPE, "epochs": epochs, "lr": lr,
                       "weight_decay": weight_decay, "batch_size": batch_size, "seed": seed}}
