"""Weighted k-NN top-1 on frozen features (k = 200, T = 0.1, cosine), on the features' device.

The rule itself lives with the run's monitor (:mod:`training.run.monitor`), which measures the same way.
"""
from ..run.monitor import KNN_K, KNN_T, knn_predict, knn_top1

__all__ = ["KNN_K", "KNN_T", "knn_protocol", "knn_predict", "knn_top1"]


def knn_protocol(k: int = KNN_K, t: float = KNN_T) -> str:
    """The one description of the kNN protocol that cards, results and the CLI print."""
    return f"k={k}, T={t}, cosine similarity on L2-normalised pooled features, exp(sim/T) weighted vote"
