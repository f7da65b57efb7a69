import torch
import torch.nn as nn

from training.evaluate.linear import WEIGHT_DECAYS, fold_standardisation, train_linear_probe


def test_fold_standardisation_equals_unfolded():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 12, generator=g) * 5 + 3
    mean, std = x.mean(0), x.std(0)
    lin = nn.Linear(12, 4)
    folded = fold_standardisation(lin, mean, std)
    torch.testing.assert_close(folded(x), lin((x - mean) / std), rtol=1e-5, atol=1e-5)


def test_linear_probe_learns_picks_from_grid_and_is_deterministic():
    g = torch.Generator().manual_seed(1)
    w_true = torch.randn(20, 3, generator=g)
    x = torch.randn(600, 20, generator=g) * 4 + 7  # un-standardised raw features
    y = ((x - 7) @ w_true).argmax(1)
    head, rec = train_linear_probe(x[:500], y[:500], 3, max_iter=30)
    acc = (head(x[500:]).argmax(1) == y[500:]).float().mean().item()
    assert acc > 0.9  # the head reads raw features (standardisation folded)
    assert rec["weight_decay"] in WEIGHT_DECAYS
    assert set(rec["val_top1"]) == {str(w) for w in WEIGHT_DECAYS}
    assert 1 <= rec["iterations"] <= 30 and rec["converged"] == (rec["iterations"] < 30) and "L-BFGS" in rec["optimizer"]
    head2, rec2 = train_linear_probe(x[:500], y[:500], 3, max_iter=30)
    assert torch.equal(head.weight, head2.weight) and rec == rec2


def test_linear_probe_reports_held_out_accuracy_of_each_candidate():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 10, generator=g)
    y = (x[:, 0] > 0).long()
    _, rec = train_linear_probe(x, y, 2, max_iter=50)
    assert max(rec["val_top1"].values()) > 90


def test_balanced_subsets_are_balanced_deterministic_and_seeded():
    from training.evaluate.linear import balanced_subset

    labels = torch.arange(1000) % 10
    a, b = balanced_subset(labels, 0.1, seed=0), balanced_subset(labels, 0.1, seed=0)
    assert torch.equal(a, b) and len(a) == 100 and len(a.unique()) == 100
    assert torch.bincount(labels[a], minlength=10).tolist() == [10] * 10
    assert not torch.equal(a, balanced_subset(labels, 0.1, seed=1))
    assert torch.bincount(labels[balanced_subset(labels, 0.001, seed=0)]).tolist() == [2] * 10  # at least 2


def test_low_label_probe_reports_mean_and_spread_over_seeds():
    from training.evaluate.linear import low_label_probe

    g = torch.Generator().manual_seed(3)
    centers = torch.randn(4, 16, generator=g) * 4
    y, yt = torch.arange(800) % 4, torch.arange(200) % 4
    x, xt = centers[y] + torch.randn(800, 16, generator=g), centers[yt] + torch.randn(200, 16, generator=g)
    rec = low_label_probe(x, y, xt, yt, 0.05, seeds=(0, 1, 2), max_iter=30)
    assert rec["images"] == [40, 40, 40] and len(rec["top1"]) == 3 and rec["mean"] > 90
    assert rec["mean"] == round(sum(rec["top1"]) / 3, 2) and rec["std"] >= 0
    assert low_label_probe(x, y, xt, yt, 0.05, seeds=(0, 1, 2), max_iter=30) == rec  # deterministic
