"""Evaluation protocols of ``../shared/specs/conventions.md``: k-NN, linear probe, fine-tuning.

``python -m training knn|linear|finetune (--run DIR | --model NAME | --checkpoint PATH)``.

* kNN: k = 200, T = 0.1, cosine similarity on L2-normalised pooled features, weighted vote
  ``exp(sim / T)``, train split as memory bank, test split as queries.
* linear: multinomial logistic regression on frozen, precomputed pooled features of the
  un-augmented train split, standardised; weight decay picked from ``WEIGHT_DECAYS`` on a
  held-out 10% of train (fixed seed), retrained on all of train; the standardisation is
  folded into the returned ``nn.Linear`` so it reads raw features.
* finetune: backbone + linear head trained end to end (SGD, cosine schedule).

Every evaluation pass runs with the model in eval mode (BatchNorm uses running stats).
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

import otzoo
from training.datasets import DataNotFoundError, build_dataset, evenly_spaced_subset, labels_of

WEIGHT_DECAYS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3)
KNN_K = 200
KNN_T = 0.1
PAPER_DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN", "stl10": "STL-10",
                       "in100": "ImageNet-100", "in1k": "ImageNet-1k"}


# ----------------------------------------------------------------------------- features
def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled backbone features ``(B, num_features)`` of a timm-style model (head ignored)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _autocast(enabled: bool):
    if enabled:
        return torch.autocast("cpu" if not torch.cuda.is_available() else "cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def extract_features(model: nn.Module, dataset: Dataset, batch_size: int = 256, num_workers: int = 0,
                     bf16: bool = False, device: Optional[torch.device] = None, progress: bool = False):
    """Pooled features of every item of ``dataset`` in order, model in eval mode.

    Returns ``(feats, labels)``: float32 ``(N, num_features)`` and int64 ``(N,)``. ``bf16``
    turns on bfloat16 autocast (faster on AMX CPUs; exported metrics are measured in fp32).
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    feats, labels = [], []
    it = loader
    if progress:
        from tqdm import tqdm
        it = tqdm(loader, desc="features", unit="batch", leave=False)
    try:
        with torch.inference_mode():
            for x, y in it:
                with _autocast(bf16):
                    f = pooled_features(model, x.to(device))
                feats.append(f.float().cpu())
                labels.append(torch.as_tensor(y, dtype=torch.long))
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("extract_features: the dataset is empty")
    # clone outside inference mode so the features can feed autograd (linear probe)
    return torch.cat(feats).clone(), torch.cat(labels).clone()


# ----------------------------------------------------------------------------- kNN
@torch.no_grad()
def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                k: int = KNN_K, t: float = KNN_T, num_classes: Optional[int] = None,
                chunk_size: int = 1024) -> torch.Tensor:
    """Weighted k-NN class predictions ``(M,)`` for ``test_feats`` ``(M, D)``.

    Cosine similarity on L2-normalised features; each of the ``k`` nearest train items votes
    for its label with weight ``exp(sim / t)``. ``k`` is capped at the memory-bank size.
    """
    train = F.normalize(train_feats.float(), dim=1)
    test = F.normalize(test_feats.float(), dim=1)
    train_labels = train_labels.long()
    num_classes = num_classes or int(train_labels.max()) + 1
    k = min(k, train.shape[0])
    preds = []
    for start in range(0, test.shape[0], chunk_size):
        sim = test[start:start + chunk_size] @ train.T  # (m, N)
        top_sim, top_idx = sim.topk(k, dim=1)
        votes = torch.zeros(sim.shape[0], num_classes)
        votes.scatter_add_(1, train_labels[top_idx], (top_sim / t).exp())
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_top1(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
             test_labels: torch.Tensor, k: int = KNN_K, t: float = KNN_T) -> float:
    """k-NN top-1 accuracy in percent (k = 200, T = 0.1, cosine, ``exp(sim/T)`` votes)."""
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    preds = knn_predict(train_feats, train_labels, test_feats, k=k, t=t, num_classes=num_classes)
    return 100.0 * (preds == test_labels.long()).float().mean().item()


# ----------------------------------------------------------------------------- linear probe
def _fit_logreg(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float,
                max_iter: int) -> tuple:
    """Full-batch L-BFGS on ``mean CE + weight_decay/2 * ||W||^2``; returns (linear, n_iter)."""
    linear = nn.Linear(x.shape[1], num_classes)
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
    n_iter = int(opt.state[linear.weight].get("n_iter", 0))
    return linear, n_iter


def _standardise_stats(x: torch.Tensor):
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    return mean, std


