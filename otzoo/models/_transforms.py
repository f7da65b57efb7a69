"""The eval preprocessing that travels with each weight (timm.data underneath)."""
from typing import Any, Dict

import torch.nn as nn
import timm.data

__all__ = ["resolve_data_config", "create_transform"]

_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")


def resolve_data_config(model: nn.Module) -> Dict[str, Any]:
    """``dict(input_size, mean, std, interpolation, crop_pct, crop_mode)`` from ``model.pretrained_cfg``.

    E.g. ``resnet18_cifar``: input_size (3, 32, 32), CIFAR-10 mean/std, crop_pct 1.0.
    """
    cfg = timm.data.resolve_data_config(model=model)
    return {k: cfg[k] for k in _KEYS if k in cfg}


def create_transform(config: Dict[str, Any], is_training: bool = False):
    """timm's transform for ``config`` (from :func:`resolve_data_config`): PIL image -> normalised
    ``(C, H, W)`` float tensor. ``is_training=False`` gives the eval transform (resize, center crop)."""
    return timm.data.create_transform(**{k: config[k] for k in _KEYS if k in config}, is_training=is_training)
