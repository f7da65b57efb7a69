"""The loss registry: ``register_loss``, ``create_loss``, ``list_losses``."""
from __future__ import annotations

import fnmatch
from typing import Callable, Dict, List, Sequence, Type

from torch import nn

__all__ = ["register_loss", "create_loss", "list_losses", "get_loss_class"]

_LOSSES: Dict[str, Type[nn.Module]] = {}
_ALIASES: Dict[str, str] = {}


def register_loss(name: str, aliases: Sequence[str] = ()) -> Callable[[Type[nn.Module]], Type[nn.Module]]:
    """Class decorator adding a loss to the registry under ``name`` (and ``aliases``)."""

    def wrap(cls: Type[nn.Module]) -> Type[nn.Module]:
        for key in (name, *aliases):
            if key in _LOSSES or key in _ALIASES:
                raise ValueError(f"register_loss: a loss named {key!r} is already registered")
        _LOSSES[name] = cls
        for alias in aliases:
            _ALIASES[alias] = name
        return cls

    return wrap


def list_losses(filter: str = "", include_aliases: bool = False) -> List[str]:
    """Sorted registry names matching the wildcard ``filter`` (aliases only if asked)."""
    names = list(_LOSSES) + (list(_ALIASES) if include_aliases else [])
    if filter:
        names = [n for n in names if fnmatch.fnmatch(n, filter)]
    return sorted(names)


def get_loss_class(name: str) -> Type[nn.Module]:
    key = _ALIASES.get(name, name)
    if key not in _LOSSES:
        raise ValueError(f"Unknown loss {name!r}; available: {list_losses(include_aliases=True)}")
    return _LOSSES[key]


def create_loss(name: str, gather_distributed: bool = False, **hparams) -> nn.Module:
    """Build the loss ``name`` (see :func:`list_losses`) with keyword hyperparameters.

    ``gather_distributed=True`` computes the loss on the batch gathered (with gradients)
    from every rank of an initialised ``torch.distributed`` group.
    """
    cls = get_loss_class(name)
    try:
        return cls(gather_distributed=gather_distributed, **hparams)
    except TypeError as e:
        raise ValueError(f"{name}: bad hyperparameters {sorted(hparams)} ({e}); "
                         f"see help(otzoo.losses.{cls.__name__})") from None
