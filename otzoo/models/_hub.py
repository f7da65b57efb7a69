"""Writing a weight folder (``model.safetensors`` + timm-style ``config.json``) and reading its config."""
import copy
import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
import torch.nn as nn
from timm.models import save_for_hf

from ._cfg import validate_weight_cfg
from ._registry import WEIGHTS_FILENAME, timm_cfg, weight_identity
from ._transforms import resolve_data_config
from ._weights import sha256_file

__all__ = ["save_pretrained", "read_config"]

WEIGHTS_NAME = WEIGHTS_FILENAME  # the file timm's save_for_hf writes
CONFIG_NAME = "config.json"
_SOURCE_KEYS = ("url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source", "tag")


def save_pretrained(model: nn.Module, folder: Union[str, Path], *, dtype: Optional[torch.dtype] = None,
                    **meta: Any) -> Dict[str, Any]:
    """Write ``folder/model.safetensors`` and ``folder/config.json``; return the complete pretrained cfg.

    Tensors keep the model's own dtypes, so a saved model reloads exactly; ``dtype`` (e.g.
    ``torch.float16``, as the released weights) casts the floating-point ones (integer
    buffers stay int64). The cfg records the stored floating-point ``dtype``. ``config.json`` has
    timm's ``save_for_hf`` layout (architecture, num_classes, num_features, global_pool,
    model_args, pretrained_cfg) so ``timm.create_model("hf-hub:<repo>")`` reads it, plus the full
    otzoo cfg under ``"otzoo"``. ``meta`` (name, method, dataset, metrics, label_names, mean, std...)
    is merged with architecture, num_classes, filename, sha256 and the data config; ``name`` also
    fills ``hf_hub_id`` and ``tag`` (``otzoo.models._registry.weight_identity``).
    Saving an unchanged model again gives the same file and sha256.
    """
    if not hasattr(model, "forward_head") or not hasattr(model, "pretrained_cfg"):
        raise TypeError("save_pretrained needs a full otzoo/timm model (not a features_only wrapper); "
                        "create it with otzoo.create_model(arch) and load your state dict into it")
    folder = Path(folder)
    base = {k: v for k, v in timm_cfg(dict(model.pretrained_cfg)).items() if k not in _SOURCE_KEYS}
    arch = meta.get("architecture") or model.pretrained_cfg.get("architecture")
    if not arch:
        raise ValueError("model.pretrained_cfg has no 'architecture'; pass architecture=... to save_pretrained")
    validate_weight_cfg({"name": arch, "sha256": "(written below)", **meta, "architecture": arch})  # before any write
    folder.mkdir(parents=True, exist_ok=True)
    label_names = meta.get("label_names", base.pop("label_names", None))
    if label_names is not None and len(label_names) != model.num_classes:
        label_names = None  # the head changed; the old names no longer apply
    data_cfg, stored = _write_weights(model, folder, dtype, {**base, **timm_cfg(meta), "architecture": arch},
                                      label_names)

    ident = weight_identity(meta.get("name") or arch, arch, meta.get("method"), meta.get("dataset"))
    cfg: Dict[str, Any] = {**data_cfg, "first_conv": base.get("first_conv"), "classifier": base.get("classifier"),
                           "license": ident["license"], "dtype": stored}
    cfg.update(meta)
    cfg.update(architecture=arch, num_classes=model.num_classes, num_features=model.num_features,
               filename=WEIGHTS_NAME, sha256=sha256_file(folder / WEIGHTS_NAME))
    if label_names is not None:
        cfg["label_names"] = list(label_names)
    if cfg.get("name"):
        cfg.setdefault("hf_hub_id", ident["hf_hub_id"])
        cfg.setdefault("tag", ident["tag"])
    cfg = json.loads(json.dumps(cfg))  # exactly what config.json holds (tuples become lists)

    config_path = folder / CONFIG_NAME
    hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    hf_config["otzoo"] = cfg
    config_path.write_text(json.dumps(hf_config, indent=2) + "\n", encoding="utf-8")
    return cfg


def _write_weights(model: nn.Module, folder: Path, dtype: Optional[torch.dtype], pretrained_cfg: dict,
                   label_names) -> tuple:
    """timm's ``save_for_hf`` of a CPU copy of ``model`` (cast to ``dtype``) carrying ``pretrained_cfg``
    (without label names); returns its data config and the stored floating-point dtype(s), e.g. ``"float16"``."""
    saved = copy.deepcopy(model).cpu()
    if dtype is not None:
        saved = saved.to(dtype=dtype)  # leaves integer buffers alone
    stored = sorted({str(t.dtype).removeprefix("torch.") for t in saved.state_dict().values() if t.is_floating_point()})
    saved.pretrained_cfg = {k: v for k, v in pretrained_cfg.items() if k != "label_names"}
    data_cfg = resolve_data_config(saved)
    model_config = {"label_names": list(label_names)} if label_names is not None else None
    save_for_hf(saved, folder, model_config=model_config, safe_serialization=True)
    return data_cfg, "/".join(stored)


def read_config(path: Union[str, Path]) -> Dict[str, Any]:
    """The pretrained cfg stored in a ``config.json``: otzoo's full cfg, or timm's fields for a plain timm export;
    checked like a registered cfg (known fields, their types, plain file names, a sane input size)."""
    try:
        hf_config = json.loads(Path(path).read_text(encoding="utf-8"))
        cfg = dict(hf_config.get("pretrained_cfg", {}))
        for k in ("architecture", "num_classes", "label_names", "num_features"):
            if k in hf_config:
                cfg[k] = hf_config[k]
        cfg.update(hf_config.get("otzoo", {}))
        return validate_weight_cfg(cfg, partial=True)
    except (ValueError, AttributeError, TypeError) as err:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not a usable weight config ({err}); write the folder with "
                         "otzoo.save_pretrained(model, folder)") from None
