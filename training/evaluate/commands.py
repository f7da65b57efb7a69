"""``python -m training knn|linear|finetune (--run DIR | --model NAME | --checkpoint PATH)``.

A thin command line over :mod:`training.protocols` (features, kNN, linear probe,
fine-tuning) and :mod:`training.evaluate.loading`. ``--device`` (default: the GPU when there is one)
is where the feature pass, the probe and the fine-tuning run; for the feature passes images
travel to it as uint8.
Every evaluation pass runs with the model in eval mode (BatchNorm uses running stats).
"""
import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import otzoo
from training.run.data import DataError, error_line
from training.run.datasets import build_dataset, check_same_classes, evenly_spaced_subset, labels_of
from training.run.distributed import DistInfo
from training.run.hardware import hardware_string
from training.run.device import PRECISIONS, resolve_device, resolve_precision
from training.evaluate.loading import dataset_variant, load_model, resolve_eval_data_dir
from training.evaluate.features import eval_transform, extract_features
from training.evaluate.finetune import (FinetuneRecipe, finetune, finetune_transform, label_subset,
                                         scratch_source)
from training.evaluate.knn import KNN_K, KNN_T, knn_protocol, knn_top1
from training.evaluate.linear import linear_protocol, linear_top1, train_linear_probe

__all__ = ["build_parser", "main"]


def build_parser(prog: str, command: str) -> argparse.ArgumentParser:
    descriptions = {
        "knn": f"k-NN top-1 ({knn_protocol()}) of a backbone's pooled features.",
        "linear": f"Linear probe: {linear_protocol()}.".replace("%", "%%"),
        "finetune": f"Fine-tune backbone + a fresh linear head end to end and report test top-1. Defaults: "
                    f"{FinetuneRecipe().describe()}.".replace("%", "%%"),
    }
    p = argparse.ArgumentParser(prog=prog, description=descriptions.get(command))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="pretraining run dir (backbone.safetensors + run.json)")
    src.add_argument("--model", help="otzoo pretrained weight name, e.g. gca_uot_resnet18_cifar10")
    src.add_argument("--checkpoint", help="exported folder or model.safetensors (with --arch if no config.json)")
    if command == "finetune":
        src.add_argument("--scratch", metavar="ARCH", help="random initialisation of ARCH (the reference)")
        p.add_argument("--img-size", type=int, metavar="N",
                       help="train and test at N px (default: the weight's input size; give --scratch the size "
                            "of the weight it is compared with, e.g. 128 for the Imagenette weights)")
    p.add_argument("--arch", help="architecture for a bare --checkpoint file")
    p.add_argument("--dataset", help="dataset name (default: the run's / weight's, else cifar10)")
    p.add_argument("--data-dir", help="folder with train/ and test/ ImageFolder trees (default $OTZOO_DATA)")
    p.add_argument("--batch-size", type=int, default=FinetuneRecipe.batch_size if command == "finetune" else 256)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32 (as the shipped metrics), or auto: bf16 where it is fast (CUDA, AVX-512 bf16/AMX CPUs)")
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
        for field in dataclasses.fields(FinetuneRecipe):
            if field.name != "batch_size":
                p.add_argument("--" + field.name.replace("_", "-"), type=field.type if field.type is not bool else
                               (lambda v: v.lower() in ("1", "true", "yes")), default=field.default)
    return p


def _recipe(args) -> FinetuneRecipe:
    return FinetuneRecipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(FinetuneRecipe)})


def _load_source(args):
    """(model, info) of --scratch / --run / --model / --checkpoint, at --img-size when given."""
    if getattr(args, "scratch", None):
        model, info = otzoo.create_model(args.scratch), {"source": scratch_source(args.scratch), "arch": args.scratch}
    else:
        model, info = load_model(args.run, args.model, args.checkpoint, args.arch)
    size = getattr(args, "img_size", None)
    if size:
        _set_input_size(model, size)
    return model, info


def _set_input_size(model, size: int) -> None:
    """Make ``model``'s transforms work at ``size`` px; a ViT's patch grid is fixed, so it only takes its own."""
    own = model.pretrained_cfg["input_size"]
    fixed = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if fixed is not None and tuple(fixed) != (size, size):
        raise ValueError(f"--img-size {size}: this model's patch embedding is built for {own[-1]} px; "
                         f"drop --img-size to fine-tune it at {own[-1]} px")
    model.pretrained_cfg = dict(model.pretrained_cfg, input_size=(own[0], size, size))


