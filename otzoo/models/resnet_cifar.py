"""CIFAR ResNets: timm's ResNet with a 3x3 stride-1 stem conv and no max-pool, for 32x32 inputs.

The stages are timm's; only the stem differs, so a (B, 3, 32, 32) input reaches ``layer4`` as
(B, C, 4, 4) and ``feature_info`` reductions are 1 (act1), 1, 2, 4, 8 (layer1..4).
"""
from typing import Any, Dict

import torch.nn as nn
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from ._builder import build_model
from ._registry import register_model

__all__ = ["CifarResNet"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class CifarResNet(ResNet):
    """timm ``ResNet`` whose stem is ``Conv2d(in_chans, 64, 3, stride=1, padding=1)`` with no max-pool.

    Takes timm ``ResNet`` arguments (``block``, ``layers``, ``num_classes``, ``in_chans``,
    ``global_pool``, ``drop_rate``...); only the default stem (``stem_type=''``) is supported.
    """

    def __init__(self, block, layers, in_chans: int = 3, **kwargs: Any):
        if kwargs.get("stem_type", ""):
            raise ValueError("CifarResNet replaces the stem; stem_type must be ''")
        super().__init__(block, layers, in_chans=in_chans, **kwargs)
        old = self.conv1
        self.conv1 = nn.Conv2d(in_chans, old.out_channels, kernel_size=3, stride=1, padding=1, bias=False,
                               device=old.weight.device, dtype=old.weight.dtype)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.maxpool = nn.Identity()
        # timm's stem reduces by 2 (conv) then 2 (max-pool); this one by 1.
        for info in self.feature_info:
            info["reduction"] = max(1, info["reduction"] // (2 if info["module"] == "act1" else 4))


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    return build_model(CifarResNet, variant, pretrained, **kwargs)


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return dict(
        num_classes=10, input_size=(3, 32, 32), pool_size=(4, 4), crop_pct=1.0, crop_mode="center",
        interpolation="bilinear", mean=CIFAR10_MEAN, std=CIFAR10_STD, first_conv="conv1",
        classifier="fc", license="apache-2.0", **kwargs,
    )


default_cfgs = {
    "resnet18_cifar": _cfg(),
    "resnet50_cifar": _cfg(),
}


@register_model
def resnet18_cifar(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-18 with a CIFAR stem (3x3 stride-1 conv, no max-pool); 512 features, 10 classes by default."""
    return _create("resnet18_cifar", pretrained, **dict(dict(block=BasicBlock, layers=(2, 2, 2, 2)), **kwargs))


@register_model
def resnet50_cifar(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-50 with a CIFAR stem (3x3 stride-1 conv, no max-pool); 2048 features, 10 classes by default."""
    return _create("resnet50_cifar", pretrained, **dict(dict(block=Bottleneck, layers=(3, 4, 6, 3)), **kwargs))
