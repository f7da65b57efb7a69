"""``create_model``: name resolution, building, and checked loading of a weight into the model."""
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
import torch.nn as nn
import timm
from timm.models import build_model_with_cfg, resolve_pretrained_cfg

from . import _registry
from ._hub import read_config
from ._registry import get_arch_default_cfg, get_pretrained_cfg, timm_cfg
from ._weights import (ChecksumError, NoPretrainedWeightsError, StateDictMismatchError, locate_checkpoint,
                       read_state_dict, resolve_weight_file)

__all__ = ["create_model", "build_model", "build_timm_model", "load_weights", "timm_overlay"]

UNLOADED_DROPS = ("metrics", "figures")  # of a weight's cfg, on a model created without its file


def timm_overlay(name: str) -> Dict[str, Any]:
    """``pretrained_cfg_overlay`` that loads otzoo weight ``name`` into timm's own architecture of that name
    (``resnet18``, ``resnet50``, ``vit_base_patch16_224`` stay timm's, so their otzoo weights have no timm tag):

        timm.create_model("resnet18", pretrained=True, pretrained_cfg_overlay=otzoo.models.timm_overlay(name))

    The weight's timm cfg fields (input size, mean/std, num_classes, ...) plus ``file``: its local file
    (``$OTZOO_WEIGHTS_DIR``, the checkout or the Hub cache), sha256-checked here."""
    cfg = get_pretrained_cfg(name)
    path = resolve_weight_file(cfg)
    read_state_dict(path, cfg.get("sha256"))  # raises ChecksumError / CorruptWeightsError
    return dict(timm_cfg(cfg), file=str(path))


def _is_features(model: nn.Module) -> bool:
    return not hasattr(model, "forward_head")  # timm's FeatureListNet / FeatureGetterNet wrappers


def load_weights(model: nn.Module, state_dict: Dict[str, torch.Tensor], cfg: Dict[str, Any],
                 source: str = "state dict") -> nn.Module:
    """Load ``state_dict`` (published with ``cfg["num_classes"]`` classes) into ``model``, strictly.

    The classifier (``cfg["classifier"]``) is skipped when the model has a different head size
    (``num_classes=0``: none; ``K``: a fresh, randomly initialised head, with a warning) or is a
    ``features_only`` wrapper. Raises :class:`StateDictMismatchError` listing missing, unexpected
    and mis-shaped keys.
    """
    classifiers = cfg.get("classifier") or ()
    classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
    head_keys = {f"{c}.{p}" for c in classifiers for p in ("weight", "bias")}
    own = model.state_dict()
    features = _is_features(model)
    if features and own and not any(k in own for k in state_dict) and any(f"model.{k}" in own for k in state_dict):
        state_dict = {f"model.{k}": v for k, v in state_dict.items()}  # FeatureGetterNet wraps the model
        head_keys = {f"model.{k}" for k in head_keys}
    state_dict = _adapt_first_conv(state_dict, own, cfg, prefix="model." if head_keys and
                                   all(k.startswith("model.") for k in head_keys) else "")
    published = cfg.get("num_classes")
    new_head = not features and published is not None and getattr(model, "num_classes", published) != published
    if features or new_head:
        state_dict = {k: v for k, v in state_dict.items() if k not in head_keys}
    missing = [k for k in own if k not in state_dict and not (new_head and k in head_keys)]
    unexpected = [] if features else [k for k in state_dict if k not in own]  # wrappers prune late layers
    shapes = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
              for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
    if missing or unexpected or shapes:
        arch = cfg.get("architecture", type(model).__name__)
        parts = [f"{label} ({len(keys)}): {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"
                 for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                     ("shape mismatches", shapes)) if keys]
        raise StateDictMismatchError(
            f"Weights from {source} do not fit {arch}:\n  " + "\n  ".join(parts) +
            f"\nCheck that the file was saved from a {arch} (otzoo.save_pretrained records the architecture in "
            f"config.json) and create the model under that architecture name.")
    empty = any(t.is_meta for t in own.values())
    if empty:  # built on the meta device: every tensor but a new head comes from the file
        model.to_empty(device="cpu")
    model.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False)
    if empty and new_head and model.num_classes > 0:
        model.reset_classifier(model.num_classes)  # a fresh, initialised head
    if new_head and model.num_classes > 0:
        warnings.warn(
            f"{cfg.get('name') or arch_name(cfg)}: the published head has {published} classes; created a new, randomly "
            f"initialised {model.num_classes}-class head ({', '.join(classifiers)}). Train it before use "
            f"(num_classes=None keeps the published head, num_classes=0 gives pooled features).", stacklevel=3)
    return model


