"""Pretraining configuration: YAML recipes merged over defaults, dotted ``key=value`` overrides.

A recipe file holds a (partial) nested mapping of the keys in :data:`DEFAULTS`; unknown keys
are an error that names the key and its closest valid spelling. ``loss`` is free-form: its
entries are passed to ``otzoo.losses.create_loss`` as hyperparameters (the loss validates
them). Values of overrides are parsed as YAML (``epochs=2``, ``aug.jitter=[0.4,0.4,0.4,0.1]``,
``data.dir=null``), and numbers such as ``1e-6`` are accepted for float keys.
"""
import copy
import difflib
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import yaml

__all__ = ["DEFAULTS", "ConfigError", "load_config", "apply_overrides", "validate", "dump_config", "with_defaults",
           "parse_duration"]

DEFAULTS: Dict[str, Any] = {
    "method": "simclr",             # otzoo.losses name (two-view + projector) or "byol"
    "arch": "resnet18_cifar",       # otzoo.create_model name, built with num_classes=0
    "dataset": "cifar10",           # torchvision name, or any name with data.dir; "synthetic" for tests
    "seed": 0,
    "epochs": 100,
    "batch_size": 256,              # global batch (images; each gives two views), split across ranks
    "run_name": None,               # default "<recipe>_<method>_<arch>"
    "output_dir": None,             # default runs/<run_name>
    "loss": {},                     # hyperparameters for create_loss (default: losses.md defaults)
    "data": {
        "dir": None,                # ImageFolder root with train/ and test/ ($OTZOO_DATA if unset)
        "variant": None,            # recorded in run.json, e.g. "CIFAR-10 (JPEG q75 copy)"
        "subset": None,             # use only this many evenly spaced training images
        "decode_size": None,        # resize (shorter side + center crop) when decoding; None keeps size
        "cache_dir": None,          # where decoded uint8 arrays are cached (.npy); None: no cache
        "stream": None,             # true: decode each step's images as it needs them (bounded memory); false: the
                                    # whole split once, into memory; None: stream when that would exceed a quarter of
                                    # the memory (training.run.stream.memory_budget)
        "workers": None,            # processes decoding a streamed run's batches; None: the cores per process, <= 8
        "mean": [0.4914, 0.4822, 0.4465],
        "std": [0.2470, 0.2435, 0.2616],
    },
    "aug": {
        "policy": "simclr",         # simclr | large_erase | brightness | strong_crop
        "size": 32,                 # output side of RandomResizedCrop
        "crop_scale": [0.08, 1.0],
        "crop_ratio": [0.75, 1.3333333333333333],
        "hflip": 0.5,
        "jitter": [0.4, 0.4, 0.4, 0.1],  # brightness, contrast, saturation, hue
        "jitter_p": 0.8,
        "gray_p": 0.2,
        "blur_p": 0.0,              # Gaussian blur probability (SimCLR ImageNet: 0.5; kernel 10% of size)
        "blur_sigma": [0.1, 2.0],
    },
    "model": {
        "proj_hidden": 2048,
        "proj_dim": 128,
        "projector_bn": True,       # BN after the hidden Linear (off only for BN-free checks)
        "byol_proj_hidden": 4096,
        "byol_proj_dim": 256,
        "byol_pred_hidden": 4096,
        "ema_tau": 0.99,            # BYOL target EMA, cosine-annealed to 1
        "sync_bn": False,           # convert BN to SyncBatchNorm under DDP on CUDA
    },
    "optim": {
        "name": "sgd",              # sgd | lars (timm.optim.Lars; bias/norm excluded) | adamw (ViTs)
        "lr": 0.12,                 # peak learning rate at batch lr_batch
        "lr_batch": 256,            # lr scales linearly with batch_size / lr_batch
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 5.0e-4,     # not applied to biases and norm parameters
        "trust_coeff": 0.001,       # LARS
        "betas": [0.9, 0.999],      # AdamW
        "warmup_epochs": 0.0,
        "min_lr_ratio": 0.0,        # cosine decays to lr * min_lr_ratio
    },
    "engine": {
        "device": "auto",           # auto | cpu | cuda | cuda:N (auto: the GPU when there is one; torchrun: cuda:LOCAL_RANK)
        "precision": "auto",        # auto | bf16 | fp16 | fp32 (auto: bf16 on capable CPUs/GPUs, else fp16 AMP on CUDA, else fp32)
        "channels_last": True,
        "compile": False,           # torch.compile backbone and heads (Module.compile, in place)
        "deterministic": False,     # torch.use_deterministic_algorithms(warn_only=True)
        "threads": None,            # torch.set_num_threads; None keeps torch's default
        "reuse_memory": True,       # CPU: malloc keeps freed tensors for the next step (device.reuse_freed_memory)
        "log_every": 10,            # steps between metrics.jsonl records
        "checkpoint_minutes": 10.0,
        "progress": True,           # tqdm progress bar (rank 0)
        "knn_every": 0,             # kNN monitor (+ feature_rank, RankMe) every K epochs (0: off)
        "knn_train": 5000,          # memory-bank size of the kNN monitor
        "knn_test": 1000,
        "knn_k": 200,
        "knn_t": 0.1,
    },
}

