import numpy as np
import pytest
import torch

from training.evaluate.knn import knn_protocol, knn_top1


def brute_force_knn(train, train_y, test, test_y, k, t):
    train = train / train.norm(dim=1, keepdim=True)
    test = test / test.norm(dim=1, keepdim=True)
    correct = 0
    for q, y in zip(test, test_y):
        sims = [(float(q @ x), int(c)) for x, c in zip(train, train_y)]
        sims.sort(key=lambda s: -s[0])
        votes = {}
        for s, c in sims[:k]:
            votes[c] = votes.get(c, 0.0) + np.exp(s / t)
        correct += max(votes, key=votes.get) == int(y)
    return 100.0 * correct / len(test_y)


@pytest.mark.parametrize("k,t", [(1, 0.1), (5, 0.1), (20, 0.5), (200, 0.1)])
def test_knn_top1_matches_brute_force(k, t):
    g = torch.Generator().manual_seed(k)
    train, test = torch.randn(60, 8, generator=g, dtype=torch.float64), torch.randn(30, 8, generator=g, dtype=torch.float64)
    train_y, test_y = torch.randint(0, 3, (60,), generator=g), torch.randint(0, 3, (30,), generator=g)
    got = knn_top1(train, train_y, test, test_y, k=k, t=t)
    assert got == pytest.approx(brute_force_knn(train, train_y, test, test_y, k, t))


def test_knn_top1_separable_is_100_and_chance_differs():
    g = torch.Generator().manual_seed(0)
    centers = torch.eye(5, 16) * 10
    train_y, test_y = torch.arange(500) % 5, torch.arange(100) % 5
    train = centers[train_y] + torch.randn(500, 16, generator=g)
    test = centers[test_y] + torch.randn(100, 16, generator=g)
    assert knn_top1(train, train_y, test, test_y) == 100.0
    shuffled = train_y[torch.randperm(500, generator=g)]
    assert knn_top1(train, shuffled, test, test_y) < 50.0


def test_protocol_description_names_k_and_t():
    assert knn_protocol().startswith("k=200, T=0.1, cosine") and "k=20, T=0.5" in knn_protocol(20, 0.5)