def fold_standardisation(linear: nn.Linear, mean: torch.Tensor, std: torch.Tensor) -> nn.Linear:
    """A Linear on raw features equal to ``linear((x - mean) / std)``."""
    folded = nn.Linear(linear.in_features, linear.out_features)
    with torch.no_grad():
        w = linear.weight / std
        folded.weight.copy_(w)
        folded.bias.copy_(linear.bias - w @ mean)
    return folded


def train_linear_probe(train_feats: torch.Tensor, train_labels: torch.Tensor,
                       num_classes: Optional[int] = None, weight_decays=WEIGHT_DECAYS,
                       val_fraction: float = 0.1, seed: int = 0, max_iter: int = 300):
    """Linear probe of conventions.md on precomputed features ``(N, D)``.

    Picks the weight decay with the best top-1 on a held-out ``val_fraction`` of train
    (split drawn with ``seed``), retrains on all of train, and returns
    ``(linear, record)``: an ``nn.Linear(D, num_classes)`` reading raw (unstandardised)
    features, and a dict recording optimiser, iterations, chosen weight decay and the
    validation accuracy of every candidate.
    """
    x = train_feats.float()
    y = train_labels.long()
    num_classes = num_classes or int(y.max()) + 1
    n = x.shape[0]
    n_val = max(1, int(round(val_fraction * n)))
    if n - n_val < 1:
        raise ValueError(f"train_linear_probe: need at least 2 train items, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, fit_idx = perm[:n_val], perm[n_val:]

    mean, std = _standardise_stats(x[fit_idx])
    xf, xv = (x[fit_idx] - mean) / std, (x[val_idx] - mean) / std
    val_top1 = {}
    for wd in weight_decays:
        lin, _ = _fit_logreg(xf, y[fit_idx], num_classes, wd, max_iter)
        with torch.no_grad():
            val_top1[wd] = 100.0 * (lin(xv).argmax(1) == y[val_idx]).float().mean().item()
    best_wd = max(weight_decays, key=lambda wd: (val_top1[wd], wd))  # ties -> stronger decay

    mean, std = _standardise_stats(x)
    lin, n_iter = _fit_logreg((x - mean) / std, y, num_classes, best_wd, max_iter)
    folded = fold_standardisation(lin, mean, std)
    record = {
        "optimizer": "L-BFGS, full batch on precomputed features, strong-Wolfe line search, zero init",
        "loss": "mean cross-entropy + weight_decay / 2 * ||W||^2 (bias not decayed)",
        "max_iter": max_iter,
        "epochs": n_iter,  # one full-batch L-BFGS iteration = one pass over the features
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
    """Top-1 accuracy (percent) of ``linear`` on features ``(N, D)``."""
    with torch.no_grad():
        return 100.0 * (linear(feats.float()).argmax(1) == labels.long()).float().mean().item()


# ----------------------------------------------------------------------------- loading
def read_run(run_dir) -> dict:
    """``run.json`` of a finished pretraining run directory."""
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file() or not (run_dir / "backbone.safetensors").is_file():
        raise FileNotFoundError(
            f"{str(run_dir)!r} is not a finished pretraining run: it needs run.json and "
            "backbone.safetensors (written when `python -m training pretrain` completes).")
    return json.loads(path.read_text())


def load_run_model(run_dir, num_classes: int = 0) -> nn.Module:
    """``otzoo.create_model(arch, num_classes)`` with the run's backbone loaded (head left as built)."""
    from safetensors.torch import load_file

    info = read_run(run_dir)
    model = otzoo.create_model(info["arch"], num_classes=num_classes)
    state = load_file(str(Path(run_dir) / "backbone.safetensors"))
    clf_names = classifier_param_names(model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad_missing = [k for k in missing if k not in clf_names]
    if bad_missing or unexpected:
        raise RuntimeError(f"backbone.safetensors does not match {info['arch']}: "
                           f"missing {bad_missing[:5]}, unexpected {list(unexpected)[:5]}")
    return model


def classifier_param_names(model: nn.Module) -> set:
    """State-dict names of the classifier's parameters (empty when num_classes=0)."""
    clf = model.get_classifier()
    ids = {id(p) for p in clf.parameters()} if isinstance(clf, nn.Module) else set()
    return {n for n, p in model.named_parameters() if id(p) in ids}


def load_model(run=None, model_name=None, checkpoint=None, arch=None):
    """Model + info dict from exactly one of a run dir, an otzoo weight name, or a checkpoint."""
    given = [v for v in (run, model_name, checkpoint) if v]
    if len(given) != 1:
        raise ValueError("give exactly one of --run DIR, --model NAME, --checkpoint PATH")
    if run:
        info = read_run(run)
        return load_run_model(run), {"source": str(run), "arch": info["arch"], "dataset": info.get("dataset"),
                                     "data_dir": info.get("data_dir"), "run": info}
    if model_name:
        model = otzoo.create_model(model_name, pretrained=True)
        cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
        return model, {"source": model_name, "arch": cfg.get("architecture"), "dataset": cfg.get("dataset")}
    path = Path(checkpoint)
    if arch is None:
        cfg_path = (path if path.is_dir() else path.parent) / "config.json"
        if not cfg_path.is_file():
            raise ValueError(f"{checkpoint!r} has no config.json beside it: pass --arch")
        arch = json.loads(cfg_path.read_text())["architecture"]
    model = otzoo.create_model(arch, checkpoint_path=str(path))
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    return model, {"source": str(path), "arch": arch, "dataset": cfg.get("dataset")}


def eval_transform(model: nn.Module):
    """The eval transform that travels with the model (``create_transform(resolve_data_config)``)."""
    return otzoo.create_transform(otzoo.resolve_data_config(model))


def resolve_eval_data_dir(data_dir=None, recorded=None):
    """``--data-dir``, else ``$OTZOO_DATA``, else the run's recorded data dir if it exists, else None."""
    if data_dir:
        return str(data_dir)
    if os.environ.get("OTZOO_DATA"):
        return None  # build_dataset reads it
    if recorded and Path(recorded).is_dir():
        return str(recorded)
    return None


def dataset_variant(dataset: str, data_dir) -> str:
    """Human-readable dataset + copy, e.g. "CIFAR-10 (JPEG q75 copy)"."""
    pretty = PAPER_DATASET_NAMES.get(dataset, dataset)
    folder = Path(data_dir) if data_dir else (Path(os.environ["OTZOO_DATA"]) if os.environ.get("OTZOO_DATA") else None)
    if folder is None:
        return f"{pretty} (torchvision)"
    readme = folder.parent / "README.md"
    if readme.is_file() and "quality 75" in readme.read_text(errors="ignore") and folder.name == dataset:
        return f"{pretty} (JPEG q75 copy)"
    return f"{pretty} (ImageFolder at {folder.name}/)"


def first_n(dataset: Dataset, n: int) -> Dataset:
    """The first ``n`` items (ImageFolder order: class folder, then file name)."""
    if n >= len(dataset):
        return dataset
    sub = Subset(dataset, list(range(n)))
    sub.classes = getattr(dataset, "classes", None)
    return sub


# ----------------------------------------------------------------------------- fine-tuning
def finetune(model: nn.Module, train_set: Dataset, test_set: Dataset, num_classes: int,
             epochs: int = 10, lr: float = 0.05, weight_decay: float = 5e-4, batch_size: int = 128,
             num_workers: int = 0, bf16: bool = False, seed: int = 0, progress: bool = True) -> dict:
    """Train backbone + a fresh linear head end to end (SGD momentum 0.9, cosine lr, no warmup).

    ``train_set`` should carry the training augmentation. Returns ``{"finetune_top1": ...}``.
    """
    torch.manual_seed(seed)
    model.reset_classifier(num_classes)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=len(train_set) > batch_size,
                        num_workers=num_workers, generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    total = max(1, epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="finetune", unit="step", leave=False)
    loss_val = float("nan")
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            with _autocast(bf16):
                loss = F.cross_entropy(model(x), torch.as_tensor(y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_val = loss.item()
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_val:.3f}")
    if bar:
        bar.close()
    model.eval()
    correct = n = 0
    with torch.inference_mode():
        for x, y in DataLoader(test_set, batch_size=256, num_workers=num_workers):
            correct += (model(x).argmax(1) == torch.as_tensor(y)).sum().item()
            n += len(y)
    return {"finetune_top1": round(100.0 * correct / n, 2), "final_loss": loss_val,
            "recipe": {"optimizer": "SGD momentum 0.9, cosine schedule", "epochs": epochs, "lr": lr,
                       "weight_decay": weight_decay, "batch_size": batch_size, "seed": seed}}


# ----------------------------------------------------------------------------- CLI
def build_parser(prog: str, command: str) -> argparse.ArgumentParser:
    descriptions = {
        "knn": "k-NN top-1 (k=200, T=0.1, cosine, exp(sim/T) votes) of a backbone's pooled features.",
        "linear": "Linear probe on frozen, precomputed, standardised features; weight decay chosen "
                  "on a held-out 10%% of train, retrained on all of train.",
        "finetune": "Fine-tune backbone + a linear head end to end and report test top-1.",
    }
    p = argparse.ArgumentParser(prog=prog, description=descriptions.get(command))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="pretraining run dir (backbone.safetensors + run.json)")
    src.add_argument("--model", help="otzoo pretrained weight name, e.g. gca_uot_resnet18_cifar10")
    src.add_argument("--checkpoint", help="exported folder or model.safetensors (with --arch if no config.json)")
    p.add_argument("--arch", help="architecture for a bare --checkpoint file")
    p.add_argument("--dataset", help="dataset name (default: the run's / weight's, else cifar10)")
    p.add_argument("--data-dir", help="folder with train/ and test/ ImageFolder trees (default $OTZOO_DATA)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for feature extraction / training")
    p.add_argument("--train-subset", type=int, help="use N evenly spaced train images (quick checks only)")
    p.add_argument("--test-subset", type=int, help="use N evenly spaced test images (quick checks only)")
    p.add_argument("--json-out", help="also write the result as JSON here")
    if command == "knn":
        p.add_argument("--k", type=int, default=KNN_K)
        p.add_argument("--t", type=float, default=KNN_T)
    elif command == "linear":
        p.add_argument("--max-iter", type=int, default=300, help="L-BFGS iterations per fit")
        p.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    elif command == "finetune":
        p.add_argument("--epochs", type=int, default=10)
        p.add_argument("--lr", type=float, default=0.05)
        p.add_argument("--weight-decay", type=float, default=5e-4)
        p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None, prog: str = "python -m training evaluate", command: str = "knn") -> int:
    args = build_parser(prog, command).parse_args(argv)
    try:
        model, info = load_model(args.run, args.model, args.checkpoint, args.arch)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    dataset = args.dataset or info.get("dataset") or "cifar10"
    data_dir = resolve_eval_data_dir(args.data_dir, info.get("data_dir"))
    tf = eval_transform(model)
    try:
        train_set = build_dataset(dataset, "train", data_dir=data_dir, transform=tf)
        test_set = build_dataset(dataset, "test", data_dir=data_dir, transform=tf)
    except DataNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    num_classes = len(train_set.classes)
    if args.train_subset:
        train_set = evenly_spaced_subset(train_set, args.train_subset)
    if args.test_subset:
        test_set = evenly_spaced_subset(test_set, args.test_subset)
    result = {"command": command, "source": info["source"], "arch": info.get("arch"), "dataset": dataset,
              "dataset_variant": dataset_variant(dataset, data_dir), "num_train": len(train_set),
              "num_test": len(test_set)}
    start = time.time()
    if command in ("knn", "linear"):
        tr_f, tr_y = extract_features(model, train_set, args.batch_size, args.workers, args.bf16, progress=True)
        te_f, te_y = extract_features(model, test_set, args.batch_size, args.workers, args.bf16, progress=True)
        if command == "knn":
            result["knn_top1"] = round(knn_top1(tr_f, tr_y, te_f, te_y, k=args.k, t=args.t), 2)
            result["protocol"] = f"k={args.k}, T={args.t}, cosine, exp(sim/T) weighted vote"
        else:
            linear, record = train_linear_probe(tr_f, tr_y, num_classes, max_iter=args.max_iter, seed=args.seed)
            result["linear_top1"] = round(linear_top1(linear, te_f, te_y), 2)
            result["probe"] = record
    else:
        cfg = otzoo.resolve_data_config(model)
        train_tf = otzoo.create_transform(cfg, is_training=True)
        train_aug = build_dataset(dataset, "train", data_dir=data_dir, transform=train_tf)
        if args.train_subset:
            train_aug = evenly_spaced_subset(train_aug, args.train_subset)
        result.update(finetune(model, train_aug, test_set, num_classes, epochs=args.epochs, lr=args.lr,
                               weight_decay=args.weight_decay, batch_size=args.batch_size,
                               num_workers=args.workers, bf16=args.bf16, seed=args.seed))
    result["bf16"] = bool(args.bf16)
    result["eval_time_s"] = round(time.time() - start, 1)
    key = {"knn": "knn_top1", "linear": "linear_top1", "finetune": "finetune_top1"}[command]
    print(f"{command} top-1 = {result[key]:.2f}%  ({info['source']}, {result['dataset_variant']}, "
          f"{result['num_train']} train / {result['num_test']} test images, {result['eval_time_s']} s)")
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
