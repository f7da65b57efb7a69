"""A weight's pretrained cfg: timm's ``PretrainedCfg`` fields plus otzoo's (:class:`OtzooMeta`).

A registered weight is one typed, frozen record, :class:`WeightCfg` (``otzoo.models.get_weight_cfg``); on
disk and across the public API (``otzoo/pretrained/<name>.json``, the ``"otzoo"`` entry of a weight's
``config.json``, ``get_pretrained_cfg``, ``model.pretrained_cfg``) it is one flat dict of the same fields:
timm's (input size, mean, std, crop, classifier...) and otzoo's (identity, provenance, measured metrics).
:func:`validate_weight_cfg` checks names and types, so a misspelt or mistyped key fails where the cfg is
made, naming the key and the closest field.
"""
import copy
import dataclasses
import difflib
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from timm.models import PretrainedCfg

__all__ = ["OtzooMeta", "WeightCfg", "TIMM_CFG_FIELDS", "WEIGHT_CFG_FIELDS", "validate_weight_cfg",
           "check_file_name"]

TIMM_CFG_FIELDS = tuple(f.name for f in dataclasses.fields(PretrainedCfg))


@dataclass
class OtzooMeta:
    """otzoo's fields of a weight cfg (``name``, ``architecture`` and ``sha256`` are required)."""
    name: str
    architecture: str
    sha256: str
    filename: str = "model.safetensors"
    dtype: Optional[str] = None  # floating-point dtype of the stored tensors, e.g. "float16"
    num_features: Optional[int] = None
    label_names: Optional[List[str]] = None
    model_args: Optional[Dict[str, Any]] = None  # constructor arguments the weight is built with (MODEL_ARGS)
    method: Optional[str] = None  # otzoo.losses name (or "byol")
    dataset: Optional[str] = None
    dataset_variant: Optional[str] = None  # the exact copy the metrics were measured on
    recipe: Dict[str, Any] = field(default_factory=dict)  # resolved training config
    budget: Dict[str, Any] = field(default_factory=dict)  # epochs, views, hardware, wall time
    metrics: Dict[str, Any] = field(default_factory=dict)  # measured by export / measure
    paper: Dict[str, Any] = field(default_factory=dict)
    reproduce: Dict[str, Any] = field(default_factory=dict)  # the commands
    figures: List[str] = field(default_factory=list)
    heads: Dict[str, Any] = field(default_factory=dict)  # pretraining's heads file: filename, sha256
    otzoo_version: Optional[str] = None
    torch_version: Optional[str] = None
    pretrain_otzoo_version: Optional[str] = None


_META_TYPES = typing.get_type_hints(OtzooMeta)
_TIMM_TYPES = typing.get_type_hints(PretrainedCfg)
WEIGHT_CFG_FIELDS = tuple(dict.fromkeys(TIMM_CFG_FIELDS + tuple(_META_TYPES)))
_REQUIRED = tuple(f.name for f in dataclasses.fields(OtzooMeta) if f.default is dataclasses.MISSING
                  and f.default_factory is dataclasses.MISSING)


def _accepts(hint, value) -> bool:
    if value is None or hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        return any(_accepts(h, value) for h in typing.get_args(hint) if h is not type(None))
    if origin in (list, tuple, typing.Tuple, List):
        return isinstance(value, (list, tuple))
    if origin in (dict, Dict):
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _check_input_size(cfg: Dict[str, Any]) -> None:
    size = cfg.get("input_size")
    if size is None:
        return
    ok = (isinstance(size, (list, tuple)) and len(size) == 3 and all(isinstance(v, int) for v in size)
          and 1 <= size[0] <= 4 and all(1 <= v <= 4096 for v in size[1:]))
    if not ok:
        raise ValueError(f"weight cfg {cfg.get('name', '?')!r}: input_size must be [channels 1-4, height, width] "
                         f"with sides of 1-4096 pixels, got {size!r}")


MODEL_ARGS = ("fp32_stages",)  # what a weight cfg may pass to its architecture's constructor


def _check_model_args(cfg: Dict[str, Any]) -> None:
    unknown = sorted(set(cfg.get("model_args") or {}) - set(MODEL_ARGS))
    if unknown:
        raise ValueError(f"weight cfg {cfg.get('name', '?')!r}: model_args {unknown} are not allowed; a weight cfg "
                         f"may set only {list(MODEL_ARGS)} (pass other arguments to create_model yourself)")


