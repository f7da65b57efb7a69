"""Linear probe on frozen, precomputed features (conventions.md), on the features' device.

Multinomial logistic regression on the un-augmented train split's pooled features,
standardised; the weight decay is picked from :data:`WEIGHT_DECAYS` on a held-out 10% of
train (fixed seed), then the probe is retrained on all of train; the standardisation is
folded into the returned ``nn.Linear`` so that it reads raw features.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["WEIGHT_DECAYS", "LOW_LABEL_FRACTIONS", "LOW_LABEL_SEEDS", "linear_protocol", "fit_logreg",
           "fold_standardisation", "train_linear_probe", "linear_top1", "balanced_subset", "low_label_probe"]

WEIGHT_DECAYS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3)
LOW_LABEL_FRACTIONS = (0.01, 0.1)  # 1% and 10% of the labels, as SimCLR and BYOL report
LOW_LABEL_SEEDS = (0, 1, 2)


def linear_protocol(val_fraction: float = 0.1, seed: int = 0) -> str:
    """The one description of the linear-probe protocol that cards, results and the CLI print."""
    return ("linear classifier on frozen precomputed pooled features of the un-augmented train split, "
            f"standardised (folded into the shipped head), weight decay from {list(WEIGHT_DECAYS)} "
            f"chosen on a held-out {val_fraction:.0%} of train (seed {seed}), retrained on all of train")


def fit_logreg(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float, max_iter: int):
    """Full-batch L-BFGS on ``mean CE + weight_decay/2 * ||W||^2``; returns (linear, n_iter)."""
    linear = nn.Linear(x.shape[1], num_classes).to(x.device)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(linear(x), y) + 0.5 * weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return linear, int(opt.state[linear.weight].get("n_iter", 0))


def _standardise_stats(x: torch.Tensor):
    return x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)


def fold_standardisation(linear: nn.Linear, mean: torch.Tensor, std: torch.Tensor) -> nn.Linear:
    """A Linear on raw features equal to ``linear((x - mean) / std)``."""
    folded = nn.Linear(linear.in_features, linear.out_features).to(linear.weight.device)
    with torch.no_grad():
        w = linear.weight / std
        folded.weight.copy_(w)
        folded.bias.copy_(linear.bias - w @ mean)
    return folded


def train_linear_probe(train_feats: torch.Tensor, train_labels: torch.Tensor,
                       num_classes: Optional[int] = None, weight_decays=WEIGHT_DECAYS,
                       val_fraction: float = 0.1, seed: int = 0, max_iter: int = 300, device=None):
    """Linear probe on precomputed features ``(N, D)``, fitted on ``device`` (default: theirs).

    Picks the weight decay with the best top-1 on a held-out ``val_fraction`` of train
    (split drawn with ``seed``), retrains on all of train, and returns ``(linear, record)``:
    an ``nn.Linear(D, num_classes)`` on the CPU reading raw (unstandardised) features, and a
    dict recording optimiser, iterations, chosen weight decay and the validation accuracy of
    every candidate.
    """
    device = device or train_feats.device
    x = train_feats.to(device).float()
    y = train_labels.to(device).long()
    num_classes = num_classes or int(y.max()) + 1
    n = x.shape[0]
    n_val = max(1, int(round(val_fraction * n)))
    if n - n_val < 1:
        raise ValueError(f"train_linear_probe: need at least 2 train items, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(device)
    val_idx, fit_idx = perm[:n_val], perm[n_val:]

    mean, std = _standardise_stats(x[fit_idx])
    xf, xv = (x[fit_idx] - mean) / std, (x[val_idx] - mean) / std
    val_top1 = {}
    for wd in weight_decays:
        lin, _ = fit_logreg(xf, y[fit_idx], num_classes, wd, max_iter)
        with torch.no_grad():
            val_top1[wd] = 100.0 * (lin(xv).argmax(1) == y[val_idx]).float().mean().item()
    best_wd = max(weight_decays, key=lambda wd: (val_top1[wd], wd))  # ties -> stronger decay

    mean, std = _standardise_stats(x)
    lin, n_iter = fit_logreg((x - mean) / std, y, num_classes, best_wd, max_iter)
    folded = fold_standardisation(lin, mean, std).cpu()
    record = {
        "optimizer": "L-BFGS, full batch on precomputed features, strong-Wolfe line search, zero init",
        "loss": "mean cross-entropy + weight_decay / 2 * ||W||^2 (bias not decayed)",
        "max_iter": max_iter,
        "iterations": n_iter,  # L-BFGS iterations of the final fit (each one or more full-batch passes)
        "converged": n_iter < max_iter,  # False: stopped at max_iter before the tolerances were met
        "weight_decay": best_wd,
        "weight_decay_grid": list(weight_decays),
        "val_fraction": val_fraction,
        "val_seed": seed,
        "val_top1": {str(wd): round(acc, 2) for wd, acc in val_top1.items()},
        "standardised": True,
        "folded": True,
    }
    return folded, record


def linear_top1(linear: nn.Linear, feats: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy (percent) of ``linear`` on features ``(N, D)`` (on the linear's device)."""
    device = linear.weight.device
    with torch.no_grad():
        pred = linear(feats.to(device).float()).argmax(1).cpu()
    return 100.0 * (pred == labels.long().cpu()).float().mean().item()


def balanced_subset(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted indices of a class-balanced subset: ``round(fraction * n_c)`` (at least 2) images of
    every class ``c``, drawn with ``seed``; the same arguments give the same subset."""
    labels = labels.cpu().long()
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in labels.unique(sorted=True):
        members = (labels == c).nonzero().squeeze(1)
        k = min(len(members), max(2, round(fraction * len(members))))
        picks.append(members[torch.randperm(len(members), generator=g)[:k]])
    return torch.cat(picks).sort().values


def low_label_probe(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                    test_labels: torch.Tensor, fraction: float, seeds=LOW_LABEL_SEEDS,
                    num_classes: Optional[int] = None, max_iter: int = 300, device=None) -> dict:
    """The linear probe trained on ``fraction`` of the train labels (a class-balanced subset per
    seed; its weight decay chosen on held-out images of that subset, never on test), evaluated
    on all of test. Returns mean and spread (sample std) of top-1 over the seeds, and each run."""
    num_classes = num_classes or int(train_labels.max()) + 1
    runs, sizes = [], []
    for seed in seeds:
        idx = balanced_subset(train_labels, fraction, seed)
        head, _ = train_linear_probe(train_feats[idx], train_labels[idx], num_classes, seed=seed,
                                     max_iter=max_iter, device=device)
        runs.append(linear_top1(head, test_feats, test_labels))
        sizes.append(len(idx))
    t = torch.tensor(runs, dtype=torch.float64)
    return {"fraction": fraction, "seeds": list(seeds), "images": sizes, "top1": [round(r, 2) for r in runs],
            "mean": round(float(t.mean()), 2), "std": round(float(t.std()) if len(runs) > 1 else 0.0, 2)}
