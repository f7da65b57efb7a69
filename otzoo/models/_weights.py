"""Weight files: where a weight's file is found, how it is read and hashed, and the errors of loading.

Looks in ``$OTZOO_WEIGHTS_DIR/<name>/``, then the checkout's ``weights/<name>/``, then the Hugging Face
Hub (its cache, ``HF_HUB_OFFLINE``, revisions); reads ``.safetensors`` (or a pickle only
``torch.load(weights_only=True)`` accepts), checking the sha256 of the bytes it loads.
"""
import hashlib
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import safetensors.torch
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from timm.models import clean_state_dict

__all__ = [
    "sha256_file", "sha256_bytes", "checkout_weights_dir", "resolve_weight_file", "hub_download", "read_state_dict",
    "locate_checkpoint", "WeightsNotFoundError", "NoPretrainedWeightsError", "ChecksumError",
    "StateDictMismatchError", "UnsafeCheckpointError", "CorruptWeightsError",
]

_PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")


class WeightsNotFoundError(FileNotFoundError):
    """A weight file is in none of the places otzoo looks (and cannot be downloaded)."""


class NoPretrainedWeightsError(ValueError):
    """``pretrained=True`` for an architecture name: weights have their own names."""


class ChecksumError(RuntimeError):
    """A weight file's sha256 differs from the one recorded in its pretrained cfg."""


class StateDictMismatchError(RuntimeError):
    """A state dict does not fit the model (missing, unexpected or mis-shaped keys)."""


class UnsafeCheckpointError(RuntimeError):
    """A pickle checkpoint that ``torch.load(weights_only=True)`` cannot read."""


class CorruptWeightsError(RuntimeError):
    """A ``.safetensors`` file that cannot be parsed."""


def sha256_file(path: Union[str, Path]) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    with open(path, "rb") as f:
        return _sha256(iter(lambda: f.read(1 << 22), b""))


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes already read (a weight is hashed from the very bytes that are loaded)."""
    return _sha256([data])


def _sha256(chunks) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def checkout_weights_dir() -> Optional[Path]:
    """``<checkout>/weights`` when otzoo runs from a source checkout, else None (wheel installs)."""
    root = Path(__file__).resolve().parents[2]
    weights = root / "weights"
    return weights if weights.is_dir() and (root / "pyproject.toml").is_file() else None


def resolve_weight_file(cfg: Dict[str, Any]) -> Path:
    """Path of a registered weight's file: ``$OTZOO_WEIGHTS_DIR/<name>/``, then ``<checkout>/weights/<name>/``,
    then ``huggingface_hub.hf_hub_download(hf_hub_id, filename, revision)`` (cache / download)."""
    name, filename = cfg["name"], cfg.get("filename") or "model.safetensors"
    tried = []
    roots = [os.environ.get("OTZOO_WEIGHTS_DIR"), checkout_weights_dir()]
    for root in roots:
        if root:
            path = Path(root) / name / filename
            if path.is_file():
                return path
            tried.append(path)
    return hub_download(cfg.get("hf_hub_id") or f"otzoo/{name}", filename, revision=cfg.get("revision"),
                        name=name, tried=tuple(tried))


def hub_download(repo_id: str, filename: str, revision: Optional[str] = None, name: str = "",
                 tried: tuple = ()) -> Path:
    """``hf_hub_download`` (cache, ``HF_HUB_OFFLINE``, revisions) with an error that says how to get the file."""
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError) as e:
        looked = "".join(f"\n  - {p}" for p in tried)
        where = f"otzoo looked in:{looked}\n  - the Hugging Face cache ({hf_constants.HF_HUB_CACHE})" if looked else \
            f"otzoo looked in the Hugging Face cache ({hf_constants.HF_HUB_CACHE})"
        offline = hf_constants.is_offline_mode()
        reason = ("HF_HUB_OFFLINE is set and the file is not cached" if offline
                  else f"the download failed ({type(e).__name__}: {e})")
        target = f"$OTZOO_WEIGHTS_DIR/{name}/{filename}" if name else "a local folder"
        raise WeightsNotFoundError(
            f"Cannot get {filename} of {repo_id} (revision {revision or 'main'}): {reason}.\n{where}\n"
            f"To fix: go online (unset HF_HUB_OFFLINE) and load it once to fill the cache, or copy the file to "
            f"{target} (OTZOO_WEIGHTS_DIR={os.environ.get('OTZOO_WEIGHTS_DIR', '<unset>')}), e.g. on a connected "
            f"machine: `hf download {repo_id} --local-dir <dir>/{name or repo_id.split('/')[-1]}`."
        ) from e


def read_state_dict(path: Union[str, Path], sha256: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` (or a pickle only ``torch.load(weights_only=True)`` accepts),
    checking the file's sha256 against ``sha256`` when given."""
    path = Path(path)
    data = path.read_bytes()
    if sha256:
        actual = sha256_bytes(data)
        if actual != sha256.lower():
            raise ChecksumError(
                f"sha256 of {path} is {actual}, expected {sha256}. The file is corrupt, truncated or not the "
                f"published weight: delete it and load again (otzoo re-resolves it from $OTZOO_WEIGHTS_DIR, the "
                f"checkout's weights/ folder or the Hugging Face Hub).")
    if path.suffix in _PICKLE_SUFFIXES:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UnsafeCheckpointError(
                f"Refusing to load {path}: it is a pickle that torch.load(weights_only=True) cannot read "
                f"({type(e).__name__}: {str(e).splitlines()[0]}). Loading it fully could run arbitrary code. If you "
                f"trust it, convert it once: sd = torch.load(path, weights_only=False); "
                f"safetensors.torch.save_file(sd, 'model.safetensors'), and pass that file.") from e
        if isinstance(obj, dict):
            for key in ("state_dict", "model"):
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise UnsafeCheckpointError(f"{path} does not hold a state dict (name -> tensor); save one with "
                                        f"otzoo.save_pretrained(model, folder)")
        return clean_state_dict(obj)
    try:
        return safetensors.torch.load(data)
    except Exception as e:
        raise CorruptWeightsError(
            f"{path} is not a readable safetensors file ({type(e).__name__}: {e}). Delete it and download or "
            f"export it again (otzoo.save_pretrained writes valid files).") from e


def locate_checkpoint(checkpoint_path: Union[str, Path]) -> Tuple[Path, Optional[Path]]:
    path = Path(checkpoint_path).expanduser()
    if path.is_dir():
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"No model.safetensors in {path}; write the folder with "
                                    f"otzoo.save_pretrained(model, folder) or pass the weight file itself")
        config = path / "config.json"
        return weights, config if config.is_file() else None
    if path.is_file():
        config = path.parent / "config.json"
        return path, config if config.is_file() else None
    raise FileNotFoundError(f"checkpoint_path {path} does not exist (expected a model.safetensors file or a "
                            f"folder written by otzoo.save_pretrained)")
