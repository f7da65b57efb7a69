"""timm's built-in architectures served by otzoo: random init here, otzoo weights via their own names.

They stay timm's in timm's registry (otzoo never replaces a timm built-in).
"""
from typing import Any

import torch.nn as nn

from ._builder import build_timm_model
from ._registry import register_model


@register_model
def resnet18(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm ResNet-18 (ImageNet stem, 224x224 input); 512 features."""
    return build_timm_model("resnet18", pretrained, **kwargs)


@register_model
def resnet50(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm ResNet-50 (ImageNet stem, 224x224 input); 2048 features."""
    return build_timm_model("resnet50", pretrained, **kwargs)


@register_model
def vit_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm ViT-B/16 at 224x224; 768 features (class token)."""
    return build_timm_model("vit_base_patch16_224", pretrained, **kwargs)
