"""Measure a released weight again with this version's protocols; its tensors never change.

``python -m training measure NAME [NAME ...] [--data-dir DIR]``

For a weight exported before a metric existed (its pretraining run gone): loads
``weights/<NAME>/`` (sha256 checked against ``otzoo/pretrained/<NAME>.json``), extracts features
exactly as ``export`` does (fp32, the weight's transform), checks that the shipped head's
``linear_top1`` (and ``knn_top1``, when the train features are needed) reproduce within
:data:`TOLERANCE`, then adds what the cfg lacks of :data:`ADDED_LATER`: the low-label probes
(``linear_top1_1pct`` / ``_10pct``, ``metrics.low_label``; needs the train features) and the
test features' ``feature_geometry``. With ``--run DIR`` (the weight's pretraining run, still
holding ``checkpoint.pt``) it also adds ``plan_mass``, once the plan drawn again from that run is
the weight's ``plan.png`` byte for byte. It writes them to the cfg json and ``config.json``,
appends the check to ``metrics.remeasured`` and regenerates the card, results and README.
Nothing is written when a number or the figure does not reproduce, or when nothing is missing.
"""
import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import otzoo
from otzoo.models import sha256_file
from training.release import readme
from training.release.cards import remeasured_records
from training.run.data import DataError, error_line
from training.run.datasets import DataNotFoundError, build_dataset
from training.run.device import resolve_device
from training.run.distributed import DistInfo
from training.run.hardware import hardware_string
from training.release.export import LOW_LABEL_PROTOCOL, REPO_ROOT, low_label_metrics
from training.evaluate.loading import dataset_variant, resolve_eval_data_dir
from training.evaluate.plot_plan import PLAN_PROTOCOL, run_plan
from training.evaluate.features import GEOMETRY_PROTOCOL, eval_transform, extract_features, feature_geometry
from training.evaluate.knn import knn_top1
from training.evaluate.linear import linear_top1

TOLERANCE = 0.05  # percentage points: 5 of 10,000 test images (other CPU kernels, other torch)
ADDED_LATER = ("low_label", "feature_geometry")  # metrics keys, one per group added after the first export


class NotReproducedError(RuntimeError):
    pass


def _paths(root: Path, name: str) -> tuple:
    cfg_path = root / "otzoo" / "pretrained" / f"{name}.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} does not exist: `python -m training measure` takes the name of a "
                                "released weight (otzoo.list_pretrained())")
    return cfg_path, root / "weights" / name


def _features(model, dataset: str, split: str, data_dir, batch_size: int, device, progress: bool):
    dataset = build_dataset(dataset, split, data_dir=data_dir, transform=eval_transform(model, uint8=True))
    return extract_features(model, dataset, batch_size, 0, "fp32", device, progress)


def _check(name: str, again: dict, metrics: dict) -> None:
    for key, value in again.items():
        if abs(value - metrics[key]) > TOLERANCE:
            raise NotReproducedError(f"{name}: {key} measured {value:.2f}, shipped {metrics[key]:.2f} (tolerance "
                                     f"{TOLERANCE}): nothing written")


