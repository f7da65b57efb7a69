"""What pretraining bought: a recipe's randomly initialised backbone, measured by export's protocol.

``python -m training baseline --config training/configs/<recipe>.yaml [key=value ...] [--data-dir DATA]``

The backbone is the one the recipe's run starts from (step 0: ``engine`` seeds with the recipe's
``seed``, then builds it with ``create_backbone``), given the recipe's input size, mean and std, and
measured exactly as ``training export`` measures a release (:func:`~training.release.export.measure_release`:
k-NN k=200 and k=20, the linear probe, the 1% / 10% probes, the first 500 test images, the feature
geometry), fp32, BatchNorm in eval mode (its running statistics still at their initial values, as in
the run's step 0). The record goes to ``results/baselines/<dataset>/<arch>-<size>px.json``; the card
of every weight of that architecture, dataset and input size shows it beside the weight's own numbers.
"""
import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Optional

import torch

import otzoo
from training.release.export import REPO_ROOT, SUBSET_SIZE, eval_sets, measure_release
from training.run.config import load_config
from training.run.data import error_line
from training.run.datasets import DataNotFoundError
from training.run.device import resolve_device
from training.run.distributed import DistInfo
from training.run.engine import seed_everything
from training.run.hardware import hardware_string
from training.run.methods import create_backbone
from training.evaluate.loading import dataset_variant, resolve_eval_data_dir

__all__ = ["initial_backbone", "measure_baseline", "baseline_path", "main"]

SOURCE = "random init (step 0 of the recipe)"


def initial_backbone(cfg: dict, num_classes: int) -> torch.nn.Module:
    """The backbone a run of ``cfg`` starts from, with a fresh ``num_classes`` head and the recipe's
    input size, mean and std in its cfg (so its transforms are those of the weights it trains)."""
    seed_everything(cfg["seed"])
    model = create_backbone(cfg["arch"])  # the head comes after, so it draws nothing the backbone drew
    model.reset_classifier(num_classes)
    size, data = cfg["aug"]["size"], cfg["data"]
    model.pretrained_cfg = model.default_cfg = {**model.pretrained_cfg, "input_size": (3, size, size),
                                                "mean": tuple(data["mean"]), "std": tuple(data["std"])}
    return model


def baseline_path(root, dataset: str, arch: str, size: int) -> Path:
    return Path(root) / "results" / "baselines" / dataset / f"{arch}-{size}px.json"


def measure_baseline(cfg: dict, data_dir=None, batch_size: int = 256, num_workers: int = 0, max_iter: int = 300,
                     train_subset: Optional[int] = None, test_subset: Optional[int] = None,
                     subset_size: int = SUBSET_SIZE, device="auto", progress: bool = True) -> dict:
    """The record of ``cfg``'s initial backbone measured by export's protocol (see the module doc)."""
    device, start = resolve_device(device), time.time()
    model = initial_backbone(cfg, 0)  # an unknown architecture is refused before the data is read
    data_dir = resolve_eval_data_dir(data_dir)
    train_set, test_set, subset_set, label_names, _ = eval_sets(cfg["dataset"], data_dir, train_subset,
                                                                 test_subset, subset_size)
    model.reset_classifier(len(label_names))  # fitted by the probe; the backbone is untouched
    _, metrics = measure_release(model, train_set, test_set, subset_set, batch_size, num_workers, max_iter, device,
                                 progress, stored=False)  # never a file: its folded head stays fp32
    return {"source": SOURCE, "arch": cfg["arch"], "dataset": cfg["dataset"], "seed": cfg["seed"],
            "dataset_variant": dataset_variant(cfg["dataset"], data_dir), "input_size": cfg["aug"]["size"],
            "mean": list(cfg["data"]["mean"]), "std": list(cfg["data"]["std"]),
            "subsampled": bool(train_subset or test_subset or subset_size != SUBSET_SIZE), "metrics": metrics,
            "hardware": hardware_string(DistInfo(device=device), "fp32"), "otzoo_version": otzoo.__version__,
            "eval_time_s": round(time.time() - start, 1)}


def recorded_command(config: str, overrides, data_dir: Optional[str]) -> str:
    """The command to record: the recipe relative to the repository, the data folder as ``DATA``."""
    path = Path(config).resolve()
    recipe = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else Path(config)
    return " ".join(["python -m training baseline --config", shlex.quote(str(recipe)), *map(shlex.quote, overrides),
                     *(["--data-dir DATA"] if data_dir else [])])


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Measure a recipe's randomly initialised backbone (its "
                                "step 0) by export's protocol: what pretraining bought, for the cards.")
    p.add_argument("--config", required=True, help="the recipe (YAML), e.g. training/configs/cifar10_long.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, as for pretrain (arch=resnet50)")
    p.add_argument("--data-dir", help="train/ + test/ (or val/) ImageFolder root (default $OTZOO_DATA)")
    p.add_argument("--root", default=str(REPO_ROOT), help="repo root to write results/baselines/ into")
    p.add_argument("--json-out", help="write the record here instead (required with the subsets)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")
    p.add_argument("--max-iter", type=int, default=300, help="L-BFGS iterations per linear-probe fit")
    p.add_argument("--train-subset", type=int, help="quick checks only: N evenly spaced train images")
    p.add_argument("--test-subset", type=int, help="quick checks only: N evenly spaced test images")
    p.add_argument("--subset-size", type=int, default=SUBSET_SIZE, help="images behind subset_top1")
    return p


def main(argv=None, prog: str = "python -m training baseline", command: str = "baseline") -> int:
    args = build_parser(prog).parse_args(argv)
    quick = bool(args.train_subset or args.test_subset or args.subset_size != SUBSET_SIZE)
    if quick and not args.json_out:
        print("error: --train-subset / --test-subset / --subset-size measure a quick check, which the cards must "
              "not show; give --json-out FILE to write it elsewhere", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, args.overrides)
        record = measure_baseline(cfg, args.data_dir, args.batch_size, args.workers, args.max_iter, args.train_subset,
                                  args.test_subset, args.subset_size, args.device)
    except (DataNotFoundError, FileNotFoundError, ValueError) as err:  # ConfigError included
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    record["command_line"] = recorded_command(args.config, args.overrides, args.data_dir)
    out = Path(args.json_out) if args.json_out else baseline_path(args.root, cfg["dataset"], cfg["arch"],
                                                                  cfg["aug"]["size"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    m = record["metrics"]
    print(f"[baseline] {cfg['arch']} at step 0 on {record['dataset_variant']}: linear {m['linear_top1']:.2f}, "
          f"k-NN {m['knn_top1']:.2f} ({record['eval_time_s']} s) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
