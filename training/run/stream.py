"""Streaming training data: each step's images decoded when the step needs them, not the whole split up front.

:class:`StreamedImages` stands where :func:`~training.run.data.load_images`'s uint8 tensor stands (``len``,
``shape``, ``images[idx]``) and decodes exactly what that tensor would hold (the same decoder and resize), so a
streamed run trains on the same pixels as an in-memory one, bit for bit. :class:`BatchStream` decodes the local
slice of the next global batches ahead of the step in DataLoader worker processes, in the order of the run's
:class:`~training.run.data.EpochShuffler` from its current state, so a resumed run streams from where it stopped.
Memory stays flat in the number of images: a few batches in flight and the file list.

``data.stream`` picks the mode (true, false; unset: stream when the decoded split exceeds :func:`memory_budget`).
"""
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .data import DataError, EpochShuffler, ImageData, _decode, _image_path, _synthetic, load_images
from .datasets import build_dataset, evenly_spaced_subset, labels_of, resolve_data_dir

__all__ = ["StreamedImages", "BatchStream", "open_train_images", "memory_budget", "default_workers"]


class _TensorImages(Dataset):
    """Decoded ``(N, 3, H, W)`` uint8 images served like an image folder (synthetic data can stream too)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes):
        self.images, self.targets, self.classes = images, labels.tolist(), classes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i].permute(1, 2, 0).numpy(), self.targets[i]


class StreamedImages:
    """The images of a split as ``(N, 3, H, W)`` uint8, decoded on demand: ``images[idx]`` for a LongTensor of
    indices returns what ``load_images(...).images[idx]`` would. Every image must decode to the first one's size
    (``decode_size`` makes them so); one that does not, or cannot be decoded, raises
    :class:`~training.run.data.DataError` naming its file."""

    def __init__(self, dataset: Dataset, decode_size: Optional[int], threads: int = 4):
        self.dataset, self.decode_size, self.threads = dataset, decode_size, max(1, threads)
        height, width = _decode(dataset, 0, decode_size).shape[:2]
        self.shape = torch.Size((len(dataset), 3, height, width))

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def decode(self, i: int) -> np.ndarray:
        """Image ``i`` as ``(H, W, 3)`` uint8."""
        array = _decode(self.dataset, i, self.decode_size)
        if array.shape[:2] != self.shape[2:]:
            raise DataError(f"{_image_path(self.dataset, i)} decodes to {array.shape[1]}x{array.shape[0]} but the "
                            f"split's first image to {self.shape[3]}x{self.shape[2]}; set data.decode_size=<side> to "
                            "resize them while decoding")
        return array

    def take(self, idx: torch.Tensor, threads: int = 1) -> torch.Tensor:
        """Images ``idx`` as ``(len(idx), 3, H, W)`` uint8, decoded by ``threads`` threads."""
        items = [int(i) for i in idx]
        if threads > 1 and len(items) > 1:
            with ThreadPoolExecutor(threads) as pool:
                arrays = list(pool.map(self.decode, items))
        else:
            arrays = [self.decode(i) for i in items]
        return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())

    def __getitem__(self, idx) -> torch.Tensor:
        return self.take(torch.as_tensor(idx).reshape(-1), self.threads)


def default_workers(local_procs: int = 1) -> int:
    """Decoding processes per training process: this machine's cores shared by the local processes, 1 to 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores // max(1, local_procs)))