@dataclasses.dataclass
class _EvalJob:
    """What one protocol run needs: the parsed args, the model and its evaluation data."""
    args: argparse.Namespace
    command: str
    model: object
    dataset: str
    data_dir: object
    train_set: object = None
    test_set: object = None
    num_classes: int = 0


def _eval_sets(job: _EvalJob) -> None:
    """Fill in train/test (the weight's eval transform, subsampled as asked) and num_classes."""
    tf = eval_transform(job.model, uint8=job.command != "finetune")  # feature passes take uint8
    train_set = build_dataset(job.dataset, "train", data_dir=job.data_dir, transform=tf)
    test_set = build_dataset(job.dataset, "test", data_dir=job.data_dir, transform=tf)
    check_same_classes(train_set, test_set)
    job.train_set = evenly_spaced_subset(train_set, job.args.train_subset)
    job.test_set = evenly_spaced_subset(test_set, job.args.test_subset)
    job.num_classes = len(train_set.classes)


def _finetune(job: _EvalJob, precision: str, device) -> dict:
    args, recipe = job.args, _recipe(job.args)
    train_aug = build_dataset(job.dataset, "train", data_dir=job.data_dir, transform=finetune_transform(job.model))
    train_aug = evenly_spaced_subset(train_aug, args.train_subset)
    train_aug = label_subset(train_aug, labels_of(train_aug), recipe.label_fraction, recipe.label_seed)
    return finetune(job.model, train_aug, job.test_set, job.num_classes, recipe, num_workers=args.workers,
                    precision=precision, device=device)


def _probe(job: _EvalJob, precision: str, device) -> dict:
    """knn_top1 or linear_top1 (+ the probe's record) on frozen features."""
    args = job.args
    tr_f, tr_y = extract_features(job.model, job.train_set, args.batch_size, args.workers, precision, device, True)
    te_f, te_y = extract_features(job.model, job.test_set, args.batch_size, args.workers, precision, device, True)
    if job.command == "knn":
        return {"knn_top1": round(knn_top1(tr_f.to(device), tr_y, te_f, te_y, k=args.k, t=args.t), 2),
                "protocol": knn_protocol(args.k, args.t)}
    linear, record = train_linear_probe(tr_f, tr_y, job.num_classes, max_iter=args.max_iter, seed=args.seed,
                                        device=device)
    return {"linear_top1": round(linear_top1(linear, te_f, te_y), 2), "probe": record}


def main(argv=None, prog: str = "python -m training evaluate", command: str = "knn") -> int:
    args = build_parser(prog, command).parse_args(argv)
    try:
        device = resolve_device(args.device)
        model, info = _load_source(args)
        job = _EvalJob(args, command, model, args.dataset or info.get("dataset") or "cifar10",
                       resolve_eval_data_dir(args.data_dir, info.get("data_dir")))
        _eval_sets(job)
    except (FileNotFoundError, ValueError, RuntimeError) as err:  # DataNotFoundError included
        print(f"error: {err}", file=sys.stderr)
        return 2
    precision = resolve_precision(args.precision, device)
    result = {"command": command, "source": info["source"], "arch": info.get("arch"), "dataset": job.dataset,
              "dataset_variant": dataset_variant(job.dataset, job.data_dir), "num_train": len(job.train_set),
              "num_test": len(job.test_set), "input_size": int(model.pretrained_cfg["input_size"][-1]),
              **{k: info[k] for k in ("weight_sha256", "weight_epochs") if k in info}}
    start = time.time()
    try:
        result.update((_finetune if command == "finetune" else _probe)(job, precision, device))
    except DataError as err:  # an unreadable image, met while reading the data
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    result.update(device=str(device), precision=precision,
                  hardware=hardware_string(DistInfo(device=device), precision),
                  command_line=" ".join([prog, *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
                  eval_time_s=round(time.time() - start, 1))
    key = {"knn": "knn_top1", "linear": "linear_top1", "finetune": "finetune_top1"}[command]
    print(f"{command} top-1 = {result[key]:.2f}%  ({info['source']}, {result['dataset_variant']}, "
          f"{result['num_train']} train / {result['num_test']} test images, {result['eval_time_s']} s)")
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
