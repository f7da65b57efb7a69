"""CIFAR ResNets: timm's ResNet with a 3x3 stride-1 stem conv and no max-pool, for 32x32 inputs.

The stages are timm's; only the stem differs, so a (B, 3, 32, 32) input reaches ``layer4`` as
(B, C, 4, 4) and ``feature_info`` reductions are 1 (act1), 1, 2, 4, 8 (layer1..4).
"""
from typing import Any, Dict, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
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
    ``fp32_stages`` (e.g. ``("layer4",)``) run in fp32 under autocast: a weight whose features need it
    carries it in its cfg's ``model_args``. The head always does (:meth:`forward_head`).
    """

    def __init__(self, block, layers, in_chans: int = 3, fp32_stages: Sequence[str] = (), **kwargs: Any):
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
        for name in _check_stages(fp32_stages):
            setattr(self, name, Fp32UnderAutocast(*getattr(self, name)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """timm's head (global pool, dropout, fc), in fp32 under autocast: a probe folded into ``fc`` subtracts
        the features' large common mean, which cancels badly in bf16 (sinsim's head lost 1.55 points of 69.2 on
        2,000 CIFAR-10 test images; 0.6 with this). TorchScript keeps the plain head."""
        if torch.jit.is_scripting():
            return self._head(x, pre_logits)
        return self._head_fp32_under_autocast(x, pre_logits)

    @torch.jit.unused
    def _head_fp32_under_autocast(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return run_in_fp32_under_autocast(self._head, x, pre_logits)

    def _head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)


def _check_stages(names: Sequence[str]) -> Sequence[str]:
    stages = ("layer1", "layer2", "layer3", "layer4")
    if isinstance(names, str) or any(n not in stages for n in names):
        raise ValueError(f"fp32_stages must be a list of stage names among {stages}, got {names!r}")
    return names


class Fp32UnderAutocast(nn.Sequential):
    """A stage (``nn.Sequential`` of blocks, same state-dict keys) that runs in fp32 when autocast is on.
    TorchScript runs it as a plain sequence."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            for block in self:
                x = block(x)
            return x
        return self._forward_fp32_under_autocast(x)

    @torch.jit.unused
    def _forward_fp32_under_autocast(self, x: torch.Tensor) -> torch.Tensor:
        return run_in_fp32_under_autocast(super().forward, x)


def run_in_fp32_under_autocast(fn, x: torch.Tensor, *args: Any) -> torch.Tensor:
    """``fn(x, *args)``, with autocast off and ``x`` in fp32 when autocast is on for ``x``'s device (as is,
    otherwise, and while FX traces)."""
    if torch.fx._symbolic_trace.is_fx_symbolic_tracing() or not torch.is_autocast_enabled(x.device.type):
        return fn(x, *args)
    with torch.autocast(x.device.type, enabled=False):
        return fn(x.float(), *args)


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
