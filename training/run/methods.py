"""Self-supervised methods: backbone + projector (+ BYOL predictor and EMA target) + loss.

``build_method(cfg, gather_distributed)`` returns an ``nn.Module`` whose ``forward(x1, x2)``
runs both views through the backbone in one batch and returns ``(loss, outputs)``:

- two-view methods (every ``otzoo.losses`` name except byol): projector
  Linear(F, 2048) + BN + ReLU + Linear(2048, 128), F = backbone ``num_features``;
  SinSim also gets the backbone features ``h1=, h2=``;
- ``byol``: projector F-4096-256 (BN, ReLU), predictor 256-4096-256, target = EMA copy of
  backbone + projector with tau annealed from ``ema_tau`` to 1 by a cosine over training.

Every method has the same interface, which is all the engine and ``plot_plan`` use:
``loss_inputs(x1, x2) -> (a, b, extras)`` (what its loss takes), ``forward`` (the loss and
the two embeddings), ``plan(x1, x2)`` (the loss's coupling), ``after_step(step, total_steps)``
(called after each optimizer step: BYOL's EMA update) and ``compiled_parts`` (the submodules
``engine.compile`` compiles; the loss stays eager).
"""
import copy
import math
from typing import Dict, Tuple

import torch
from torch import nn

__all__ = ["mlp", "Method", "ContrastiveMethod", "BYOLMethod", "build_method", "create_backbone", "create_loss"]


def create_backbone(arch: str) -> nn.Module:
    """``otzoo.create_model(arch, num_classes=0)``: pooled features (B, num_features)."""
    import otzoo

    return otzoo.create_model(arch, num_classes=0)


def create_loss(name: str, gather_distributed: bool = False, **hparams) -> nn.Module:
    from otzoo.losses import create_loss as _create

    return _create(name, gather_distributed=gather_distributed, **hparams)


def mlp(in_dim: int, hidden: int, out_dim: int, bn: bool = True) -> nn.Sequential:
    """Linear(in, hidden) [+ BN] + ReLU + Linear(hidden, out)."""
    layers = [nn.Linear(in_dim, hidden, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)]
    return nn.Sequential(*layers)


class Method(nn.Module):
    """Backbone + heads + loss; subclasses define ``loss_inputs`` and ``compiled_parts``."""

    compiled_parts: Tuple[str, ...] = ()

    def loss_inputs(self, x1: torch.Tensor, x2: torch.Tensor):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        a, b, extras = self.loss_inputs(x1, x2)
        return self.loss_fn(a, b, **extras), {"z1": a, "z2": b}

    @torch.no_grad()
    def plan(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        a, b, extras = self.loss_inputs(x1, x2)
        return self.loss_fn.plan(a, b, **extras)

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after optimizer step ``step`` (1-based) of ``total_steps``."""


class ContrastiveMethod(Method):
    """Backbone -> projector -> two-view loss ``loss(z1, z2[, h1=, h2=])``."""

    compiled_parts = ("backbone", "projector")

    def __init__(self, backbone: nn.Module, loss: nn.Module, hidden: int = 2048, out_dim: int = 128,
                 bn: bool = True, pass_features: bool = False):
        super().__init__()
        self.backbone, self.loss_fn, self.pass_features = backbone, loss, pass_features
        self.projector = mlp(backbone.num_features, hidden, out_dim, bn)

    def loss_inputs(self, x1: torch.Tensor, x2: torch.Tensor):
        h = self.backbone(torch.cat([x1, x2]))
        z1, z2 = self.projector(h).float().chunk(2)
        extras = {}
        if self.pass_features:
            h1, h2 = h.float().chunk(2)
            extras = {"h1": h1, "h2": h2}
        return z1, z2, extras


class BYOLMethod(Method):
    """BYOL: online backbone + projector + predictor vs an EMA target (backbone + projector)."""

    compiled_parts = ("backbone", "projector", "predictor", "target_backbone", "target_projector")

    def __init__(self, backbone: nn.Module, loss: nn.Module, proj_hidden: int = 4096, proj_dim: int = 256,
                 pred_hidden: int = 4096, tau: float = 0.99, bn: bool = True):
        super().__init__()
        self.backbone, self.loss_fn, self.tau_base = backbone, loss, tau
        self.projector = mlp(backbone.num_features, proj_hidden, proj_dim, bn)
        self.predictor = mlp(proj_dim, pred_hidden, proj_dim, bn)
        self.target_backbone = copy.deepcopy(backbone)
        self.target_projector = copy.deepcopy(self.projector)
        for p in self._target_params():
            p.requires_grad_(False)

    def _target_params(self):
        return list(self.target_backbone.parameters()) + list(self.target_projector.parameters())

    def _online_params(self):
        return list(self.backbone.parameters()) + list(self.projector.parameters())

    def tau(self, step: int, total_steps: int) -> float:
        """tau_base -> 1 with a cosine over training."""
        return 1.0 - (1.0 - self.tau_base) * (math.cos(math.pi * step / max(1, total_steps)) + 1) / 2

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> None:
        tau = self.tau(step, total_steps)
        torch._foreach_lerp_(self._target_params(), self._online_params(), 1.0 - tau)

    def after_step(self, step: int, total_steps: int) -> None:
        self.update_target(step, total_steps)

    def loss_inputs(self, x1: torch.Tensor, x2: torch.Tensor):
        x = torch.cat([x1, x2])
        p = self.predictor(self.projector(self.backbone(x)))
        with torch.no_grad():
            self.target_backbone.train(self.training)
            t = self.target_projector(self.target_backbone(x))
        p1, p2 = p.float().chunk(2)
        t1, t2 = t.float().chunk(2)
        return p1, p2, {"t1": t1, "t2": t2}


def build_method(cfg: dict, gather_distributed: bool = False) -> nn.Module:
    """The method of ``cfg["method"]`` on ``create_backbone(cfg["arch"])``."""
    name, m = cfg["method"], cfg["model"]
    backbone = create_backbone(cfg["arch"])
    if not hasattr(backbone, "num_features"):
        raise ValueError(f"backbone {cfg['arch']!r} has no num_features; use an otzoo/timm model")
    loss = create_loss(name, gather_distributed=gather_distributed, **cfg["loss"])
    if name == "byol":
        return BYOLMethod(backbone, loss, m["byol_proj_hidden"], m["byol_proj_dim"], m["byol_pred_hidden"],
                          m["ema_tau"], bn=m["projector_bn"])
    return ContrastiveMethod(backbone, loss, m["proj_hidden"], m["proj_dim"], bn=m["projector_bn"],
                             pass_features=(name == "sinsim"))
