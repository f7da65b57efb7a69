"""What a run watches while it trains: weighted k-NN top-1 and RankMe on a fixed subset's features.

The k-NN rule here is the evaluation protocol's (``training.evaluate.knn`` imports it from this
module), so a monitor point and an evaluated weight are measured the same way.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .augment import normalize

__all__ = ["KNN_K", "KNN_T", "knn_predict", "knn_top1", "effective_rank", "monitor_features"]

KNN_K = 200
KNN_T = 0.1


@torch.no_grad()
def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                k: int = KNN_K, t: float = KNN_T, num_classes: Optional[int] = None,
                chunk_size: int = 1024) -> torch.Tensor:
    """Weighted k-NN class predictions ``(M,)`` for ``test_feats`` ``(M, D)``.

    Cosine similarity on L2-normalised features; each of the ``k`` nearest train items votes
    for its label with weight ``exp(sim / t)``. ``k`` is capped at the memory-bank size. Runs
    on the device of ``train_feats``.
    """
    device = train_feats.device
    train = F.normalize(train_feats.float(), dim=1)
    test = F.normalize(test_feats.to(device).float(), dim=1)
    train_labels = train_labels.to(device).long()
    num_classes = num_classes or int(train_labels.max()) + 1
    k = min(k, train.shape[0])
    preds = []
    for start in range(0, test.shape[0], chunk_size):
        sim = test[start:start + chunk_size] @ train.T  # (m, N)
        top_sim, top_idx = sim.topk(k, dim=1)
        votes = torch.zeros(sim.shape[0], num_classes, device=device)
        votes.scatter_add_(1, train_labels[top_idx], (top_sim / t).exp())
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_top1(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
             test_labels: torch.Tensor, k: int = KNN_K, t: float = KNN_T) -> float:
    """k-NN top-1 accuracy in percent (k = 200, T = 0.1, cosine, ``exp(sim/T)`` votes)."""
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    preds = knn_predict(train_feats, train_labels, test_feats, k=k, t=t, num_classes=num_classes)
    return 100.0 * (preds.cpu() == test_labels.long().cpu()).float().mean().item()


def effective_rank(features: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al., ICML 2023) of ``(N, D)`` features: ``exp(-sum_k p_k log p_k)`` with
    ``p_k = s_k / sum(s) + eps`` over the singular values ``s``; between 1 (collapsed to a line) and
    ``min(N, D)`` (spread evenly), a label-free warning of (dimensional) collapse."""
    s = torch.linalg.svdvals(features.double())
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def monitor_features(forward, images, mean, std, device, autocast, batch=512, size: Optional[int] = None):
    """L2-normalised ``forward`` outputs of uint8 ``images``, moved to ``device`` as uint8 and, where ``size`` is
    another, resized to ``size`` x ``size`` (bilinear, antialiased): the size the model trains on, which a model of
    fixed input size (ViT) needs when the images were decoded smaller or larger."""
    feats = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(device, non_blocking=True).float().div_(255.0)
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = normalize(x, mean, std)
        with autocast():
            feats.append(forward(x).float())
    return torch.nn.functional.normalize(torch.cat(feats), dim=1).cpu()
