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
              colorbar: bool = True, split: Optional[int] = None, labels=None, positives: bool = True):
    """Heat map of a coupling, e.g. ``plot_plan(loss.plan(z1, z2))``.

    Args:
        plan: ``(n, m)`` tensor or array (a ``loss.plan`` output).
        ax: matplotlib axes to draw on (default: a new figure).
        title: axes title (default: ``"coupling P (n x m)"``).
        log: show ``log10`` of the entries (zeros, e.g. the masked diagonal, stay blank).
        cmap: colormap name.
        colorbar: add a colorbar, labelled P_ij (or log10 P_ij) in mathtext.
        split: draw lines after row/column ``split`` (default ``n // 2`` for square plans of
            the stacked 2B layout, separating the two views); ``0`` disables them.
        labels: class labels of the ``B`` images of one view, class-sorted (optional): thin
            lines mark where the class changes, in both views, so class blocks show.
        positives: for the stacked 2B layout, mark the positives (image k's two views: the
            off-diagonals ``(k, k + B)`` and ``(k + B, k)``) with dotted lines.

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
        _, ax = plt.subplots(figsize=(4.5, 4))
    data = plan
    if log:
        with np.errstate(divide="ignore"):
            data = np.where(plan > 0, np.log10(np.where(plan > 0, plan, 1)), np.nan)
    im = ax.imshow(data, cmap=cmap, interpolation="nearest")
    n, m = plan.shape
    if split is None:
        split = n // 2 if n == m and n % 2 == 0 else 0
    if labels is not None and split:
        labels = np.asarray(labels)
        for edge in np.flatnonzero(labels[1:] != labels[:-1]) + 1:
            for pos in (edge, edge + split):
                ax.axhline(pos - 0.5, color="w", lw=0.3, alpha=0.6)
                ax.axvline(pos - 0.5, color="w", lw=0.3, alpha=0.6)
    if split:
        ax.axhline(split - 0.5, color="w", lw=0.8)
        ax.axvline(split - 0.5, color="w", lw=0.8)
        if positives and n == m == 2 * split:
            k = np.arange(split)
            ax.plot(k + split, k, ":", color="r", lw=0.8, label="positives")
            ax.plot(k, k + split, ":", color="r", lw=0.8)
            ax.set_xlim(-0.5, m - 0.5)
            ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("j (view 1 | view 2)" if split else "j")
    ax.set_ylabel("i (view 1 | view 2)" if split else "i")
    ax.set_title(title if title is not None else f"coupling P ({n} x {m})")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                           label=r"$\log_{10} P_{ij}$" if log else r"$P_{ij}$")
    return im
