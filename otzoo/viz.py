"""Plots of transport plans (matplotlib is optional: ``pip install otzoo[viz]``)."""
from __future__ import annotations

from typing import Optional

__all__ = ["plot_plan"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("otzoo.viz needs matplotlib: pip install 'otzoo[viz]' "
                          "(or pip install matplotlib)") from e
    return plt


def plot_plan(plan, ax=None, title: Optional[str] = None, log: bool = False, cmap: str = "viridis",
              colorbar: bool = True, split: Optional[int] = None):
    """Heat map of a coupling, e.g. ``plot_plan(loss.plan(z1, z2))``.

    Args:
        plan: ``(n, m)`` tensor or array (a ``loss.plan`` output).
        ax: matplotlib axes to draw on (default: a new figure).
        title: axes title.
        log: show ``log10`` of the entries (zeros, e.g. the masked diagonal, stay blank).
        cmap: colormap name.
        colorbar: add a colorbar.
        split: draw lines after row/column ``split`` (default ``n // 2`` for square plans of
            the stacked 2B layout, separating the two views); ``0`` disables them.

    Returns:
        the matplotlib ``AxesImage``.
    """
    import numpy as np

    plt = _pyplot()
    if hasattr(plan, "detach"):
        plan = plan.detach().float().cpu().numpy()
    plan = np.asarray(plan, dtype=np.float64)
    if plan.ndim != 2:
        raise ValueError(f"plot_plan: plan must be 2-D (n, m), got shape {plan.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    data = plan
    if log:
        with np.errstate(divide="ignore"):
            data = np.where(plan > 0, np.log10(np.where(plan > 0, plan, 1)), np.nan)
    im = ax.imshow(data, cmap=cmap, interpolation="nearest")
    n, m = plan.shape
    if split is None:
        split = n // 2 if n == m and n % 2 == 0 else 0
    if split:
        ax.axhline(split - 0.5, color="w", lw=0.8)
        ax.axvline(split - 0.5, color="w", lw=0.8)
    ax.set_xlabel("j")
    ax.set_ylabel("i")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                           label="log10 P_ij" if log else "P_ij")
    return im
