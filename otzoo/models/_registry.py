"""Name registry: otzoo architectures, their pretrained weights, and the mirror in timm's registry.

Architectures are registered with :func:`register_model`; weights with :func:`register_pretrained`
(import registers every ``otzoo/pretrained/<name>.json``). otzoo's own architectures and their
weight tags (``<arch>.<method>_<dataset>``) are also registered in timm's registry, so
``timm.create_model("resnet18_cifar.<method>_<dataset>", pretrained=True)`` works after
``import otzoo``; timm's built-ins (``resnet18``, ``vit_base_patch16_224``...) are never replaced.
"""
import copy
import difflib
import fnmatch
import json
import sys
import warnings
from importlib import resources
from typing import Any, Callable, Dict, List, Optional, Union

import timm.models
from timm.models import PretrainedCfg, generate_default_cfgs

from ._cfg import TIMM_CFG_FIELDS, WeightCfg, validate_weight_cfg

__all__ = [
    "register_model", "register_pretrained", "unregister_pretrained", "list_models",
    "list_pretrained", "list_architectures", "is_model", "is_pretrained", "get_pretrained_cfg",
    "get_arch_default_cfg", "get_weight_cfg", "model_entrypoint", "resolve_model_name", "UnknownModelError",
    "has_timm_tags",
]

_entrypoints: Dict[str, Callable] = {}  # architecture -> constructor fn(pretrained=False, **kwargs)
_in_timm: Dict[str, Callable] = {}  # otzoo architectures mirrored in timm's registry
_base_cfgs: Dict[str, Dict[str, Any]] = {}  # architecture -> cfg from its module's default_cfgs
_pretrained: Dict[str, WeightCfg] = {}  # weight name -> its record
_package_loaded = False  # until the shipped weights are registered, timm registration waits (one per arch)


class UnknownModelError(ValueError):
    """Raised for a name that is neither an otzoo architecture nor a weight."""