def _shipped_plan_mass(run_dir: Path, folder: Path, data_dir, device) -> dict:
    """The ``plan_mass`` of the plan drawn again from ``run_dir``, once that drawing is the
    weight's ``plan.png`` byte for byte (so it is the plan the card shows)."""
    if not (run_dir / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{run_dir} holds no checkpoint.pt: --run takes the weight's pretraining run")
    if not (folder / "plan.png").is_file():
        raise FileNotFoundError(f"{folder} ships no plan.png: there is no plan to describe")
    with tempfile.TemporaryDirectory() as tmp:
        png = run_plan(run_dir, Path(tmp) / "plan.png", data_dir, device=device)
        if png.read_bytes() != (folder / "plan.png").read_bytes():
            raise NotReproducedError(f"the plan drawn again from {run_dir} is not {folder / 'plan.png'} (another "
                                     "run, batch or seed?): nothing written")
        mass = json.loads(png.with_suffix(".json").read_text())
    return mass


def measure_weight(name: str, root=REPO_ROOT, data_dir=None, batch_size: int = 256, max_iter: int = 300,
                   device="auto", command: str = "", progress: bool = True, run_dir=None) -> tuple:
    """Re-measure ``name`` (see module doc): ``(cfg, record)``, the cfg as written and the check
    appended to ``metrics.remeasured``; ``(cfg, None)`` and nothing written when nothing is missing."""
    root, device = Path(root), resolve_device(device)
    cfg_path, folder = _paths(root, name)
    cfg = json.loads(cfg_path.read_text())
    if sha256_file(folder / cfg["filename"]) != cfg["sha256"]:
        raise NotReproducedError(f"{folder / cfg['filename']} does not match the sha256 of {cfg_path}")
    metrics = cfg["metrics"]
    missing = [key for key in ADDED_LATER if key not in metrics]
    plan = run_dir is not None and "plan_mass" not in metrics
    if not missing and not plan:
        return cfg, None
    again = {}
    if missing:
        again = _add_feature_metrics(cfg, folder, missing, data_dir, batch_size, max_iter, device, progress)
    if plan:
        metrics["plan_mass"] = _shipped_plan_mass(Path(run_dir), folder, data_dir, device)
        metrics["protocol"]["plan"] = PLAN_PROTOCOL.format(**metrics["plan_mass"])
        again["plan_png"] = "identical"
        missing.append("plan_mass")
    record = {**again, "added": missing, "otzoo_version": otzoo.__version__,
              "hardware": hardware_string(DistInfo(device=device), "fp32"),
              "command": command or f"python -m training measure {name}"}
    metrics["remeasured"] = remeasured_records(metrics) + [record]
    readme.write_cfg(root, otzoo.models.WeightCfg.from_dict(cfg))
    config_path = folder / "config.json"
    hf_config = json.loads(config_path.read_text())
    hf_config["otzoo"]["metrics"] = metrics
    config_path.write_text(json.dumps(hf_config, indent=2) + "\n")
    readme.sync_generated(root)
    return cfg, record


def _add_feature_metrics(cfg: dict, folder: Path, missing: list, data_dir, batch_size, max_iter, device,
                         progress) -> dict:
    """Add the ``missing`` feature metrics to ``cfg["metrics"]`` once the shipped linear (and kNN)
    top-1 reproduce; returns what it measured again."""
    name, metrics = cfg["name"], cfg["metrics"]
    data_dir = resolve_eval_data_dir(data_dir)
    variant = dataset_variant(cfg["dataset"], data_dir)
    if variant != metrics["dataset_variant"]:
        raise NotReproducedError(f"{name} was measured on {metrics['dataset_variant']}, the data given is {variant}: "
                                 "point --data-dir / $OTZOO_DATA at that copy")
    model = otzoo.create_model(cfg["architecture"], checkpoint_path=str(folder)).float()
    te_f, te_y = _features(model, cfg["dataset"], "test", data_dir, batch_size, device, progress)
    again = {"linear_top1": round(linear_top1(model.get_classifier().cpu(), te_f, te_y), 2)}
    if "low_label" in missing:
        tr_f, tr_y = _features(model, cfg["dataset"], "train", data_dir, batch_size, device, progress)
        again["knn_top1"] = round(knn_top1(tr_f.to(device), tr_y, te_f, te_y), 2)
    _check(name, again, metrics)
    if "low_label" in missing:
        means, runs = low_label_metrics(tr_f, tr_y, te_f, te_y, cfg["num_classes"], max_iter, device)
        metrics.update(means, low_label=runs)
        metrics["protocol"]["low_label"] = LOW_LABEL_PROTOCOL
    if "feature_geometry" in missing:
        metrics["feature_geometry"] = feature_geometry(te_f)
        metrics["protocol"]["geometry"] = GEOMETRY_PROTOCOL
    return again


def _summary(name: str, record) -> str:
    if record is None:
        return f"{name}: has every metric this version measures; nothing written"
    checked = [f"{k} {record[k]:.2f}" for k in ("linear_top1", "knn_top1") if k in record]
    checked += ["plan.png"] if "plan_png" in record else []
    return f"{name}: {' / '.join(checked)} reproduced; added {', '.join(record['added'])}"


def main(argv=None, prog: str = "python -m training measure", command: str = "measure") -> int:
    p = argparse.ArgumentParser(prog=prog, description="Measure released weights again (tensors unchanged): "
                                "check that linear (and kNN) top-1 reproduce, add the metrics a weight lacks "
                                "(low-label probes, feature geometry).")
    p.add_argument("names", nargs="+", help="released weight names, e.g. gca_uot_resnet18_cifar10")
    p.add_argument("--root", default=str(REPO_ROOT), help="repo root holding weights/ and otzoo/pretrained/")
    p.add_argument("--data-dir", help="train/ + test/ ImageFolder root of the copy the weight was measured on "
                                      "(default $OTZOO_DATA)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-iter", type=int, default=300, help="L-BFGS iterations per linear-probe fit")
    p.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")
    p.add_argument("--run", help="the weight's pretraining run (holds checkpoint.pt): adds the mass of the plan "
                                 "in plan.png, once the plan drawn again from it is that file (one NAME only)")
    args = p.parse_args(argv)
    if args.run and len(args.names) > 1:
        p.error("--run is the pretraining run of one weight: give one NAME with it")
    for name in args.names:
        run = f" --run runs/{shlex.quote(Path(args.run).name)}" if args.run else ""  # no path of this machine
        try:
            _, record = measure_weight(name, Path(args.root).resolve(), args.data_dir, args.batch_size,
                                       args.max_iter, args.device, f"{prog} {shlex.quote(name)}{run}", run_dir=args.run)
        except (FileNotFoundError, DataNotFoundError, DataError, NotReproducedError) as err:
            print(f"error: {error_line(err)}", file=sys.stderr)
            return 1 if isinstance(err, NotReproducedError) else 2
        print(_summary(name, record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
