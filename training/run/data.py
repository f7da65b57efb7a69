"""Decode-once in-memory image data and a resumable, DDP-aware epoch shuffler.

:func:`load_images` decodes a split once into a uint8 tensor ``(N, 3, H, W)`` plus labels
(optionally cached as ``.npy`` under ``cache_dir``); :class:`EpochShuffler` yields the image
indices of each global batch in a per-epoch seeded order, with ``(epoch, position)`` state
that goes into the checkpoint so a resumed run sees exactly the batches it would have seen.
"""
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from .datasets import (UNREADABLE, DataError, build_dataset, error_line, evenly_spaced_subset, labels_of,
                       resolve_data_dir, unreadable_image)

__all__ = ["ImageData", "DataError", "error_line", "load_images", "EpochShuffler", "shard"]


class ImageData:
    """Decoded images ``(N, 3, H, W)`` uint8, labels ``(N,)`` int64, class names and provenance."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: List[str], source: str):
        self.images, self.labels, self.classes, self.source = images, labels, list(classes), source

    def __len__(self) -> int:
        return len(self.images)


def _to_array(img, size: Optional[int]) -> np.ndarray:
    from PIL import Image

    if not isinstance(img, Image.Image):
        img = Image.fromarray(np.asarray(img))
    img = img.convert("RGB")
    if size is not None and img.size != (size, size):
        w, h = img.size
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8)


def _image_path(ds, i: int) -> str:
    """The file behind item ``i`` of an ImageFolder (through any Subsets), or ``item i``."""
    while hasattr(ds, "indices") and hasattr(ds, "dataset"):
        ds, i = ds.dataset, ds.indices[i]
    samples = getattr(ds, "samples", None)
    return samples[i][0] if samples else f"item {i}"


def _decode(ds, i: int, size: Optional[int]) -> np.ndarray:
    """Item ``i`` of ``ds`` as an ``(H, W, 3)`` uint8 array; an unreadable image raises :class:`DataError`
    naming its file (a truncated or corrupt image is refused, never skipped: the data would change silently)."""
    try:
        return _to_array(ds[i][0], size)
    except DataError:
        raise
    except UNREADABLE as err:
        raise unreadable_image(_image_path(ds, i), err) from None


def _synthetic(n: int, size: int, seed: int = 0) -> ImageData:
    """Random smooth-ish images with 10 labels: for tests and benchmarks without data."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randint(0, 256, (n, 3, max(2, size // 4), max(2, size // 4)), generator=g).float()
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    img = (img + torch.randn(img.shape, generator=g) * 8).clamp(0, 255).to(torch.uint8)
    labels = torch.arange(n) % 10
    return ImageData(img.contiguous(), labels, [str(i) for i in range(10)], f"synthetic({n})")


