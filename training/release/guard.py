"""What may write a release: the one check before anything writes ``weights/<name>/`` and its records.

``export`` (and so ``smoke``, ``cpu_queue.sh`` and the campaign) calls :func:`check_release` before it
measures or writes anything:

- a release name is ``<method>_<arch>_<dataset>``-like: lowercase letters, digits and ``_`` (it becomes a
  folder and file names under the root);
- subsampled metrics never go into a repository (a root with ``otzoo/pretrained/`` and ``pyproject.toml``);
- an existing release of that name is replaced only with ``supersede`` (``--supersede``), and then only by
  a run of at least the epochs it trained (a milestone's, not its schedule's), unless ``force``
  (``--supersede=force``) says a shorter run replaces it.
"""
import json
import re
from pathlib import Path
from typing import Optional

__all__ = ["ReleaseRefused", "check_release_name", "check_release", "existing_release", "SUPERSEDE_CHOICES"]

RELEASE_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,99}")
SUPERSEDE_CHOICES = ("yes", "force")


class ReleaseRefused(ValueError):
    """Writing this release would lose or misreport something; the message says what to do instead."""


def check_release_name(name: str) -> str:
    if not isinstance(name, str) or not RELEASE_NAME.fullmatch(name):
        raise ReleaseRefused(f"release name {name!r} is not allowed: use lowercase letters, digits and '_' "
                             "(<method>_<arch>_<dataset>, e.g. gca_uot_resnet18_cifar10); no path parts")
    return name


def is_repository(root: Path) -> bool:
    return (root / "otzoo" / "pretrained").is_dir() and (root / "pyproject.toml").is_file()


def existing_release(root: Path, name: str) -> Optional[dict]:
    """The cfg of release ``name`` in ``root`` (``{}`` when only its weight folder is there), or None."""
    cfg = root / "otzoo" / "pretrained" / f"{name}.json"
    if cfg.is_file():
        return json.loads(cfg.read_text())
    return {} if (root / "weights" / name).exists() else None


def check_release(root, name: str, epochs: int, subsampled: bool, supersede: Optional[str] = None) -> None:
    """Raise :class:`ReleaseRefused` unless release ``name`` of a run of ``epochs`` may be written into ``root``."""
    root = Path(root).resolve()
    check_release_name(name)
    if supersede not in (None,) + SUPERSEDE_CHOICES:
        raise ReleaseRefused(f"supersede must be one of {SUPERSEDE_CHOICES}, not {supersede!r}")
    if subsampled and is_repository(root):
        raise ReleaseRefused(f"subsampled metrics never go into a repository ({root}): export with --root <temp "
                             "dir> for a quick check, or without --train-subset/--test-subset/--subset-size")
    old = existing_release(root, name)
    if old is None:
        return
    old_epochs = _trained_epochs(old)
    if supersede is None:
        raise ReleaseRefused(f"{name} is already released in {root} ({_describe(old)}); nothing was written. To "
                             "replace it on purpose, add --supersede (results/ keeps the rows of the old one); to "
                             "keep both, export under another --name")
    if supersede != "force" and old_epochs is not None and epochs < old_epochs:
        raise ReleaseRefused(f"{name} in {root} was trained {old_epochs} epochs; this run has {epochs}. A shorter "
                             "run replaces it only with --supersede=force")


def _trained_epochs(cfg: dict) -> Optional[int]:
    """The epochs a release trained: its budget's (a milestone's are fewer than its recipe's schedule), else its
    recipe's (a cfg from before budgets)."""
    return (cfg.get("budget") or {}).get("epochs", (cfg.get("recipe") or {}).get("epochs"))


def _describe(cfg: dict) -> str:
    if not cfg:
        return "its weight folder exists"
    linear = (cfg.get("metrics") or {}).get("linear_top1")
    epochs = _trained_epochs(cfg)
    return f"{epochs} epochs" + (f", linear top-1 {linear:.2f}" if isinstance(linear, (int, float)) else "")
