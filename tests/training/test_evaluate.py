import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import otzoo
from training import evaluate
from training.evaluate import (extract_features, fold_standardisation, knn_top1, train_linear_probe)

CLASSES = ["c0", "c1", "c2", "c3"]
COLORS = [(230, 40, 40), (40, 230, 40), (40, 40, 230), (230, 230, 40)]


# ----------------------------------------------------------------------------- helpers shared by tests/training
def make_image_tree(root: Path, n_train: int = 8, n_test: int = 4, classes=CLASSES, seed: int = 0,
                    noise: float = 25.0) -> Path:
    """train/ and test/ ImageFolder trees of 32x32 PNGs: one noisy colour per class."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, (name, color) in enumerate(zip(classes, COLORS)):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.clip(np.array(color)[None, None] + rng.normal(0, noise, (32, 32, 3)), 0, 255)
                Image.fromarray(img.astype(np.uint8)).save(d / f"{i:04d}.png")
    return root


def make_run_dir(path: Path, arch: str = "resnet18_cifar", method: str = "gca_uot", dataset: str = "cifar10",
                 data_dir=None, seed: int = 0) -> Path:
    """A finished-run directory per COMMON.md: random backbone.safetensors + run.json (+ a curves.png)."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    model = otzoo.create_model(arch, num_classes=0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "backbone.safetensors"))
    config = {"method": method, "arch": arch, "epochs": 1, "batch_size": 8, "seed": seed}
    (path / "run.json").write_text(json.dumps({
        "method": method, "arch": arch, "dataset": dataset, "data_dir": str(data_dir) if data_dir else None,
        "data_variant": "synthetic test images", "epochs": 1, "steps": 4, "views_seen": 64, "batch_size": 8,
        "world_size": 1, "seed": seed, "wall_time_s": 12.5, "hardware": "test", "otzoo_version": otzoo.__version__,
        "torch_version": torch.__version__, "command": "python -m training pretrain --config test.yaml",
        "config": config, "final_loss": 1.0}))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path / "curves.png")
    return path


# ----------------------------------------------------------------------------- kNN
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


# ----------------------------------------------------------------------------- linear probe
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
    assert rec["weight_decay"] in evaluate.WEIGHT_DECAYS
    assert set(rec["val_top1"]) == {str(w) for w in evaluate.WEIGHT_DECAYS}
    assert rec["epochs"] >= 1 and "L-BFGS" in rec["optimizer"]
    head2, rec2 = train_linear_probe(x[:500], y[:500], 3, max_iter=30)
    assert torch.equal(head.weight, head2.weight) and rec == rec2


def test_linear_probe_reports_held_out_accuracy_of_each_candidate():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 10, generator=g)
    y = (x[:, 0] > 0).long()
    _, rec = train_linear_probe(x, y, 2, max_iter=50)
    assert max(rec["val_top1"].values()) > 90


# ----------------------------------------------------------------------------- features
def test_extract_features_in_order_eval_mode_and_restores_mode(tmp_path):
    make_image_tree(tmp_path, n_train=2, n_test=1)
    from torchvision.datasets import ImageFolder

    model = otzoo.create_model("resnet18_cifar", num_classes=0)
    model.train()
    ds = ImageFolder(str(tmp_path / "train"), transform=evaluate.eval_transform(model))
    feats, labels = extract_features(model, ds, batch_size=3)
    assert model.training  # mode restored
    assert feats.dtype == torch.float32 and feats.shape == (8, model.num_features)
    assert labels.tolist() == [y for _, y in ds.samples]
    model.eval()
    with torch.no_grad():
        ref = model(torch.stack([ds[i][0] for i in range(8)]))
    torch.testing.assert_close(feats, ref, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- CLI
def test_knn_and_linear_cli_on_run_dir(tmp_path, capsys):
    data = make_image_tree(tmp_path / "data", n_train=4, n_test=2)
    run = make_run_dir(tmp_path / "run")
    out = tmp_path / "knn.json"
    assert evaluate.main(["--run", str(run), "--data-dir", str(data), "--json-out", str(out)],
                         prog="knn", command="knn") == 0
    res = json.loads(out.read_text())
    assert res["num_train"] == 16 and res["num_test"] == 8
    # independent recomputation with the public functions
    model = evaluate.load_run_model(run)
    from torchvision.datasets import ImageFolder
    tf = evaluate.eval_transform(model)
    tr = extract_features(model, ImageFolder(str(data / "train"), transform=tf))
    te = extract_features(model, ImageFolder(str(data / "test"), transform=tf))
    assert res["knn_top1"] == round(knn_top1(*tr, *te), 2)
    assert "knn top-1" in capsys.readouterr().out

    out = tmp_path / "linear.json"
    assert evaluate.main(["--run", str(run), "--data-dir", str(data), "--json-out", str(out), "--max-iter", "20"],
                         prog="linear", command="linear") == 0
    res = json.loads(out.read_text())
    head, _ = train_linear_probe(*tr, 4, max_iter=20)
    assert res["linear_top1"] == round(evaluate.linear_top1(head, *te), 2)
    assert res["probe"]["weight_decay"] in evaluate.WEIGHT_DECAYS


def test_finetune_cli_runs_and_reports(tmp_path):
    data = make_image_tree(tmp_path / "data", n_train=4, n_test=2)
    run = make_run_dir(tmp_path / "run")
    out = tmp_path / "ft.json"
    assert evaluate.main(["--run", str(run), "--data-dir", str(data), "--epochs", "1", "--batch-size", "8",
                          "--json-out", str(out)], prog="finetune", command="finetune") == 0
    res = json.loads(out.read_text())
    assert 0.0 <= res["finetune_top1"] <= 100.0 and res["num_test"] == 8
    assert np.isfinite(res["final_loss"])


def test_cli_errors_are_clear(tmp_path, capsys):
    assert evaluate.main(["--run", str(tmp_path)], prog="knn", command="knn") == 2
    assert "backbone.safetensors" in capsys.readouterr().err
    run = make_run_dir(tmp_path / "run")
    assert evaluate.main(["--run", str(run), "--data-dir", str(tmp_path / "nope")], prog="knn", command="knn") == 2
    assert "not a directory" in capsys.readouterr().err
