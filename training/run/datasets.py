"""Dataset resolution shared by pretraining and evaluation.

A data directory (``--data-dir`` / ``data.dir`` or ``$OTZOO_DATA``) holding ``train/`` and
``test/`` (or ``val/``) ImageFolder trees wins; otherwise the named torchvision dataset is
used and downloaded into ``root`` when missing. Imagenette's evaluation split is ``val``:
``split="test"`` reads it. Datasets whose folders are ImageNet wnids get readable
``classes`` (:data:`LABEL_NAMES`).
"""
import os
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import Dataset, Subset

TORCHVISION_DATASETS = ("cifar10", "cifar100", "svhn", "stl10", "imagenette")
IMAGENETTE_WNIDS = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn", "n03417042": "garbage truck",
    "n03425413": "gas pump", "n03445777": "golf ball", "n03888257": "parachute",
}
LABEL_NAMES = {"imagenette": IMAGENETTE_WNIDS}  # folder name (wnid) -> label name
IMAGENETTE_SIZE = os.environ.get("OTZOO_IMAGENETTE_SIZE", "320px")  # torchvision's download: full, 320px or 160px
DEFAULT_DOWNLOAD_ROOT = Path(os.environ.get("OTZOO_DOWNLOAD_ROOT", "~/.cache/otzoo/datasets")).expanduser()


class DataError(ValueError):
    """The data cannot be trained on as given (an unreadable image, images of different sizes, fewer images
    than one batch); the message names what and says what to do."""


def error_line(err: BaseException) -> str:
    """``err``'s message; for one re-raised from a DataLoader worker (message, then the worker's traceback),
    the worker's own message."""
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text


UNREADABLE = (OSError, ValueError, SyntaxError)  # what PIL raises for truncated, unidentified or malformed files


def unreadable_image(path: str, err: BaseException) -> DataError:
    """The error for an image that cannot be decoded: names the file and what to do."""
    return DataError(f"cannot decode {path}: {err}. Replace or remove that file (a partial copy? check with "
                     "`python -c \"from PIL import Image; Image.open(PATH).load()\"`), then run again")


class DataNotFoundError(FileNotFoundError):
    """The dataset is neither in a data directory nor downloadable."""


def resolve_data_dir(data_dir: Optional[str] = None) -> Optional[Path]:
    """``data_dir`` if given, else ``$OTZOO_DATA`` if set, else None. Must exist if named."""
    value = data_dir or os.environ.get("OTZOO_DATA") or None
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        source = "data dir" if data_dir else "$OTZOO_DATA"
        raise DataNotFoundError(
            f"{source} {str(path)!r} is not a directory. Point it at a folder holding "
            "train/ and test/ ImageFolder trees (e.g. ../shared/data/cifar10), or unset it "
            "to download the dataset with torchvision."
        )
    return path


def checked_loader(path: str):
    """torchvision's image loader; an unreadable image raises :class:`DataError` naming its file
    (a truncated or corrupt image is refused, never skipped: the data would change silently)."""
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except UNREADABLE as err:
        raise unreadable_image(path, err) from None


def build_dataset(name: str = "cifar10", split: str = "train", data_dir: Optional[str] = None,
                  transform=None, download: bool = True, root: Optional[str] = None) -> Dataset:
    """Return the ``split`` ("train" or "test"; STL-10 also "unlabeled") of dataset ``name``.

    Every returned dataset yields ``(image, label)`` and has ``classes`` (label names).
    """
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        from torchvision.datasets import ImageFolder

        split_dir = folder / split
        if split == "test" and not split_dir.is_dir() and (folder / "val").is_dir():
            split_dir = folder / "val"
        if not split_dir.is_dir():
            raise DataNotFoundError(
                f"{str(split_dir)!r} does not exist: the data dir must hold ImageFolder trees "
                f"'train/' and 'test/' (or 'val/'), one sub-folder per class."
            )
        return _readable_classes(ImageFolder(str(split_dir), transform=transform, loader=checked_loader), name)
    key = name.lower().replace("-", "")
    if key not in TORCHVISION_DATASETS:
        raise DataNotFoundError(
            f"unknown dataset {name!r} and no data dir given: use one of {TORCHVISION_DATASETS} "
            "or pass an ImageFolder root with --data-dir / $OTZOO_DATA."
        )
    import torchvision.datasets as tvd

    root_path = Path(root).expanduser() if root else DEFAULT_DOWNLOAD_ROOT
    try:
        if key in ("cifar10", "cifar100"):
            cls = tvd.CIFAR10 if key == "cifar10" else tvd.CIFAR100
            return cls(str(root_path), train=(split == "train"), transform=transform, download=download)
        if key == "imagenette":
            ds = tvd.Imagenette(str(root_path), split="val" if split == "test" else split, size=IMAGENETTE_SIZE,
                                transform=transform, download=download)
            ds.classes, ds.targets = [IMAGENETTE_WNIDS[w] for w in ds.wnids], [y for _, y in ds._samples]
            return ds
        if key == "svhn":
            ds = tvd.SVHN(str(root_path), split=split, transform=transform, download=download)
            ds.classes = [str(i) for i in range(10)]
            return ds
        return tvd.STL10(str(root_path), split=split, transform=transform, download=download)
    except (RuntimeError, OSError) as err:  # not found and download off, or no network
        raise DataNotFoundError(
            f"could not load {name} ({split}) from {str(root_path)!r} nor download it ({err}). "
            f"Offline, set $OTZOO_DATA (or --data-dir) to a folder holding train/ and test/ "
            f"ImageFolder trees, e.g. OTZOO_DATA=../shared/data/cifar10."
        ) from err


def _readable_classes(ds, name: str):
    names = LABEL_NAMES.get(name.lower().replace("-", ""), {})
    if names and all(c in names for c in ds.classes):
        ds.classes = [names[c] for c in ds.classes]  # class_to_idx keeps the folder names
    return ds


class SplitMismatchError(ValueError):
    """The train and test splits of one dataset name different classes."""


def check_same_classes(train: Dataset, test: Dataset) -> None:
    """Refuse splits whose class folders differ: labels are numbered per split, so k-NN, probes and accuracies
    would compare unrelated classes."""
    a, b = list(getattr(train, "classes", [])), list(getattr(test, "classes", []))
    if a != b:
        raise SplitMismatchError(f"the train split has classes {a} but the test split has {b}: labels are numbered "
                                 "per split, so every accuracy would be wrong. Give both splits the same class "
                                 "folders (an empty folder is fine)")


def evenly_spaced_subset(dataset: Dataset, n: Optional[int]) -> Dataset:
    """The ``n`` items at evenly spaced indices (class-balanced for sorted ImageFolders)."""
    if n is None or n >= len(dataset):
        return dataset
    idx = torch.linspace(0, len(dataset) - 1, n).round().long().unique().tolist()
    sub = Subset(dataset, idx)
    sub.classes = getattr(dataset, "classes", None)
    return sub


def labels_of(dataset: Dataset) -> torch.Tensor:
    """Labels of every item as a LongTensor (N,), without decoding images where possible."""
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[torch.as_tensor(dataset.indices)]
    for attr in ("targets", "labels"):
        if hasattr(dataset, attr):
            return torch.as_tensor(getattr(dataset, attr), dtype=torch.long)
    return torch.as_tensor([y for _, y in dataset], dtype=torch.long)
