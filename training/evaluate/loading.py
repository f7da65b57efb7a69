"""Loading what the evaluation commands evaluate: a run directory, a released weight or a folder.

Also where the data comes from (:func:`resolve_eval_data_dir`), how it is named in cards
(:func:`dataset_variant`) and the fixed subset behind ``subset_top1`` (:func:`first_n`).
"""
import json
import os
import re
import warnings
from pathlib import Path

import torch.nn as nn
from torch.utils.data import Dataset, Subset

import otzoo

__all__ = ["PAPER_DATASET_NAMES", "read_run", "load_run_model", "run_data_cfg", "released_weight", "load_model",
           "resolve_eval_data_dir", "dataset_variant", "first_n"]

PAPER_DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN", "stl10": "STL-10",
                       "in100": "ImageNet-100", "in1k": "ImageNet-1k", "imagenette": "Imagenette",
                       "imagenet": "ImageNet-1k"}


def read_run(run_dir) -> dict:
    """``run.json`` of a finished pretraining run directory."""
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file() or not (run_dir / "backbone.safetensors").is_file():
        raise FileNotFoundError(
            f"{str(run_dir)!r} is not a finished pretraining run: it needs run.json and "
            "backbone.safetensors (written when `python -m training pretrain` completes).")
    return json.loads(path.read_text())


def load_run_model(run_dir, num_classes: int = 0) -> nn.Module:
    """The run's backbone through ``otzoo.create_model(arch, checkpoint_path=...)``: every backbone
    tensor from ``backbone.safetensors`` (strictly), and a fresh ``num_classes`` head when asked."""
    info = read_run(run_dir)
    with warnings.catch_warnings():  # a run's backbone never has a head: a new one is the point
        warnings.filterwarnings("ignore", message=".*published head has 0 classes")
        model = otzoo.create_model(info["arch"], checkpoint_path=Path(run_dir) / "backbone.safetensors",
                                   num_classes=num_classes)
    model.pretrained_cfg = model.default_cfg = {**model.pretrained_cfg, **run_data_cfg(info)}
    return model


def run_data_cfg(info: dict) -> dict:
    """The input size, mean and std a run trained with (its config), for the weight's cfg and transforms."""
    conf = info.get("config") or {}
    size, data = (conf.get("aug") or {}).get("size"), conf.get("data") or {}
    out = {"input_size": (3, int(size), int(size))} if size else {}
    out.update({k: tuple(data[k]) for k in ("mean", "std") if data.get(k)})
    return out


def released_weight(cfg: dict) -> dict:
    """Which release of a name was measured: its sha256 and pretraining epochs (a name outlives its releases)."""
    return {"weight_sha256": cfg["sha256"], "weight_epochs": (cfg.get("budget") or {}).get("epochs")} \
        if cfg.get("sha256") else {}


def load_model(run=None, model_name=None, checkpoint=None, arch=None):
    """Model + info dict from exactly one of a run dir, an otzoo weight name, or a checkpoint."""
    given = [v for v in (run, model_name, checkpoint) if v]
    if len(given) != 1:
        raise ValueError("give exactly one of --run DIR, --model NAME, --checkpoint PATH")
    if run:
        info = read_run(run)
        return load_run_model(run), {"source": str(run), "arch": info["arch"], "dataset": info.get("dataset"),
                                     "data_dir": info.get("data_dir"), "run": info}
    if model_name:
        model = otzoo.create_model(model_name, pretrained=True)
        cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
        return model, {"source": model_name, "arch": cfg.get("architecture"), "dataset": cfg.get("dataset"),
                       **released_weight(cfg)}
    path = Path(checkpoint)
    if arch is None:
        cfg_path = (path if path.is_dir() else path.parent) / "config.json"
        if not cfg_path.is_file():
            raise ValueError(f"{checkpoint!r} has no config.json beside it: pass --arch")
        arch = json.loads(cfg_path.read_text())["architecture"]
    model = otzoo.create_model(arch, checkpoint_path=str(path))
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    return model, {"source": str(path), "arch": arch, "dataset": cfg.get("dataset")}


def resolve_eval_data_dir(data_dir=None, recorded=None):
    """``--data-dir``, else ``$OTZOO_DATA``, else the run's recorded data dir if it exists, else None."""
    if data_dir:
        return str(data_dir)
    if os.environ.get("OTZOO_DATA"):
        return None  # build_dataset reads it
    if recorded and Path(recorded).is_dir():
        return str(recorded)
    return None


def dataset_variant(dataset: str, data_dir) -> str:
    """Human-readable dataset + copy, e.g. "CIFAR-10 (JPEG q75 copy)": the name a data folder's
    README asks for (``Say "..."`` in its ``## <folder>/`` section), else the folder's name."""
    pretty = PAPER_DATASET_NAMES.get(dataset, dataset)
    folder = Path(data_dir) if data_dir else (Path(os.environ["OTZOO_DATA"]) if os.environ.get("OTZOO_DATA") else None)
    if folder is None:
        return f"{pretty} (torchvision)"
    readme = folder.parent / "README.md"
    if readme.is_file():
        text = readme.read_text(errors="ignore")
        section = text.split(f"## {folder.name}/", 1)[1].split("\n## ", 1)[0] if f"## {folder.name}/" in text else ""
        said = re.search(r'Say\s+"([^"]+)"', section)
        if said:
            return said.group(1)
    return f"{pretty} (ImageFolder at {folder.name}/)"


def first_n(dataset: Dataset, n: int) -> Dataset:
    """The first ``n`` items (ImageFolder order: class folder, then file name)."""
    if n >= len(dataset):
        return dataset
    sub = Subset(dataset, list(range(n)))
    sub.classes = getattr(dataset, "classes", None)
    return sub