def memory_budget(device: torch.device, local_procs: int = 1) -> int:
    """Bytes one process may hold as a decoded split: a quarter of the machine's memory shared by its local
    processes; on CUDA (where the images live on the GPU) also at most a quarter of the GPU's memory."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    budget = ram // (4 * max(1, local_procs))
    if device.type == "cuda":
        budget = min(budget, torch.cuda.get_device_properties(device).total_memory // 4)
    return budget


def _dataset(name: str, split: str, data: dict):
    """``split`` of ``name`` as a dataset of (image, label), with its labels, classes and source."""
    if name == "synthetic":
        decoded = _synthetic(data["subset"] or 512, data["decode_size"] or 32, seed=0 if split == "train" else 1)
        return _TensorImages(decoded.images, decoded.labels, decoded.classes), decoded.labels, decoded.classes, \
            decoded.source
    folder = resolve_data_dir(data["dir"])
    ds = build_dataset(name, split, data_dir=data["dir"])
    classes = list(getattr(ds, "classes", None) or [])
    source = str(folder / split) if folder is not None else f"torchvision:{name}/{split}"
    ds = evenly_spaced_subset(ds, data["subset"])
    return ds, labels_of(ds), classes, source


def open_train_images(name: str, data: dict, device: torch.device, local_procs: int = 1) -> ImageData:
    """The train split for pretraining: decoded into memory (:func:`load_images`), or a :class:`StreamedImages`
    as its ``images`` when ``data["stream"]`` is true, or unset and the decoded split exceeds
    :func:`memory_budget`."""
    stream = data.get("stream")
    if stream is False:
        return _in_memory(name, data)
    ds, labels, classes, source = _dataset(name, "train", data)
    images = StreamedImages(ds, data["decode_size"], threads=data.get("workers") or default_workers(local_procs))
    if stream is None and images.nbytes <= memory_budget(device, local_procs):
        return _in_memory(name, data)
    return ImageData(images, labels, classes, source)


def _in_memory(name: str, data: dict) -> ImageData:
    return load_images(name, "train", data["dir"], data["subset"], data["decode_size"], data["cache_dir"])


# ---------------------------------------------------------------- the batches ahead of the step

class _LocalOrder(Sampler):
    """This rank's slice of every global batch, in ``order``'s sequence from its state on (endless)."""

    def __init__(self, order: EpochShuffler, local_slice: Tuple[int, int]):
        self.order, self.local_slice = order, local_slice

    def __iter__(self):
        lo, hi = self.local_slice
        while True:
            yield self.order.next_batch()[lo:hi]


class _Batches(Dataset):
    """Key: a batch's indices; item: (those indices, their images)."""

    def __init__(self, images: StreamedImages, threads: int):
        self.images, self.threads = images, threads

    def __getitem__(self, idx: torch.Tensor):
        return idx, self.images.take(idx, self.threads)


def _ignore_stop_signals(worker_id: int) -> None:
    """A SIGTERM or Ctrl-C meant for the run reaches its workers too (one process group): the run stops after the
    step in progress and ends its workers itself, so they must outlive the signal."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class BatchStream:
    """The local slice of each global batch, decoded ahead of the step by ``workers`` DataLoader processes (0: in
    this process, with threads), pinned when ``pin`` (CUDA). :meth:`take` returns the batch the run's shuffler
    just gave; when the run's order moved (a restore), the stream starts again from the shuffler's state."""

    def __init__(self, images: StreamedImages, shuffler: EpochShuffler, local_slice: Tuple[int, int],
                 workers: int, pin: bool = False):
        self.images, self.shuffler, self.local_slice = images, shuffler, local_slice
        self.workers, self.pin, self._batches = workers, pin, None

    def _start(self, state: Tuple[int, int]) -> None:
        self.close()
        sh = self.shuffler
        order = EpochShuffler(sh.n, sh.batch_size, sh.seed)
        order.epoch, order.position = state
        loader = DataLoader(_Batches(self.images, 1 if self.workers else self.images.threads),
                            sampler=_LocalOrder(order, self.local_slice), batch_size=None,
                            num_workers=self.workers, pin_memory=self.pin,
                            worker_init_fn=_ignore_stop_signals if self.workers else None,
                            prefetch_factor=2 if self.workers else None)
        self._batches = iter(loader)

    def _next(self):
        try:
            return next(self._batches)
        except BaseException:
            self.close()  # a worker's error ends this pass over the data; the next take starts again
            raise

    def take(self, idx: torch.Tensor, state: Tuple[int, int]) -> torch.Tensor:
        """The images of local indices ``idx``: the batch the shuffler gave from ``state`` (epoch, position)."""
        if self._batches is None:
            self._start(state)
        got, images = self._next()
        if not torch.equal(got, idx):
            self._start(state)
            got, images = self._next()
        assert torch.equal(got, idx), "the stream's order differs from the shuffler's"
        return images

    def close(self) -> None:
        """Ends the worker processes (they are also ended when this process exits)."""
        batches, self._batches = self._batches, None
        if batches is not None and hasattr(batches, "_shutdown_workers"):
            batches._shutdown_workers()