def _adapt_first_conv(state_dict: Dict[str, torch.Tensor], own: Dict[str, torch.Tensor], cfg: Dict[str, Any],
                      prefix: str = "") -> Dict[str, torch.Tensor]:
    """The file's first conv (``cfg["first_conv"]``) adapted to the model's input channels, as timm
    does (``adapt_input_conv``: summed over RGB for 1 channel, RGB repeated and scaled by
    3 / in_chans for more), with a warning naming the adaptation; unchanged when they agree."""
    from timm.models import adapt_input_conv

    first = cfg.get("first_conv")
    key = f"{prefix}{first}.weight"
    if not first or key not in state_dict or key not in own or state_dict[key].dim() != 4:
        return state_dict
    have, want = state_dict[key].shape[1], own[key].shape[1]
    if have == want:
        return state_dict
    how = "summed over its input channels" if want == 1 else f"repeated and scaled by {have}/{want}"
    warnings.warn(f"{cfg.get('name') or arch_name(cfg)}: the pretrained first conv {first} takes {have} input "
                  f"channels; adapted it to in_chans={want} as timm does ({how}).", stacklevel=4)
    return {**state_dict, key: adapt_input_conv(want, state_dict[key])}


def arch_name(cfg: Dict[str, Any]) -> str:
    return cfg.get("architecture", "model")


def create_model(name: str, pretrained: bool = False, num_classes: Optional[int] = None,
                 checkpoint_path: Optional[Union[str, Path]] = None, **kwargs: Any) -> nn.Module:
    """Create an otzoo model.

    Args:
        name: an architecture (``resnet18_cifar``, ``resnet50_cifar``, ``resnet18``, ``resnet50``,
            ``vit_base_patch16_224``) or a weight (``<method>_<arch>_<dataset>``, see
            :func:`otzoo.list_pretrained`; its timm tag ``<arch>.<method>_<dataset>`` works too).
        pretrained: load the weight's file (``$OTZOO_WEIGHTS_DIR/<name>/``, then the checkout's
            ``weights/<name>/``, then the Hugging Face Hub), verifying its sha256.
        num_classes: ``None``: the published head of the weight (a linear probe on the frozen
            features) or the file's head; ``0``: no head, ``model(x)`` gives pooled features
            ``(B, num_features)``; ``K``: a new random ``K``-class head for fine-tuning.
        checkpoint_path: a ``model.safetensors`` file or a folder written by :func:`otzoo.save_pretrained`,
            loaded instead of the registered file; a ``config.json`` beside it becomes ``model.pretrained_cfg``.
            Under a weight's name the file must be that weight (its registered sha256 is checked); load
            your own files under the architecture name.
        **kwargs: passed to the timm model (``features_only``, ``out_indices``, ``drop_path_rate``, ...).

    Returns:
        An ``nn.Module`` with timm's interface (``forward_features``, ``forward_head``, ...).
    """
    weight = _registry.resolve_model_name(name)
    cfg = get_pretrained_cfg(weight) if weight else get_arch_default_cfg(name)
    if pretrained and weight is None and checkpoint_path is None:
        _refuse_architecture_pretrained(name, cfg["architecture"])
    state_dict, source = None, None
    if checkpoint_path is not None:
        state_dict, source, cfg = _read_checkpoint(checkpoint_path, name, cfg, cfg.get("sha256") if weight else None)
    elif pretrained:
        file = resolve_weight_file(cfg)
        state_dict, source = read_state_dict(file, cfg["sha256"]), str(file)
    kwargs = {**(cfg.get("model_args") or {}), **kwargs}  # the weight's own (e.g. fp32_stages); the caller's win
    if num_classes is None:
        num_classes = cfg.get("num_classes")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    model = _instantiate(cfg, skip_init=state_dict is not None and "device" not in kwargs, **kwargs)
    if state_dict is not None:
        load_weights(model, state_dict, cfg, source=source)
    if weight and state_dict is None:  # random init under a weight's name: its measurements are not this model's
        cfg = {k: v for k, v in cfg.items() if k not in UNLOADED_DROPS}
    model.pretrained_cfg = model.default_cfg = cfg
    return model


def _refuse_architecture_pretrained(name: str, arch: str) -> None:
    weights = _registry.list_pretrained(f"*_{arch.removesuffix('_cifar')}_*")
    weights = [w for w in weights if get_pretrained_cfg(w)["architecture"] == arch]
    hint = (f"Its weights: {', '.join(weights)}." if weights else "No otzoo weights exist for it yet.")
    raise NoPretrainedWeightsError(
        f"{name!r} is an architecture; otzoo weights have their own names (<method>_<arch>_<dataset>). "
        f"{hint} Use create_model(<weight name>, pretrained=True), pretrained=False for random init, or "
        f"checkpoint_path=... for your own file. All weights: otzoo.list_pretrained().")


