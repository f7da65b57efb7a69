"""Fine-tuning: backbone + a fresh linear head trained end to end, then test top-1, on any device.

The recipe (:class:`FinetuneRecipe`) is SGD with Nesterov momentum, a linear warmup then a
cosine decay per step, weight decay on every parameter, cross-entropy, and the standard
supervised augmentation of the input size: random crop with reflect padding of 1/8 + flip
up to 64 px (CIFAR), RandomResizedCrop + flip above. ``label_fraction`` < 1 trains on a
class-balanced subset of the train labels (:func:`training.evaluate.linear.balanced_subset`,
``label_seed``); the same recipe from random initialisation is the reference.
"""
import dataclasses
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms as T

from ..run.device import autocast, resolve_device
from .linear import balanced_subset

__all__ = ["FinetuneRecipe", "RECIPE_10PCT", "scratch_source", "is_scratch", "init_text", "finetune_transform",
           "label_subset", "param_groups", "finetune_optimizer", "finetune"]


@dataclass(frozen=True)
class FinetuneRecipe:
    """Every setting of a fine-tuning run; ``lr`` is the head's, the backbone's is ``lr * backbone_lr_scale``."""
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    backbone_lr_scale: float = 1.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_fraction: float = 1.0
    label_seed: int = 0
    seed: int = 0

    def describe(self) -> str:
        labels = "all labels" if self.label_fraction >= 1 else \
            f"{self.label_fraction:.0%} of the labels (class-balanced, seed {self.label_seed})"
        return (f"{self.epochs} epochs on {labels}, batch {self.batch_size}, SGD Nesterov momentum {self.momentum}, "
                f"lr {self.lr} (head) / {self.lr * self.backbone_lr_scale:g} (backbone), {self.warmup_epochs:g}-epoch "
                f"linear warmup then cosine to 0, weight decay {self.weight_decay:g}, crop + flip augmentation")


RECIPE_10PCT = FinetuneRecipe(label_fraction=0.1)  # the recipe behind the cards' and README's fine-tuning rows


def scratch_source(arch: str) -> str:
    """The ``source`` a fine-tuning record of the random-init reference carries."""
    return f"random init ({arch})"


def is_scratch(record: dict) -> bool:
    return record["source"].startswith("random init (")


def init_text(record: dict, scratch: str = "random init") -> str:
    """How a fine-tuning record's backbone started: ``scratch``, or the weight and, where it is not the one its
    name holds now, which release (``release``, from ``training.release.readme.mark_releases``)."""
    if is_scratch(record):
        return scratch
    return f"`{record['source']}`" + (f" ({record['release']})" if record.get("release") else "")


def finetune_transform(model: nn.Module):
    """Training transform at the model's input size, normalised with its mean / std."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    crop = (T.RandomCrop(size, padding=size // 8, padding_mode="reflect") if size <= 64
            else T.RandomResizedCrop(size, antialias=True))
    return T.Compose([crop, T.RandomHorizontalFlip(), T.ToTensor(),
                      T.Normalize(cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225)))])


def label_subset(dataset: Dataset, labels: torch.Tensor, fraction: float, seed: int) -> Dataset:
    """``dataset`` itself for ``fraction >= 1``, else its class-balanced ``fraction`` (``balanced_subset``)."""
    if fraction >= 1:
        return dataset
    return Subset(dataset, balanced_subset(labels, fraction, seed).tolist())


def param_groups(model: nn.Module, recipe: FinetuneRecipe) -> list:
    """Two SGD groups: the classifier at ``recipe.lr``, the rest at ``recipe.lr * backbone_lr_scale``."""
    head = {id(p) for p in model.get_classifier().parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head]
    return [{"name": "backbone", "params": backbone, "lr": recipe.lr * recipe.backbone_lr_scale},
            {"name": "head", "params": list(model.get_classifier().parameters()), "lr": recipe.lr}]


def finetune_optimizer(model: nn.Module, recipe: FinetuneRecipe, steps_per_epoch: int) -> tuple:
    """SGD over :func:`param_groups` and its per-step warmup-cosine ``LambdaLR``."""
    from training.run.optim import warmup_cosine

    opt = torch.optim.SGD(param_groups(model, recipe), lr=recipe.lr, momentum=recipe.momentum,
                          nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    total = max(1, recipe.epochs * steps_per_epoch)
    warmup = min(total - 1, int(round(recipe.warmup_epochs * steps_per_epoch)))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warmup, total))


@torch.inference_mode()
def _test_top1(model: nn.Module, test_set: Dataset, device, num_workers: int) -> float:
    model.eval()
    correct = n = 0
    for x, y in DataLoader(test_set, batch_size=256, num_workers=num_workers):
        y = torch.as_tensor(y)
        correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        n += len(y)
    return 100.0 * correct / n


def finetune(model: nn.Module, train_set: Dataset, test_set: Dataset, num_classes: int,
             recipe: FinetuneRecipe = FinetuneRecipe(), num_workers: int = 0, precision: str = "fp32",
             progress: bool = True, device=None) -> dict:
    """Train ``model`` with a fresh ``num_classes`` head end to end on ``train_set`` (already the
    labelled subset, carrying :func:`finetune_transform`) and return its top-1 on ``test_set``."""
    device = resolve_device(device) if isinstance(device, str) else (device or next(model.parameters()).device)
    torch.manual_seed(recipe.seed)
    model.reset_classifier(num_classes)
    model.to(device, memory_format=torch.channels_last)
    loader = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True, num_workers=num_workers,
                        drop_last=len(train_set) > recipe.batch_size, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(recipe.seed))
    opt, sched = finetune_optimizer(model, recipe, len(loader))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=recipe.epochs * len(loader), desc="finetune", unit="step", leave=False)
    start, loss, epoch_loss = time.time(), torch.full((), float("nan")), []
    for _ in range(recipe.epochs):
        model.train()
        total = torch.zeros((), device=device)
        for x, y in loader:
            x = x.to(device, non_blocking=True, memory_format=torch.channels_last)
            y = torch.as_tensor(y).to(device, non_blocking=True)
            with autocast(device, precision):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach()
            if bar:
                bar.update(1)
        epoch_loss.append(round(float(total) / max(1, len(loader)), 4))
        if not torch.isfinite(total):
            raise FloatingPointError(f"finetune: the loss became non-finite in epoch {len(epoch_loss)}: lower the "
                                     "learning rate (--lr) or use --precision fp32")
    if bar:
        bar.close()
    train_time = time.time() - start
    top1 = _test_top1(model, test_set, device, num_workers)
    return {"finetune_top1": round(top1, 2), "final_loss": float(loss.detach()), "epoch_loss": epoch_loss,
            "num_labelled": len(train_set), "train_time_s": round(train_time, 1),
            "recipe": {**dataclasses.asdict(recipe), "description": recipe.describe()}}
