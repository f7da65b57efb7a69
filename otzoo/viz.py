"""Plots of transport plans (matplotlib is optional: ``pip install otzoo[viz]``)."""
from __future__ import annotations

from typing import Optional

__all__ = ["plot_plan", "plan_mass", "LAYOUTS"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("otzoo.viz needs matplotlib: pip install 'otzoo[viz]' "
                          "(or pip install matplotlib)") from e
    return plt


LAYOUTS = ("stacked", "cross_view")


def plot_plan(plan, ax=None, title: Optional[str] = None, log: bool = False, cmap: str = "viridis",
              colorbar: bool = True, layout: Optional[str] = None, labels=None, positives: bool = True):
    """Heat map of a coupling, e.g. ``plot_plan(loss.plan(z1, z2), layout=loss.plan_layout)``.

    Args:
        plan: ``(n, m)`` tensor or array (a ``loss.plan`` output).
        ax: matplotlib axes to draw on (default: a new figure).
        title: axes title (default: ``"coupling P (n x m)"``).
        log: show ``log10`` of the entries (zeros, e.g. the masked diagonal, stay blank).
        cmap: colormap name.
        colorbar: add a colorbar, labelled P_ij (or log10 P_ij) in mathtext.
        layout: the loss's ``plan_layout``: ``"stacked"`` (``2B x 2B``, both views stacked:
            GCA, IOT, InfoNCE, RINCE; lines separate the views), ``"cross_view"`` (``B x B``,
            rows view 1, columns view 2: OTCO, matching gap, SinSim, BYOL), or ``None`` (no
            views marked).
        labels: class labels of the ``B`` images of one view, class-sorted (optional, with a
            ``layout``): thin lines mark where the class changes, in each view, so class blocks show.
        positives: with a ``layout``, mark the positives (image k's two views) with dotted
            lines: the off-diagonals ``(k, k + B)`` and ``(k + B, k)`` when stacked, the
            diagonal for cross-view.

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
    n, m = plan.shape
    views = _views(layout, n, m)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4))
    data = plan
    if log:
        with np.errstate(divide="ignore"):
            data = np.where(plan > 0, np.log10(np.where(plan > 0, plan, 1)), np.nan)
    im = ax.imshow(data, cmap=cmap, interpolation="nearest")
    if views:
        _mark_views(ax, layout, n // views, labels, positives)
    names = {"stacked": ("i (view 1 | view 2)", "j (view 1 | view 2)"), "cross_view": ("i (view 1)", "j (view 2)")}
    ylabel, xlabel = names.get(layout, ("i", "j"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else f"coupling P ({n} x {m})")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                           label=r"$\log_{10} P_{ij}$" if log else r"$P_{ij}$")
    return im


def plan_mass(plan, layout: str, labels=None) -> dict:
    """Where a ``layout`` plan puts its mass, beside what a uniform plan would put there.

    The support is every entry but the self-pairs (the masked diagonal) of a stacked plan, and
    every entry of a cross-view one. ``positives`` is the share of the plan's mass on the
    positives (image k's two views), ``same_class`` (with ``labels``: the class of each of the
    ``B`` images of one view) the share inside the class blocks, positives included; each
    ``*_uniform`` is that share under a uniform plan on the same support (its share of entries).

    Returns:
        ``{"positives", "positives_uniform"[, "same_class", "same_class_uniform"]}``, floats in [0, 1].
    """
    import torch

    plan = torch.as_tensor(plan, dtype=torch.float64)
    if plan.ndim != 2:
        raise ValueError(f"plan_mass: plan must be 2-D (n, m), got shape {tuple(plan.shape)}")
    n, m = plan.shape
    if layout is None:
        raise ValueError(f"plan_mass: pass the loss's plan_layout, one of {LAYOUTS}")
    batch = n // _views(layout, n, m)
    image = torch.arange(n) % batch
    support = torch.ones(n, n, dtype=torch.bool)
    if layout == "stacked":
        support.fill_diagonal_(False)
    blocks = {"positives": image[:, None] == image[None, :]}
    if labels is not None:
        labels = torch.as_tensor(labels).reshape(-1)
        if len(labels) != batch:
            raise ValueError(f"plan_mass: labels must hold one class per image of a view ({batch}), got {len(labels)}")
        blocks["same_class"] = labels[image][:, None] == labels[image][None, :]
    total = plan[support].sum()
    out = {}
    for name, block in blocks.items():
        block = block & support
        out[name] = float(plan[block].sum() / total)
        out[f"{name}_uniform"] = float(block.sum() / support.sum())
    return out


def _views(layout: Optional[str], n: int, m: int) -> int:
    """How many views the rows hold (2 stacked, 1 cross-view, 0 none); checks the shape fits."""
    if layout is None:
        return 0
    if layout not in LAYOUTS:
        raise ValueError(f"plot_plan: layout must be one of {LAYOUTS} or None, got {layout!r}")
    views = 2 if layout == "stacked" else 1
    if n != m or n % views:
        raise ValueError(f"plot_plan: a {layout} plan is square{' with an even size' if views == 2 else ''}, "
                         f"got {n} x {m}; pass the loss's plan_layout (or layout=None)")
    return views


def _mark_views(ax, layout: str, batch: int, labels, positives: bool) -> None:
    """Class-change lines per view, the view split (stacked) and the dotted positives."""
    import numpy as np

    offsets = (0, batch) if layout == "stacked" else (0,)
    if labels is not None:
        labels = np.asarray(labels)
        for edge in np.flatnonzero(labels[1:] != labels[:-1]) + 1:
            for pos in (edge + o for o in offsets):
                ax.axhline(pos - 0.5, color="w", lw=0.3, alpha=0.6)
                ax.axvline(pos - 0.5, color="w", lw=0.3, alpha=0.6)
    if layout == "stacked":
        ax.axhline(batch - 0.5, color="w", lw=0.8)
        ax.axvline(batch - 0.5, color="w", lw=0.8)
    if positives:
        k = np.arange(batch)
        pairs = [(k + batch, k), (k, k + batch)] if layout == "stacked" else [(k, k)]
        for i, (x, y) in enumerate(pairs):
            ax.plot(x, y, ":", color="r", lw=0.8, label=None if i else "positives")
        ax.set_xlim(-0.5, len(offsets) * batch - 0.5)
        ax.set_ylim(len(offsets) * batch - 0.5, -0.5)