FREE_FORM = ("loss",)


class ConfigError(ValueError):
    """Invalid recipe or override."""


def _merge(base: dict, update: dict, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{prefix}{key}"
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=1)
            hint = f" (did you mean {prefix}{close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {path!r}{hint}; valid keys here: {sorted(base)}")
        if key in FREE_FORM and prefix == "":
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"config key {path!r} must be a mapping of loss hyperparameters")
            out[key] = {**base[key], **copy.deepcopy(value)}
        elif isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {path!r} must be a mapping, got {value!r}")
            out[key] = _merge(base[key], value, prefix=f"{path}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def with_defaults(cfg: dict, defaults: dict = DEFAULTS) -> dict:
    """``cfg`` with the keys it lacks (added to :data:`DEFAULTS` after it was written) at their defaults."""
    out = copy.deepcopy(cfg)
    for key, value in defaults.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(out[key], dict) and key not in FREE_FORM:
            out[key] = with_defaults(out[key], value)
    return out


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text


def _coerce(path: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, list):
        if isinstance(value, (list, tuple)) and len(value) == len(default):
            return [_coerce(f"{path}[{i}]", v, d) for i, (v, d) in enumerate(zip(value, default))]
        raise ConfigError(f"config key {path!r} must be a list of {len(default)} values like {default}, got {value!r}")
    elif isinstance(default, dict):
        return value
    raise ConfigError(f"config key {path!r} expects a {type(default).__name__} (default {default!r}), got {value!r}")


def validate(cfg: dict, _defaults: dict = DEFAULTS, _prefix: str = "") -> dict:
    """Check key names and value types against :data:`DEFAULTS`; returns cfg with coerced types."""
    out = {}
    for key, value in cfg.items():
        path = f"{_prefix}{key}"
        if key not in _defaults:
            raise ConfigError(f"unknown config key {path!r}")
        default = _defaults[key]
        if isinstance(default, dict) and not (key in FREE_FORM and _prefix == ""):
            out[key] = validate(value, default, f"{path}.")
        else:
            out[key] = _coerce(path, value, default)
    if _prefix == "":
        if not isinstance(out["batch_size"], int) or out["batch_size"] < 2:
            raise ConfigError(f"batch_size must be an integer >= 2, got {out['batch_size']!r}")
        if out["epochs"] < 1:
            raise ConfigError(f"epochs must be >= 1, got {out['epochs']!r}")
        policies = ("simclr", "large_erase", "brightness", "strong_crop")
        if out["aug"]["policy"] not in policies:
            raise ConfigError(f"aug.policy must be one of {policies}, got {out['aug']['policy']!r}")
        if out["optim"]["name"] not in ("sgd", "lars", "adamw"):
            raise ConfigError(f"optim.name must be 'sgd', 'lars' or 'adamw', got {out['optim']['name']!r}")
        device = out["engine"]["device"]
        if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
            raise ConfigError(f"engine.device must be auto, cpu, cuda or cuda:N, got {device!r}")
        if out["engine"]["precision"] not in ("auto", "bf16", "fp16", "fp32"):
            raise ConfigError(f"engine.precision must be auto, bf16, fp16 or fp32, got {out['engine']['precision']!r}")
        _check_ranges(out)
        _check_method(out["method"])
    return out


# dotted key -> (lowest, highest, whether the lowest is allowed); None bounds are open; a None value is allowed
# where the default is None
RANGES = {
    "seed": (0, None, True), "optim.lr": (0, None, False), "optim.lr_batch": (0, None, False),
    "optim.momentum": (0, 1, True), "optim.weight_decay": (0, None, True), "optim.trust_coeff": (0, None, False),
    "optim.warmup_epochs": (0, None, True), "optim.min_lr_ratio": (0, 1, True),
    "aug.size": (1, None, True), "aug.hflip": (0, 1, True), "aug.jitter_p": (0, 1, True), "aug.gray_p": (0, 1, True),
    "aug.blur_p": (0, 1, True), "model.proj_hidden": (1, None, True), "model.proj_dim": (1, None, True),
    "model.byol_proj_hidden": (1, None, True), "model.byol_proj_dim": (1, None, True),
    "model.byol_pred_hidden": (1, None, True), "model.ema_tau": (0, 1, True),
    "data.subset": (1, None, True), "data.decode_size": (1, None, True),
    "engine.threads": (1, None, True), "engine.log_every": (1, None, True),
    "engine.checkpoint_minutes": (0, None, True),  # 0: after every step
    "engine.knn_every": (0, None, True), "engine.knn_train": (1, None, True), "engine.knn_test": (1, None, True),
    "engine.knn_k": (1, None, True), "engine.knn_t": (0, None, False),
}
# dotted key -> (lowest of the first value, highest of the second): a [low, high] pair, low <= high
PAIRS = {"aug.crop_scale": (0, 1), "aug.crop_ratio": (0, None), "aug.blur_sigma": (0, None)}


def _get(cfg: dict, key: str):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def _check_ranges(cfg: dict) -> None:
    """Values outside what the recipe can mean are refused, saying what is allowed (no silent training)."""
    for key, (low, high, closed) in RANGES.items():
        value = _get(cfg, key)
        if value is None:
            continue
        if (low is not None and (value < low or (value == low and not closed))) or (high is not None and value > high):
            allowed = f"{'>=' if closed else '>'} {low}" + (f" and <= {high}" if high is not None else "")
            raise ConfigError(f"{key} must be {allowed}, got {value!r}")
    for key, (low, high) in PAIRS.items():
        a, b = _get(cfg, key)
        if not (a > low and a <= b and (high is None or b <= high)):
            top = f" <= {high}" if high is not None else ""
            raise ConfigError(f"{key} must be [low, high] with {low} < low <= high{top}, got {[a, b]!r}")
    jitter = cfg["aug"]["jitter"]
    if min(jitter) < 0 or jitter[3] > 0.5:
        raise ConfigError(f"aug.jitter must be [brightness, contrast, saturation, hue] >= 0 with hue <= 0.5, "
                          f"got {jitter!r}")
    stream, workers = cfg["data"]["stream"], cfg["data"]["workers"]
    if stream not in (None, True, False):
        raise ConfigError(f"data.stream must be true, false or null (automatic), got {stream!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ConfigError(f"data.workers must be an integer >= 0 (0: decode in the training process) or null, "
                          f"got {workers!r}")
    if min(cfg["data"]["std"]) <= 0:
        raise ConfigError(f"data.std must be > 0 per channel, got {cfg['data']['std']!r}")


def _check_method(method: str) -> None:
    from otzoo.losses import list_losses

    methods = sorted(set(list_losses()) | {"byol"})
    if method not in methods and method not in list_losses(include_aliases=True):
        close = difflib.get_close_matches(method, methods, n=1)
        raise ConfigError(f"method {method!r} is not an otzoo loss or byol" + (f" (did you mean {close[0]!r}?)"
                          if close else "") + f"; methods: {', '.join(methods)}")


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    """Apply ``a.b=value`` strings (values parsed as YAML) to a copy of cfg."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. epochs=2 or data.dir=/path)")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node, defaults = cfg, DEFAULTS
        for i, part in enumerate(parts[:-1]):
            free = parts[0] in FREE_FORM
            if not free and (part not in defaults or not isinstance(defaults[part], dict)):
                raise ConfigError(_unknown(".".join(parts[: i + 1]), defaults, part))
            node = node.setdefault(part, {})
            defaults = defaults.get(part, {}) if not free else {}
        last = parts[-1]
        if parts[0] not in FREE_FORM or len(parts) == 1:
            if last not in defaults:
                raise ConfigError(_unknown(key, defaults, last))
        node[last] = _parse_value(text)
    return validate(cfg)


def _unknown(path: str, defaults: dict, part: str) -> str:
    close = difflib.get_close_matches(part, list(defaults), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown config key {path!r}{hint}; valid keys: {sorted(defaults)}"


def load_config(path: Optional[str] = None, overrides: Iterable[str] = ()) -> dict:
    """DEFAULTS <- YAML file at ``path`` <- overrides; validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} not found; recipes live in training/configs/")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{p} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p} must hold a YAML mapping of config keys")
        try:
            cfg = _merge(cfg, data)
        except ConfigError as err:
            raise ConfigError(f"{p}: {err}") from None
    return apply_overrides(validate(cfg), overrides)


def dump_config(cfg: dict, path) -> None:
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)


def parse_duration(text) -> Optional[float]:
    """'150m', '2h', '90s', '1h30m' or plain seconds -> seconds (None passes through)."""
    if text is None:
        return None
    s = str(text).strip().lower()
    try:
        return float(s)
    except ValueError:
        pass
    total, num = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    for ch in s:
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total, num = total + float(num) * units[ch], ""
        else:
            raise ValueError(f"cannot parse duration {text!r}; use e.g. 150m, 2h, 1h30m or 5400 (seconds)")
    if num:
        raise ValueError(f"duration {text!r} has a number without unit; use e.g. 150m, 2h or 90s")
    return total