def timm_cfg(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The subset of an otzoo pretrained cfg that timm's ``PretrainedCfg`` understands (lists as tuples)."""
    out = {}
    for k, v in cfg.items():
        if k in TIMM_CFG_FIELDS and k != "state_dict":
            out[k] = tuple(v) if isinstance(v, list) else v
    return out


def has_timm_tags(architecture: str) -> bool:
    """Whether the weights of ``architecture`` have timm tags (``timm.create_model(cfg["tag"])``): otzoo's own
    architectures do; timm's built-ins (``resnet18``, ...) stay timm's, and their weights go through
    ``otzoo.models.timm_overlay``."""
    return architecture in _in_timm


def register_model(fn: Callable) -> Callable:
    """Decorator: register ``fn(pretrained=False, **kwargs)`` as otzoo architecture ``fn.__name__``.

    Names timm does not already define are registered in timm's registry too, with the tags of
    every weight registered for them.
    """
    name = fn.__name__
    _entrypoints[name] = fn
    module_cfgs = getattr(sys.modules[fn.__module__], "default_cfgs", {})
    if isinstance(module_cfgs.get(name), dict):
        _base_cfgs[name] = dict(module_cfgs[name])
    if name in _in_timm or not timm.models.is_model(name):
        _in_timm[name] = fn
        if _package_loaded:
            _sync_timm(name)
    return fn


def _sync_timm(arch: str) -> None:
    """Register ``arch`` in timm with its default cfg and one tag per registered weight.

    At import this runs once per architecture, after the shipped weights are registered. A weight
    registered or removed later re-registers its architecture: timm has no call that adds or
    removes one tag, and its ``register_model`` replaces a name's previous entries, tags included."""
    fn = _in_timm.get(arch)
    if fn is None:
        return
    module = sys.modules[fn.__module__]
    cfgs = {arch: PretrainedCfg(**timm_cfg(_base_cfgs.get(arch, {})))}
    for cfg in _pretrained.values():
        if cfg.architecture == arch:
            cfgs[cfg.tag] = PretrainedCfg(**cfg.timm_kwargs())
    if not hasattr(module, "default_cfgs"):
        module.default_cfgs = {}
    default = generate_default_cfgs(cfgs)[arch]
    default.tags.remove("")  # timm would make the first weight the arch's default; a bare arch name
    default.tags.appendleft("")  # stays random-init, as in otzoo.create_model
    module.default_cfgs[arch] = default  # timm reads this at registration
    with warnings.catch_warnings():  # re-registering our own name replaces its stale tag list
        warnings.simplefilter("ignore")
        timm.models.register_model(fn)


HUB_ORG, WEIGHTS_FILENAME, LICENSE = "otzoo", "model.safetensors", "apache-2.0"


def weight_identity(name: str, arch: str, method: Optional[str] = None,
                    dataset: Optional[str] = None) -> Dict[str, str]:
    """The names a weight is known by, derived in this one place (registry, ``save_pretrained``,
    export and publish use it): timm ``tag`` ``<arch>.<method>_<dataset>`` (``<arch>.<name>``
    without method and dataset), ``hf_hub_id`` ``otzoo/<name>``, ``filename`` and ``license``."""
    suffix = f"{method}_{dataset}" if method and dataset else name
    return {"tag": f"{arch}.{suffix}", "hf_hub_id": f"{HUB_ORG}/{name}", "filename": WEIGHTS_FILENAME,
            "license": LICENSE}


def _check_cfg(cfg_in: Dict[str, Any]) -> WeightCfg:
    cfg = dict(validate_weight_cfg(cfg_in))
    name, arch = cfg["name"], cfg["architecture"]
    if arch not in _entrypoints:
        raise ValueError(f"pretrained cfg {name!r} names unknown architecture {arch!r}; "
                         f"known architectures: {list_architectures()}")
    if name in _entrypoints:
        raise ValueError(f"weight name {name!r} clashes with an architecture name")
    for k, v in weight_identity(name, arch, cfg.get("method"), cfg.get("dataset")).items():
        cfg.setdefault(k, v)
    base = get_arch_default_cfg(arch)
    for k, v in base.items():  # every timm field of the architecture survives
        if k in TIMM_CFG_FIELDS and k not in cfg:
            cfg[k] = v
    if "pool_size" not in cfg_in and base.get("pool_size") and tuple(cfg["input_size"]) != tuple(base["input_size"]):
        cfg["pool_size"] = _scaled_pool_size(base, cfg["input_size"])
    return WeightCfg.from_dict(cfg)


def _scaled_pool_size(base: Dict[str, Any], input_size) -> tuple:
    """The architecture's final feature-map size at another input size (e.g. ResNet 224 -> 7, 128 -> 4)."""
    return tuple(-(-int(s) * int(p) // int(b)) for s, p, b in zip(input_size[1:], base["pool_size"],
                                                                     base["input_size"][1:]))


def register_pretrained(cfg: Union[Dict[str, Any], WeightCfg]) -> Dict[str, Any]:
    """Register a weight's pretrained cfg (as read from ``otzoo/pretrained/<name>.json``, or its record).

    Needs at least ``name``, ``architecture`` and ``sha256`` (of the weight file); fills ``tag``, ``hf_hub_id``
    (``otzoo/<name>``), ``filename`` and every timm cfg field of the architecture's default cfg
    (``pool_size``, ``first_conv``, ``classifier``, ``crop_pct``, ...) when absent.
    Re-registering a name replaces it. Returns a copy of the registered cfg as a dict (the record itself:
    :func:`get_weight_cfg`).
    """
    record = _check_cfg(cfg.to_dict() if isinstance(cfg, WeightCfg) else cfg)
    _pretrained[record.name] = record
    if _package_loaded:
        _sync_timm(record.architecture)
    return copy.deepcopy({k: v for k, v in vars(record).items() if v is not None})


def unregister_pretrained(name: str) -> None:
    """Remove a weight registered with :func:`register_pretrained` (and its timm tag)."""
    cfg = _pretrained.pop(name, None)
    if cfg is not None:
        _sync_timm(cfg.architecture)


def _load_package_cfgs() -> None:
    """Register every shipped ``otzoo/pretrained/*.json``, then mirror each architecture in timm once."""
    global _package_loaded
    folder = resources.files("otzoo") / "pretrained"
    entries = sorted(folder.iterdir(), key=lambda p: p.name) if folder.is_dir() else []
    for entry in entries:
        if entry.name.endswith(".json"):
            register_pretrained(json.loads(entry.read_text(encoding="utf-8")))
    _package_loaded = True
    for arch in _in_timm:
        _sync_timm(arch)


def list_architectures(filter: str = "") -> List[str]:
    """Architecture names (random-init models), sorted."""
    return sorted(n for n in _entrypoints if fnmatch.fnmatch(n, filter or "*"))


def list_pretrained(filter: str = "") -> List[str]:
    """Weight names ``<method>_<arch>_<dataset>``, sorted; ``filter`` is a shell-style pattern."""
    return sorted(n for n in _pretrained if fnmatch.fnmatch(n, filter or "*"))


def list_models(filter: str = "", pretrained: bool = False) -> List[str]:
    """Every name :func:`otzoo.create_model` accepts: architectures, then weights.

    ``pretrained=True`` lists only the weights. ``filter`` is a shell-style pattern (``"*cifar*"``).
    """
    if pretrained:
        return list_pretrained(filter)
    return list_architectures(filter) + list_pretrained(filter)


def is_model(name: str) -> bool:
    """True for an otzoo architecture or weight name."""
    return name in _entrypoints or name in _pretrained


def is_pretrained(name: str) -> bool:
    """True for a weight name."""
    return name in _pretrained


def model_entrypoint(arch: str) -> Callable:
    return _entrypoints[arch]


def get_arch_default_cfg(arch: str) -> Dict[str, Any]:
    """The cfg a random-init ``arch`` carries (input size, mean/std, classifier...), without weight sources."""
    if arch in _base_cfgs:
        cfg = dict(_base_cfgs[arch])
    else:
        cfg = timm.models.get_pretrained_cfg(arch).to_dict()
        for k in ("url", "file", "hf_hub_id", "hf_hub_filename", "source", "tag", "test_input_size",
                  "test_crop_pct", "origin_url", "paper_ids", "paper_name", "notes", "description"):
            cfg.pop(k, None)
    cfg["architecture"] = arch
    return cfg


def get_pretrained_cfg(name: str) -> Dict[str, Any]:
    """A copy of the pretrained cfg of weight ``name`` as a dict (or the default cfg of architecture ``name``)."""
    if name in _pretrained:
        return _pretrained[name].to_dict()
    if name in _entrypoints:
        return get_arch_default_cfg(name)
    raise _unknown(name)


def get_weight_cfg(name: str) -> WeightCfg:
    """The registered record of weight ``name`` (a weight name, timm tag or hub id), typed and frozen."""
    weight = resolve_model_name(name)
    if weight is None:
        raise UnknownModelError(f"{name!r} is an architecture (random init), not a weight; weights of it: "
                                f"{[n for n, c in _pretrained.items() if c.architecture == name]}")
    return _pretrained[weight]


def _by_tag_or_hub_id(key: str) -> Optional[str]:
    for name, cfg in _pretrained.items():
        if key in (cfg.tag, cfg.hf_hub_id):
            return name
    return None


def resolve_model_name(name: str) -> Union[str, None]:
    """Map a weight name, timm tag (``resnet18_cifar.<method>_<dataset>``) or hub id
    (``otzoo/<name>``) to the otzoo weight name; None for an architecture; raise for unknown names."""
    if name in _pretrained:
        return name
    if name in _entrypoints:
        return None
    found = _by_tag_or_hub_id(name.removeprefix("hf-hub:"))
    if found is None:
        raise _unknown(name)
    return found


def _unknown(name: str) -> UnknownModelError:
    names = list_models()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return UnknownModelError(f"Unknown otzoo model {name!r}.{hint} See otzoo.list_models() for all {len(names)} "
                             f"names (architectures: {list_architectures()}).")
