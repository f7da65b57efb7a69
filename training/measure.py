"""Measure a released weight again with this version's protocols; its tensors never change.

``python -m training measure NAME [NAME ...] [--data-dir DIR]``

For a weight exported before a metric existed (its pretraining run gone): loads
``weights/<NAME>/`` (sha256 checked against ``otzoo/pretrained/<NAME>.json``), extracts features
exactly as ``export`` does (fp32, the weight's transform), checks that ``knn_top1`` and the
shipped head's ``linear_top1`` reproduce within :data:`TOLERANCE`, then adds the low-label
probes (``linear_top1_1pct`` / ``_10pct``, ``metrics.low_label``) to the cfg json and to
``config.json``, records the check under ``metrics.remeasured`` and regenerates the card,
results and README. Nothing is written when a number does not reproduce.
"""
import argparse
import json
import shlex
import sys
from pathlib import Path

import otzoo
from otzoo.models import sha256_file
from training import readme
from training.datasets import DataNotFoundError, build_dataset
from training.device import resolve_device
from training.engine import DistInfo, hardware_string
from training.export import LOW_LABEL_PROTOCOL, REPO_ROOT, low_label_metrics
from training.loading import dataset_variant, resolve_eval_data_dir
from training.protocols.features import eval_transform, extract_features
from training.protocols.knn import knn_top1
from training.protocols.linear import linear_top1

TOLERANCE = 0.05  # percentage points: 5 of 10,000 test images (other CPU kernels, other torch)


class NotReproducedError(RuntimeError):
    pass


def _paths(root: Path, name: str) -> tuple:
    cfg_path = root / "otzoo" / "pretrained" / f"{name}.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} does not exist: `python -m training measure` takes the name of a "
                                "released weight (otzoo.list_pretrained())")
    return cfg_path, root / "weights" / name


def measure_weight(name: str, root=REPO_ROOT, data_dir=None, batch_size: int = 256, max_iter: int = 300,
                   device="auto", command: str = "", progress: bool = True) -> dict:
    """Re-measure ``name`` (see module doc); returns its updated cfg."""
    root, device = Path(root), resolve_device(device)
    cfg_path, folder = _paths(root, name)
    cfg = json.loads(cfg_path.read_text())
    if sha256_file(folder / cfg["filename"]) != cfg["sha256"]:
        raise NotReproducedError(f"{folder / cfg['filename']} does not match the sha256 of {cfg_path}")
    metrics = cfg["metrics"]
    data_dir = resolve_eval_data_dir(data_dir)
    variant = dataset_variant(cfg["dataset"], data_dir)
    if variant != metrics["dataset_variant"]:
        raise NotReproducedError(f"{name} was measured on {metrics['dataset_variant']}, the data given is {variant}: "
                                 "point --data-dir / $OTZOO_DATA at that copy")
    model = otzoo.create_model(cfg["architecture"], checkpoint_path=str(folder)).float()
    tf = eval_transform(model, uint8=True)
    feats = [extract_features(model, build_dataset(cfg["dataset"], split, data_dir=data_dir, transform=tf),
                              batch_size, 0, "fp32", device, progress) for split in ("train", "test")]
    (tr_f, tr_y), (te_f, te_y) = feats
    again = {"knn_top1": round(knn_top1(tr_f.to(device), tr_y, te_f, te_y), 2),
             "linear_top1": round(linear_top1(model.get_classifier().cpu(), te_f, te_y), 2)}
    for key, value in again.items():
        if abs(value - metrics[key]) > TOLERANCE:
            raise NotReproducedError(f"{name}: {key} measured {value:.2f}, shipped {metrics[key]:.2f} (tolerance "
                                     f"{TOLERANCE}): nothing written")
    means, runs = low_label_metrics(tr_f, tr_y, te_f, te_y, cfg["num_classes"], max_iter, device)
    metrics.update(means)
    metrics["protocol"]["low_label"] = LOW_LABEL_PROTOCOL
    metrics["low_label"] = runs
    metrics["remeasured"] = {**again, "otzoo_version": otzoo.__version__, "hardware": hardware_string(
        DistInfo(device=device), "fp32"), "command": command or f"python -m training measure {name}"}
    readme.write_cfg(root, cfg)
    config_path = folder / "config.json"
    hf_config = json.loads(config_path.read_text())
    hf_config["otzoo"]["metrics"] = metrics
    config_path.write_text(json.dumps(hf_config, indent=2) + "\n")
    readme.sync_generated(root)
    return cfg


def main(argv=None, prog: str = "python -m training measure", command: str = "measure") -> int:
    p = argparse.ArgumentParser(prog=prog, description="Measure released weights again (tensors unchanged): "
                                "check that kNN and linear top-1 reproduce, add the low-label probes.")
    p.add_argument("names", nargs="+", help="released weight names, e.g. gca_uot_resnet18_cifar10")
    p.add_argument("--root", default=str(REPO_ROOT), help="repo root holding weights/ and otzoo/pretrained/")
    p.add_argument("--data-dir", help="train/ + test/ ImageFolder root of the copy the weight was measured on "
                                      "(default $OTZOO_DATA)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-iter", type=int, default=300, help="L-BFGS iterations per linear-probe fit")
    p.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")
    args = p.parse_args(argv)
    for name in args.names:
        try:
            cfg = measure_weight(name, Path(args.root).resolve(), args.data_dir, args.batch_size, args.max_iter,
                                 args.device, f"{prog} {shlex.quote(name)}")
        except (FileNotFoundError, DataNotFoundError, NotReproducedError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1 if isinstance(err, NotReproducedError) else 2
        m = cfg["metrics"]
        print(f"{name}: kNN {m['remeasured']['knn_top1']:.2f} / linear {m['remeasured']['linear_top1']:.2f} "
              f"reproduced; linear 1% {m['linear_top1_1pct']:.2f}, 10% {m['linear_top1_10pct']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
