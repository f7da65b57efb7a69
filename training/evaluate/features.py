"""Pooled features of a model over a dataset, on any device.

The host decodes and resizes; :func:`eval_transform` with ``uint8=True`` stops there and
hands ``uint8`` tensors to the loader, and :func:`extract_features` normalises them on the
device with the model's own mean/std: the same arithmetic as ``ToTensor`` + ``Normalize``
(``x / 255``, then ``(x - mean) / std`` in fp32), so the features are identical, and four
times fewer bytes cross to a GPU.
"""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

import otzoo

from ..run.augment import normalize
from ..run.device import autocast, resolve_device
from ..run.monitor import effective_rank

__all__ = ["pooled_features", "eval_transform", "extract_features", "effective_rank", "feature_geometry",
           "GEOMETRY_PROTOCOL"]


def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled backbone features ``(B, num_features)`` of a timm-style model (head ignored)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def eval_transform(model: nn.Module, uint8: bool = False):
    """The eval transform that travels with the model (``create_transform(resolve_data_config)``).

    ``uint8=True``: the same transform up to the tensor conversion, returning ``uint8``
    ``(C, H, W)``; :func:`extract_features` finishes it on the device."""
    tf = otzoo.create_transform(otzoo.resolve_data_config(model))
    if not uint8:
        return tf
    steps = list(tf.transforms)
    if len(steps) < 2 or not isinstance(steps[-1], T.Normalize) or "ToTensor" not in type(steps[-2]).__name__:
        raise ValueError(f"cannot split {tf} into a uint8 part: it does not end with ToTensor + Normalize")
    return T.Compose(steps[:-2] + [T.PILToTensor()])


def extract_features(model: nn.Module, dataset: Dataset, batch_size: int = 256, num_workers: int = 0,
                     precision: str = "fp32", device=None, progress: bool = False, channels_last: bool = True):
    """Pooled features of every item of ``dataset`` in order, model in eval mode, on ``device``.

    Returns ``(feats, labels)`` on the CPU: float32 ``(N, num_features)`` and int64 ``(N,)``.
    Items may be float tensors (already normalised) or ``uint8`` from
    ``eval_transform(model, uint8=True)``. ``device``: a name or torch.device (default: the
    model's); the model is moved there. ``precision``: a resolved precision (fp32 for the
    shipped metrics; ``bf16`` only where it is fast, see ``training.run.device``). ``channels_last``: image
    batches go in that memory format (the model is left as it is): the same features to fp32 rounding, 1.2x
    faster on a CPU (``benchmarks/feature_pass.py``).
    """
    device = resolve_device(device) if isinstance(device, str) else (device or next(model.parameters()).device)
    model.to(device)
    cfg = otzoo.resolve_data_config(model)
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    if progress:
        from tqdm import tqdm
        loader = tqdm(loader, desc="features", unit="batch", leave=False)
    feats, labels = [], []
    try:
        with torch.inference_mode():
            for x, y in loader:
                x = x.to(device, non_blocking=True)
                if x.dtype == torch.uint8:
                    x = normalize(x.float().div_(255.0), cfg["mean"], cfg["std"])
                if channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, precision):
                    feats.append(pooled_features(model, x).float())
                labels.append(torch.as_tensor(y, dtype=torch.long))
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("extract_features: the dataset is empty")
    # clone outside inference mode so the features can feed autograd (linear probe)
    return torch.cat(feats).cpu().clone(), torch.cat(labels).clone()


GEOMETRY_PROTOCOL = ("RankMe of the evaluation split's pooled features (test; val for ImageNet-derived data) as "
                     "extracted (rankme) and after subtracting their mean (rankme_centred), out of min(N, D); mean "
                     "cosine similarity between the features of two different images of that split (mean_cosine)")


def feature_geometry(features: torch.Tensor) -> dict:
    """Label-free shape of ``(N, D)`` features, N >= 2: ``rankme`` (:func:`effective_rank`),
    ``rankme_centred`` (the same after subtracting the mean feature) and ``mean_cosine``, the mean
    cosine similarity over pairs of different rows. A ``mean_cosine`` near 1 with a ``rankme``
    far below ``rankme_centred``: the features share one dominant direction, an offset that
    cosine similarity sees and a centred or standardised use (the linear probe) does not."""
    x = features.double()
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"feature_geometry needs at least 2 feature rows, got {n}")
    unit = torch.nn.functional.normalize(x, dim=1)
    pair_sum = unit.sum(0).square().sum() - unit.square().sum()  # sum over i != j of cos(x_i, x_j)
    return {"rankme": round(effective_rank(x), 1), "rankme_centred": round(effective_rank(x - x.mean(0)), 1),
            "mean_cosine": round(float(pair_sum / (n * (n - 1))), 4)}