def load_images(dataset: str = "cifar10", split: str = "train", data_dir: Optional[str] = None,
                subset: Optional[int] = None, decode_size: Optional[int] = None,
                cache_dir: Optional[str] = None, workers: int = 4) -> ImageData:
    """Decode ``split`` of ``dataset`` once into memory (see ``training.run.datasets.build_dataset``).

    ``subset`` keeps that many evenly spaced images (class-balanced for sorted folders);
    ``decode_size`` resizes (shorter side, then center crop) while decoding, needed when the
    images differ in size; ``cache_dir`` stores the decoded arrays as ``.npy`` for next time.
    ``dataset="synthetic"`` makes ``subset or 512`` random 32x32 images (no files needed).
    """
    if dataset == "synthetic":
        return _synthetic(subset or 512, decode_size or 32, seed=0 if split == "train" else 1)
    folder = resolve_data_dir(data_dir)
    source = str(folder / split) if folder is not None else f"torchvision:{dataset}/{split}"
    cache = None
    if cache_dir is not None:
        files = _file_list_digest(folder / split) if folder is not None else ""
        key = hashlib.sha1(f"{source}|{subset}|{decode_size}|{files}".encode()).hexdigest()[:12]
        cache = Path(cache_dir) / f"{dataset}_{split}_{key}"
        if all(cache.with_suffix(s).is_file() for s in CACHE_SUFFIXES):  # a partial entry is decoded again
            images = torch.from_numpy(np.load(cache.with_suffix(".images.npy")))
            labels = torch.from_numpy(np.load(cache.with_suffix(".labels.npy")))
            classes = cache.with_suffix(".classes.txt").read_text().splitlines()
            return ImageData(images, labels, classes, source)
    ds = build_dataset(dataset, split, data_dir=data_dir)
    classes = list(getattr(ds, "classes", None) or [])
    ds = evenly_spaced_subset(ds, subset)
    labels = labels_of(ds)
    raw = getattr(ds, "data", None)
    if isinstance(raw, np.ndarray) and raw.ndim == 4 and decode_size in (None, raw.shape[1]) and raw.shape[-1] == 3:
        arr = raw  # torchvision CIFAR: already (N, H, W, 3) uint8
    else:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            arrays = list(pool.map(lambda i: _decode(ds, i, decode_size), range(len(ds))))
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise DataError(f"images of {source} differ in size ({sorted(shapes)[:3]}...); "
                             "set data.decode_size=<side> to resize them while decoding")
        arr = np.stack(arrays)
    if arr.ndim == 4 and arr.shape[-1] == 3:
        arr = arr.transpose(0, 3, 1, 2)
    images = torch.from_numpy(np.ascontiguousarray(arr))
    if cache is not None:
        _write_cache(cache, images, labels, classes)
    return ImageData(images, labels, classes, source)


CACHE_SUFFIXES = (".classes.txt", ".labels.npy", ".images.npy")


def _file_list_digest(folder: Path) -> str:
    """A digest of every file under ``folder`` (relative name, size, mtime): the decode cache's key changes
    with the data, so an edited, added or removed image is never served from a stale cache."""
    h = hashlib.sha1()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            h.update(f"{path.relative_to(folder).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _write_cache(cache: Path, images: torch.Tensor, labels: torch.Tensor, classes: List[str]) -> None:
    """Each file written whole (temp file, then rename), the images last: an entry is used only when all three
    are there, so an interrupted write is decoded again rather than read half."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    for suffix, write in ((".classes.txt", lambda f: f.write("\n".join(classes).encode())),
                          (".labels.npy", lambda f: np.save(f, labels.numpy())),
                          (".images.npy", lambda f: np.save(f, images.numpy()))):
        tmp = Path(f"{cache.with_suffix(suffix)}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, cache.with_suffix(suffix))


class EpochShuffler:
    """Global batches of indices in a seeded per-epoch random order (last partial batch dropped).

    State ``(epoch, position)`` (position = batches already taken this epoch) is what the
    checkpoint stores; the order of epoch e depends only on ``(seed, e)``.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0):
        if n < batch_size:
            raise DataError(f"{n} images cannot fill one batch of {batch_size}; lower batch_size "
                            "or use more images (data.subset)")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.position = 0, 0
        self._perm, self._perm_epoch = None, None

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size

    def order(self, epoch: int) -> torch.Tensor:
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def next_batch(self) -> torch.Tensor:
        """Indices of the next global batch, advancing (epoch, position)."""
        if self.position >= self.steps_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        start = self.position * self.batch_size
        idx = self.order(self.epoch)[start:start + self.batch_size]
        self.position += 1
        return idx

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "n": self.n,
                "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if (state["n"], state["batch_size"], state["seed"]) != (self.n, self.batch_size, self.seed):
            raise ValueError(f"checkpoint data state (n, batch, seed) = {(state['n'], state['batch_size'], state['seed'])} "
                             f"does not match this run's {(self.n, self.batch_size, self.seed)}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def shard(n: int, rank: int, world_size: int) -> Tuple[int, int]:
    """Slice ``[start, end)`` of a global batch of n that rank owns (n divisible by world_size)."""
    if n % world_size:
        raise ValueError(f"global batch {n} is not divisible by world size {world_size}")
    local = n // world_size
    return rank * local, (rank + 1) * local
