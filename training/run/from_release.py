"""Starting a run from a released weight (``pretrain --init NAME``): its backbone, and its pretraining heads
where the new run's method has the same ones, sha256-checked through otzoo's loader before anything is written.
"""
from typing import Dict

import torch
from torch import nn

__all__ = ["ReleaseState", "read_release", "apply_release", "release_config", "read_continuation"]


class ReleaseState:
    """A release's tensors for a new run: ``backbone`` (no classifier), ``heads`` (``{}`` when not shipped)."""

    def __init__(self, name: str, cfg: dict, backbone: Dict[str, torch.Tensor], heads: Dict[str, torch.Tensor]):
        self.name, self.cfg, self.backbone, self.heads = name, cfg, backbone, heads

    def record(self, heads_loaded: bool) -> dict:
        """What ``run.json`` says of it."""
        return {"name": self.name, "sha256": self.cfg["sha256"], "heads": heads_loaded,
                "epochs": (self.cfg.get("budget") or {}).get("epochs")}


def read_release(name: str, arch: str) -> ReleaseState:
    """The sha256-checked tensors of registered weight ``name`` for a run of ``arch``; ValueError saying what to do
    when it is unknown, of another architecture, or a file fails its check."""
    import otzoo
    from otzoo.models import ChecksumError, CorruptWeightsError, read_state_dict, resolve_weight_file

    cfg = otzoo.get_pretrained_cfg(name)  # UnknownModelError (a ValueError) with close names
    if not otzoo.models.is_pretrained(name):
        raise ValueError(f"--init {name}: an architecture, not a released weight; see otzoo.list_pretrained()")
    if cfg["architecture"] != arch:
        raise ValueError(f"--init {name}: its backbone is a {cfg['architecture']!r}, the recipe trains a {arch!r}; "
                         f"set arch={cfg['architecture']}")
    try:
        weights = read_state_dict(resolve_weight_file(cfg), cfg["sha256"])
        heads = _read_heads(cfg, read_state_dict, resolve_weight_file)
    except (ChecksumError, CorruptWeightsError) as err:
        raise ValueError(f"--init {name}: {err}") from None
    classifier = f"{cfg.get('classifier')}."
    backbone = {k: v for k, v in weights.items() if not k.startswith(classifier)}
    return ReleaseState(name, cfg, backbone, heads)


def _read_heads(cfg: dict, read_state_dict, resolve_weight_file) -> Dict[str, torch.Tensor]:
    heads = cfg.get("heads")
    if not heads:
        return {}
    return read_state_dict(resolve_weight_file({**cfg, "filename": heads["filename"]}), heads["sha256"])


def apply_release(method: nn.Module, state: ReleaseState, heads_required: bool = False) -> bool:
    """Load ``state`` into ``method`` (fp32): the backbone strictly; the heads when they are exactly the method's
    (same names and shapes), else left as initialised (``heads_required``: ValueError). Returns whether the heads
    were loaded."""
    method.backbone.load_state_dict({k: v.float() if v.is_floating_point() else v
                                     for k, v in state.backbone.items()}, strict=True)
    own = {k: v for k, v in method.state_dict().items() if not k.startswith("backbone.")}
    fits = bool(state.heads) and state.heads.keys() == own.keys() and all(
        state.heads[k].shape == own[k].shape for k in own)
    if heads_required and not fits:
        why = "it ships no heads" if not state.heads else "its heads are another method's or size"
        raise ValueError(f"{state.name}: {why}; a run continues only with its own heads (start anew with --init)")
    if fits:
        method.load_state_dict({**_prefixed(method.backbone.state_dict()), **state.heads}, strict=True)
    return fits


def _prefixed(backbone: Dict[str, torch.Tensor], prefix: str = "backbone.") -> Dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in backbone.items()}



def release_config(name: str) -> dict:
    """The recipe (resolved config) that produced registered weight ``name``, its data folder left to
    ``--data-dir`` / ``$OTZOO_DATA`` (the release records a placeholder)."""
    import copy

    import otzoo

    config = copy.deepcopy((otzoo.get_pretrained_cfg(name).get("recipe") or {}).get("config") or {})
    if not config:
        raise ValueError(f"--resume-from {name}: the release records no training config to continue")
    config.setdefault("data", {})["dir"] = None
    from .config import with_defaults

    return with_defaults(config)  # keys added to the recipe schema after the release, at their defaults


def read_continuation(name: str, arch: str) -> ReleaseState:
    """The release whose run ``--resume-from`` continues: read and checked like ``--init``, and it must ship its
    heads and stand before the end of its schedule."""
    state = read_release(name, arch)
    budget = state.cfg.get("budget") or {}
    schedule = budget.get("schedule")
    if not state.heads:
        raise ValueError(f"--resume-from {name}: the release ships no pretraining heads, so its run cannot continue "
                         f"exactly; start a new run from its backbone with --init {name}")
    if not schedule or budget.get("steps", 0) >= schedule["steps"]:
        raise ValueError(f"--resume-from {name}: its run completed its schedule; nothing to continue "
                         f"(--init {name} starts a new run from it)")
    return state