def _read_checkpoint(checkpoint_path, name: str, cfg: Dict[str, Any], expected_sha: Optional[str]) -> tuple:
    """(state_dict, source, cfg) of a user's file or save_pretrained folder. Under an architecture name its
    config.json updates ``cfg`` and its sha256 is checked; under a registered weight's name the file must be that
    weight (the registered sha256, whatever the folder says) and the registered cfg wins."""
    arch, registered = cfg["architecture"], expected_sha is not None
    file, config = locate_checkpoint(checkpoint_path)
    if config is not None:
        file_cfg = read_config(config)
        if file_cfg.get("architecture", arch) != arch:
            raise ValueError(f"{config} describes a {file_cfg['architecture']!r} but {name!r} is a {arch!r}; "
                             f"use otzoo.create_model({file_cfg['architecture']!r}, checkpoint_path=...)")
        if not registered and Path(file).name == file_cfg.get("filename", "model.safetensors"):
            expected_sha = file_cfg.get("sha256")  # a folder's own hash only where no weight is registered
        cfg = {**file_cfg, **cfg} if registered else {**cfg, **file_cfg}
    state_dict = _read_registered(file, expected_sha, name, arch) if registered else read_state_dict(file, expected_sha)
    if config is None:  # the file's own head decides the default
        fc = f"{cfg.get('classifier')}.weight"
        cfg = {**cfg, "num_classes": state_dict[fc].shape[0] if fc in state_dict else 0}
    return state_dict, str(file), cfg


def _read_registered(file, sha256: str, name: str, arch: str) -> Dict[str, torch.Tensor]:
    """A file loaded under registered weight ``name``: it must be that weight (its registered sha256), whatever a
    folder's config.json says; another file loads under the architecture name."""
    try:
        return read_state_dict(file, sha256)
    except ChecksumError as err:
        raise ChecksumError(f"{file} is not the published {name} (its registered sha256 is {sha256}), so it does not "
                            f"load under that name or carry its metrics. Load your own file as "
                            f"otzoo.create_model({arch!r}, checkpoint_path=...).") from err


def _instantiate(cfg: Dict[str, Any], skip_init: bool, **kwargs: Any) -> nn.Module:
    """The architecture's model; ``skip_init`` (a file overwrites every tensor) builds it on the meta device
    unless it has non-persistent buffers, which need their init."""
    entrypoint = _registry.model_entrypoint(cfg["architecture"])
    if skip_init:
        model = entrypoint(pretrained=False, pretrained_cfg=timm_cfg(cfg), device="meta", **kwargs)
        persistent = set(model.state_dict())
        if all(n in persistent for n, _ in model.named_buffers()):
            return model
    return entrypoint(pretrained=False, pretrained_cfg=timm_cfg(cfg), **kwargs)


def build_model(model_cls: type, variant: str, pretrained: bool = False, pretrained_cfg: Any = None,
                pretrained_cfg_overlay: Optional[Dict[str, Any]] = None, **kwargs: Any) -> nn.Module:
    """timm's ``build_model_with_cfg`` for otzoo's own architectures.

    When timm asks for a registered otzoo weight (``timm.create_model("<arch>.<tag>", pretrained=True)``
    or ``"hf-hub:otzoo/<name>"``), the file is resolved and sha256-verified by otzoo; any other
    source goes through timm's loader.
    """
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg, pretrained_cfg_overlay).to_dict()
    hub_id = cfg.get("hf_hub_id") or ""
    weight = _registry._by_tag_or_hub_id(hub_id) if pretrained else None
    if pretrained and weight is None and hub_id.startswith("otzoo/"):  # e.g. a stale tag left by an older timm
        raise NoPretrainedWeightsError(
            f"{hub_id} is not a registered otzoo weight, so its sha256 cannot be checked; otzoo never loads an "
            f"unchecked weight. Register its cfg (otzoo.models.register_pretrained) or use "
            f"otzoo.create_model(<weight name>, pretrained=True). Registered: {_registry.list_pretrained()}")
    model = build_model_with_cfg(model_cls, variant, pretrained=pretrained and weight is None,
                                 pretrained_cfg=cfg, **kwargs)
    if weight is not None:
        wcfg = get_pretrained_cfg(weight)
        load_weights(model, read_state_dict(resolve_weight_file(wcfg), wcfg["sha256"]), wcfg, source=weight)
    return model


def build_timm_model(variant: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """A timm built-in architecture, random init (otzoo loads its weights itself)."""
    if pretrained:
        raise NoPretrainedWeightsError(f"use otzoo.create_model(<weight name>, pretrained=True) for {variant} weights")
    kwargs.setdefault("pretrained_cfg", timm_cfg(get_arch_default_cfg(variant)))
    return timm.create_model(variant, pretrained=False, **kwargs)