_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_file_name(what: str, value: str) -> str:
    """``value`` when it can name one file or folder inside another (a weight's ``name`` and ``filename`` become
    paths): letters, digits, ``_ . -``, no leading dot, no ``..``, no path separator; else ValueError."""
    if not isinstance(value, str) or not _FILE_NAME.fullmatch(value) or ".." in value or len(value) > 200:
        raise ValueError(f"{what} {value!r} is not allowed: use letters, digits, '_', '.' and '-' (starting with a "
                         "letter or digit, no '..', no path separators), e.g. gca_uot_resnet18_cifar10")
    return value


def validate_weight_cfg(cfg: Dict[str, Any], partial: bool = False) -> Dict[str, Any]:
    """``cfg`` itself when every key is a known field of the right type; else ValueError naming it.
    ``partial``: a folder's config.json, which may lack otzoo's required fields (a plain timm export)."""
    missing = [] if partial else [k for k in _REQUIRED if not cfg.get(k)]
    if missing:
        raise ValueError(f"weight cfg {cfg.get('name', '?')!r} is missing {missing}")
    if "name" in cfg or not partial:
        check_file_name("weight name", cfg["name"])
    check_file_name(f"weight cfg {cfg.get('name', '?')!r}: filename", cfg.get("filename") or "model.safetensors")
    _check_input_size(cfg)
    _check_model_args(cfg)
    for key, value in cfg.items():
        hint = _META_TYPES.get(key, _TIMM_TYPES.get(key))
        if key not in WEIGHT_CFG_FIELDS:
            close = difflib.get_close_matches(key, WEIGHT_CFG_FIELDS, n=1)
            raise ValueError(f"weight cfg {cfg['name']!r}: unknown field {key!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else "")
                             + "; fields are timm's PretrainedCfg and otzoo.models.OtzooMeta")
        if not _accepts(hint, value):
            raise ValueError(f"weight cfg {cfg['name']!r}: field {key!r} expects {hint}, got {value!r}")
    return cfg


class _WeightCfgMethods:
    """The methods of :class:`WeightCfg` (its fields are made from OtzooMeta's and PretrainedCfg's below)."""

    @classmethod
    def from_dict(cls, cfg: Dict[str, Any]) -> "WeightCfg":
        """The record of a complete cfg dict (validated: unknown fields, wrong types and missing
        ``name`` / ``architecture`` / ``sha256`` raise ValueError naming them). The values are deep copies:
        the record's fields cannot be reassigned, and nothing the caller keeps can change them."""
        validate_weight_cfg(cfg)
        return cls(**copy.deepcopy(cfg))

    @classmethod
    def from_json(cls, source: Union[str, Path]) -> "WeightCfg":
        """The record of a cfg file (``otzoo/pretrained/<name>.json``) or JSON text."""
        text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> Dict[str, Any]:
        """The flat JSON dict (fields that are None left out; tuples as lists; a deep copy)."""
        return json.loads(json.dumps({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                      if getattr(self, f.name) is not None}))

    def to_json(self) -> str:
        """The cfg file's text: :meth:`to_dict`, indented, fields in the record's order."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def timm_kwargs(self) -> Dict[str, Any]:
        """The fields timm's ``PretrainedCfg`` takes (``PretrainedCfg(**cfg.timm_kwargs())``; lists as tuples)."""
        values = ((k, getattr(self, k)) for k in TIMM_CFG_FIELDS if k != "state_dict")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in values if v is not None}

    def replace(self, **changes) -> "WeightCfg":
        """A copy with ``changes`` applied and validated."""
        return type(self).from_dict({**self.to_dict(), **changes})


def _record_fields() -> list:
    own = [(f.name, _META_TYPES[f.name], field() if f.name in _REQUIRED else field(default=None))
           for f in dataclasses.fields(OtzooMeta)]
    timm = [(name, Optional[_TIMM_TYPES[name]], field(default=None)) for name in TIMM_CFG_FIELDS
            if name not in _META_TYPES]
    return own + timm


WeightCfg = dataclasses.make_dataclass(
    "WeightCfg", _record_fields(), bases=(_WeightCfgMethods,), frozen=True,
    namespace={"__doc__": "One registered weight: a frozen record of otzoo's fields (identity, provenance, "
                          "measured metrics; :class:`OtzooMeta`) then timm's ``PretrainedCfg`` fields (input "
                          "size, mean, std, classifier...). A field the cfg does not set is None. Build it "
                          "with :meth:`from_dict` / :meth:`from_json` (validated), write it with "
                          ":meth:`to_json`; ``timm_kwargs()`` gives timm's ``PretrainedCfg`` arguments."})
WeightCfg.__module__ = __name__
