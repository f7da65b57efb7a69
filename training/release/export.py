"""Export a finished pretraining run as an otzoo weight, measuring every number it ships.

``python -m training export --run runs/<x> [--name <method>_<arch>_<dataset>] [--root DIR]``

1. the run's backbone + a K-way head, rounded in memory to what the release file holds
   (float16, :data:`RELEASE_DTYPE`, asked for explicitly);
2. features through the weight's own eval transform, ``knn_top1``, and the linear probe;
3. ``linear_top1`` and ``subset_top1`` (first 500 test images, sorted file order, full
   forward) measured in fp32 on that model; then ``weights/<name>/`` is written once through
   ``otzoo.save_pretrained`` and loaded back with ``otzoo.create_model(arch, checkpoint_path=...)``,
   which must give exactly the measured tensors;
4. writes ``otzoo/pretrained/<name>.json``, ``config.json`` (with the metrics), the run's figures
   (``curves.png``, ``plan.png`` drawn first from the run's checkpoint when missing, ``knn_vs_time.png``),
   ``model_cards/<name>.md``, ``results/results-<dataset>.csv`` and the README table, and
   registers the cfg with ``otzoo.models.register_pretrained``. A weight of this name is replaced only
   with ``--supersede`` (:mod:`training.release.guard` decides before any work); one from another
   recipe then moves to ``results/superseded/`` (its numbers stay in the CSV and the card).
"""
import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import torch

import otzoo
from otzoo.models import sha256_file
from training.release import accuracy_curve, readme, references
from training.release.guard import SUPERSEDE_CHOICES, check_release
from training.run.data import error_line
from training.run.datasets import DataNotFoundError, build_dataset, check_same_classes, evenly_spaced_subset
from training.run.device import resolve_device
from training.evaluate.loading import dataset_variant, first_n, load_run_model, read_run, resolve_eval_data_dir
from training.evaluate.features import GEOMETRY_PROTOCOL, eval_transform, extract_features, feature_geometry
from training.evaluate.knn import knn_protocol, knn_top1
from training.evaluate.plot_plan import PLAN_PROTOCOL, run_plan
from training.evaluate.linear import (LOW_LABEL_FRACTIONS, linear_protocol, linear_top1, low_label_probe,
                                      train_linear_probe)

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBSET_SIZE = 500
RELEASE_DTYPE = torch.float16  # released files: half the download; the metrics are measured on them
HEADS_FILENAME = "heads.safetensors"


def default_name(method: str, arch: str, dataset: str) -> str:
    """``<method>_<arch>_<dataset>``; the ``_cifar`` stem suffix is implied by the dataset."""
    return f"{method}_{arch.removesuffix('_cifar')}_{dataset}"


DATA_PLACEHOLDER = "DATA"


def portable(obj, run_dir, info: dict, eval_data_dir=None):
    """``obj`` (str / dict / list) with this machine's paths replaced by placeholders.

    The run directory and the recorded ``output_dir`` become ``runs/<run name>``, the data
    folders (the run's and ``eval_data_dir``, export's own, which differs from the run's when a GPU
    window trained on a smaller copy) become ``DATA`` and the decode cache ``runs/.cache``, so nothing
    shipped names a path of the machine that trained or exported the weight."""
    config = info.get("config") or {}
    data = config.get("data") or {}
    run_name = Path(str(config.get("output_dir") or run_dir)).name
    mapping = {}
    for path in (run_dir, Path(run_dir).resolve(), config.get("output_dir")):
        if path:
            mapping[str(path)] = f"runs/{run_name}"
    for path in (info.get("data_dir"), data.get("dir"), eval_data_dir):
        if path:
            mapping[str(path)] = DATA_PLACEHOLDER
            mapping[str(Path(path).resolve())] = DATA_PLACEHOLDER
    if data.get("cache_dir"):
        mapping[str(data["cache_dir"])] = "runs/.cache"
    ordered = sorted(mapping.items(), key=lambda kv: -len(kv[0]))

    def fix(value):
        if isinstance(value, str):
            for old, new in ordered:
                value = value.replace(old, new)
            return value
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(fix(v) for v in value)
        return value

    return fix(obj)


LOW_LABEL_PROTOCOL = ("the linear probe protocol on class-balanced subsets of the train labels (1% and 10%, "
                      "seeds 0, 1, 2; weight decay chosen on held-out images of each subset), all of test; "
                      "mean over the seeds (spread and each run in low_label)")


def export_command(argv: list) -> str:
    """The export command line to record, without ``--root`` (where the files went, a path of this machine)."""
    kept, skip = [], False
    for a in argv:
        if skip or a.startswith("--root="):
            skip = False
            continue
        skip = a == "--root"
        if not skip:
            kept.append(a)
    return " ".join(["python -m training export", *map(shlex.quote, kept)])


def low_label_metrics(tr_f, tr_y, te_f, te_y, num_classes: int, max_iter: int = 300, device=None) -> tuple:
    """``({"linear_top1_1pct": mean, "linear_top1_10pct": mean}, {"1%": runs, "10%": runs})`` from
    :func:`~training.evaluate.linear.low_label_probe` at every :data:`LOW_LABEL_FRACTIONS`."""
    runs = {f"{fraction:.0%}": low_label_probe(tr_f, tr_y, te_f, te_y, fraction, num_classes=num_classes,
                                               max_iter=max_iter, device=device)
            for fraction in LOW_LABEL_FRACTIONS}
    return {f"linear_top1_{k.rstrip('%')}pct": v["mean"] for k, v in runs.items()}, runs


def _as_stored(model):
    """``model`` with its floating-point tensors rounded to :data:`RELEASE_DTYPE` and back: the
    values a user gets from the released file."""
    return model.to(RELEASE_DTYPE).float()


def _with_transform(dataset, transform):
    base = dataset.dataset if isinstance(dataset, torch.utils.data.Subset) else dataset
    base.transform = transform
    return dataset


@torch.inference_mode()
def forward_top1(model, dataset, batch_size: int = 250, device=None) -> tuple:
    """Top-1 (percent) of ``model(x)`` over ``dataset`` and the predictions, model in eval mode."""
    device = device or next(model.parameters()).device
    model.eval().to(device)
    preds, labels = [], []
    for x, y in torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False):
        preds.append(model(x.to(device)).argmax(1).cpu())
        labels.append(torch.as_tensor(y))
    preds, labels = torch.cat(preds), torch.cat(labels)
    return 100.0 * (preds == labels).float().mean().item(), preds


def eval_sets(dataset: str, data_dir, train_subset, test_subset, subset_size: int) -> tuple:
    """(train, test, first ``subset_size`` test images, label names, full split sizes)."""
    train_set = build_dataset(dataset, "train", data_dir=data_dir)
    test_set = build_dataset(dataset, "test", data_dir=data_dir)
    check_same_classes(train_set, test_set)
    full = (len(train_set), len(test_set))
    subset_set = first_n(build_dataset(dataset, "test", data_dir=data_dir), subset_size)
    return (evenly_spaced_subset(train_set, train_subset), evenly_spaced_subset(test_set, test_subset), subset_set,
            list(train_set.classes), full)


def measure_release(model, train_set, test_set, subset_set, batch_size: int = 256, num_workers: int = 0,
                    max_iter: int = 300, device="cpu", progress: bool = True, stored: bool = True) -> tuple:
    """Fit the linear-probe head of ``model`` (already as stored) and measure it: ``(model, metrics)``.

    Features through the weight's own transform (fp32); kNN (k=200 and k=20); the probe and the
    low-label probes; ``linear_top1`` and ``subset_top1`` of the model with its head, as stored
    (``stored=False``: the head stays fp32, for a model that is never written as a file);
    the test features' geometry (:func:`~training.evaluate.features.feature_geometry`)."""
    say = print if progress else (lambda *a, **k: None)
    tf = eval_transform(model, uint8=True)
    say(f"[export] features of {len(train_set)} train + {len(test_set)} test images (fp32, {device})")
    tr_f, tr_y = extract_features(model, _with_transform(train_set, tf), batch_size, num_workers, "fp32", device,
                                  progress)
    te_f, te_y = extract_features(model, _with_transform(test_set, tf), batch_size, num_workers, "fp32", device,
                                  progress)
    model.cpu()
    knn = knn_top1(tr_f.to(device), tr_y, te_f, te_y)
    knn20 = knn_top1(tr_f.to(device), tr_y, te_f, te_y, k=20)  # lightly's Imagenette benchmark setting
    say(f"[export] knn_top1 = {knn:.2f}; training the linear probe")
    num_classes = model.num_classes
    head, probe = train_linear_probe(tr_f, tr_y, num_classes, max_iter=max_iter, device=device)
    with torch.no_grad():
        model.get_classifier().weight.copy_(head.weight)
        model.get_classifier().bias.copy_(head.bias)
    model = _as_stored(model) if stored else model
    if not torch.isfinite(model.get_classifier().weight).all():
        raise ValueError(f"the linear-probe head with the standardisation folded in does not fit in {RELEASE_DTYPE} "
                         "(a feature's spread is too small): nothing was written; such a backbone cannot ship a head")
    low_means, low_label = low_label_metrics(tr_f, tr_y, te_f, te_y, num_classes, max_iter, device)
    say("[export] low-label probes: " + ", ".join(f"{k} {v['mean']:.2f} +- {v['std']:.2f}" for k, v in low_label.items()))
    with torch.inference_mode():
        lin = linear_top1(model.get_classifier(), te_f, te_y)
    sub, _ = forward_top1(model, _with_transform(subset_set, eval_transform(model)), device=device)
    model.cpu()
    say(f"[export] linear_top1 = {lin:.2f}, subset_top1 = {sub:.2f} (first {len(subset_set)} test images)")
    metrics = {
        "knn_top1": round(knn, 2), "knn_top1_k20": round(knn20, 2), "linear_top1": round(lin, 2), **low_means,
        "subset_top1": round(sub, 2), "subset_size": len(subset_set), "split": "test",
        "feature_geometry": feature_geometry(te_f),
        "num_train": len(train_set), "num_test": len(test_set),
        "protocol": {
            "knn": f"{knn_protocol()}, train split ({len(train_set)} images) as memory bank, no augmentation",
            "knn_k20": f"{knn_protocol(k=20)}, the same memory bank",
            "linear": linear_protocol(),
            "low_label": LOW_LABEL_PROTOCOL,
            "subset": f"full forward of the loaded weight on the first {len(subset_set)} test images in sorted "
                      "file order (ImageFolder order), fp32",
            "precision": "fp32, model.eval() (BatchNorm running statistics)",
            "geometry": GEOMETRY_PROTOCOL,
        },
        "linear_probe": probe,
        "low_label": low_label,
    }
    return model, metrics


def _provenance(run_dir: Path, info: dict, name: str, command: Optional[str], data_dir=None) -> dict:
    """recipe, budget and the commands of the run, with machine paths replaced (:func:`portable`)."""
    method = info["method"]
    budget = {k: info.get(k) for k in ("epochs", "steps", "views_seen", "batch_size", "world_size", "hardware",
                                       "wall_time_s", "final_loss", "data_variant")}
    for key in ("hardware_spans", "schedule", "restarts", "init"):  # across machines; a milestone; from releases
        if info.get(key):
            budget[key] = info[key]
    epochs = (info.get("schedule") or {}).get("epochs", info.get("epochs"))  # the recipe's, not the milestone's
    recipe = {"method": method, "arch": info["arch"], "seed": info.get("seed"), "epochs": epochs,
              "batch_size": info.get("batch_size"), "config": info.get("config") or {}}
    export_cmd = command or f"python -m training export --run {shlex.quote(str(run_dir))} --name {name}"
    recipe, budget, export_cmd, pretrain_cmd = portable((recipe, budget, export_cmd, info.get("command")), run_dir,
                                                        info, data_dir)
    paper = references.PAPERS.get(method, {})
    return {"recipe": recipe, "budget": budget,
            "paper": {k: paper[k] for k in ("title", "authors", "venue", "url") if k in paper},
            "otzoo_version": otzoo.__version__, "torch_version": torch.__version__,
            "pretrain_otzoo_version": info.get("otzoo_version"),
            "reproduce": {"pretrain": pretrain_cmd, "export": export_cmd}}


def write_release(model, folder: Path, meta: dict) -> dict:
    """Write the weight once, load it as a user does, and check it is the measured model; its cfg."""
    cfg = otzoo.save_pretrained(model, folder, dtype=RELEASE_DTYPE, **meta)
    final = otzoo.create_model(cfg["architecture"], checkpoint_path=str(folder))
    measured, loaded = model.state_dict(), final.state_dict()
    if measured.keys() != loaded.keys() or any(not torch.equal(measured[k], loaded[k]) for k in measured):
        raise RuntimeError("the written weight differs from the model whose metrics were measured")
    if cfg["sha256"] != sha256_file(folder / cfg["filename"]):
        raise RuntimeError("save_pretrained returned a sha256 that does not match the file it wrote")
    cfg.setdefault("num_features", final.num_features)
    return cfg


def write_heads(source: Path, target: Path) -> dict:
    """The run's pretraining heads (projector; BYOL's predictor and target) beside the weight, in the release
    dtype, with their sha256: what continuing the pretraining needs besides the backbone."""
    from safetensors.torch import load_file, save_file

    tensors = {k: v.to(RELEASE_DTYPE) if v.is_floating_point() else v for k, v in load_file(str(source)).items()}
    save_file(tensors, str(target), metadata={"format": "pt"})
    return {"filename": target.name, "sha256": sha256_file(target)}


def _plan_figure(run_dir: Path, data_dir, device) -> Optional[dict]:
    """``<run>/plan.png`` (``python -m training plan``) when the run has none and still has its
    checkpoint; the ``plan_mass`` that the plan command wrote beside the PNG, or None (none there)."""
    if not (run_dir / "plan.png").is_file() and (run_dir / "checkpoint.pt").is_file():
        run_plan(run_dir, data_dir=data_dir, device=device)
    mass = run_dir / "plan.json"
    return json.loads(mass.read_text()) if mass.is_file() and (run_dir / "plan.png").is_file() else None


def _copy_figures(run_dir: Path, folder: Path, figures, title: str) -> list:
    """The run's PNGs (and ``figures``) beside the weight; curves.png redrawn with ``title``, and
    knn_vs_time.png drawn when the run has kNN monitor points."""
    for png in sorted(run_dir.glob("*.png")) + [Path(f) for f in figures]:
        shutil.copy2(png, folder / png.name)
    metrics_log = run_dir / "metrics.jsonl"
    if metrics_log.is_file():
        from training.run.metrics import plot_curves

        records = [json.loads(line) for line in metrics_log.read_text().splitlines() if line.strip()]
        plot_curves(records, folder / "curves.png", title)
        if accuracy_curve.knn_points(records):
            accuracy_curve.run_curve(run_dir, folder / accuracy_curve.FILENAME)
    return sorted(p.name for p in folder.glob("*.png"))


def export_run(run_dir, name: Optional[str] = None, root=REPO_ROOT, data_dir=None, batch_size: int = 256,
               num_workers: int = 0, train_subset: Optional[int] = None, test_subset: Optional[int] = None,
               subset_size: int = SUBSET_SIZE, max_iter: int = 300, figures=(), command: Optional[str] = None,
               progress: bool = True, device="auto", supersede: Optional[str] = None) -> "otzoo.models.WeightCfg":
    """Export ``run_dir`` into ``root`` and return the written weight's record (see module doc).

    The feature passes, the kNN and the probe run on ``device`` (default: the GPU when there
    is one), in fp32; the weight files are written from the CPU. Refused before any work
    (:class:`~training.release.guard.ReleaseRefused`) where :func:`~training.release.guard.check_release`
    says so: an existing release is replaced only with ``supersede``."""
    run_dir, root, device, t0 = Path(run_dir), Path(root), resolve_device(device), time.time()
    info = read_run(run_dir)
    method, arch, dataset = info["method"], info["arch"], info["dataset"]
    name = name or default_name(method, arch, dataset)
    check_release(root, name, info["epochs"], bool(train_subset or test_subset or subset_size != SUBSET_SIZE),
                  supersede)
    data_dir = resolve_eval_data_dir(data_dir, info.get("data_dir"))
    train_set, test_set, subset_set, label_names, full = eval_sets(dataset, data_dir, train_subset, test_subset,
                                                                   subset_size)
    # the model exactly as the release file will hold it (float16-rounded in memory)
    model = _as_stored(load_run_model(run_dir, num_classes=len(label_names)))
    model, metrics = measure_release(model, train_set, test_set, subset_set, batch_size, num_workers, max_iter,
                                     device, progress)
    variant = dataset_variant(dataset, data_dir)
    metrics.update(dataset_variant=variant, subsampled=bool(train_subset or test_subset))
    mass = _plan_figure(run_dir, data_dir, device)
    if mass:
        metrics.update(plan_mass=mass)
        metrics["protocol"]["plan"] = PLAN_PROTOCOL.format(**mass)
    if metrics["subsampled"]:
        metrics["num_train_full"], metrics["num_test_full"] = full
    meta = {"name": name, "label_names": label_names, "method": method, "dataset": dataset,
            "dataset_variant": variant, "metrics": metrics, **_provenance(run_dir, info, name, command, data_dir)}
    folder = root / "weights" / name
    cfg = write_release(model, folder, meta)
    for stale in [*folder.glob("*.png"), folder / HEADS_FILENAME]:  # a replaced release's: this run writes its own
        stale.unlink(missing_ok=True)
    cfg["figures"] = _copy_figures(run_dir, folder, figures, f"{name}: {method}, {arch}, {dataset}")
    if (run_dir / HEADS_FILENAME).is_file():
        cfg["heads"] = write_heads(run_dir / HEADS_FILENAME, folder / HEADS_FILENAME)
    cfg = otzoo.models.WeightCfg.from_dict(json.loads(json.dumps(cfg)))  # validated, typed, frozen
    earlier = readme.milestones_before(root, cfg)
    if earlier:  # time to accuracy across the run's milestones, beside its table in the card
        accuracy_curve.plot_milestones([cfg, *earlier], folder / accuracy_curve.MILESTONES,
                                       f"{name}: milestones", references.LIGHTLY_KNN_EPOCHS.get(dataset))
        cfg = cfg.replace(figures=sorted({*cfg.figures, accuracy_curve.MILESTONES}))
    cfg_path = readme.write_cfg(root, cfg)  # a replaced release of another recipe moves to results/superseded/
    readme.sync_generated(root)  # card, results CSV and README table, from the cfg json files
    if not readme.has_markers(root / "README.md") and progress:
        print(f"[export] {root / 'README.md'} has no weights-table markers; table not updated")
    otzoo.models.register_pretrained(cfg)
    if progress:
        print(f"[export] wrote {folder}, {cfg_path}, {root / 'model_cards' / f'{name}.md'} in {time.time() - t0:.0f} s")
    return cfg


def main(argv=None, prog: str = "python -m training export", command: str = "export") -> int:
    p = argparse.ArgumentParser(prog=prog, description="Export a pretraining run as an otzoo weight: linear "
                                "head, weights/<name>/, measured metrics, cfg json, model card, results CSV.")
    p.add_argument("--run", required=True, help="finished pretraining run dir (backbone.safetensors + run.json)")
    p.add_argument("--name", help="weight name (default <method>_<arch>_<dataset>)")
    p.add_argument("--root", default=str(REPO_ROOT), help="repo root to write into (default: this checkout)")
    p.add_argument("--data-dir", help="train/ + test/ ImageFolder root (default $OTZOO_DATA, then the run's)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="auto", help="where the feature passes and the probe run: auto (the GPU "
                                                    "when there is one), cpu, cuda or cuda:N")
    p.add_argument("--max-iter", type=int, default=300, help="L-BFGS iterations per linear-probe fit")
    p.add_argument("--figure", action="append", default=[], help="extra PNG to ship and link (repeatable)")
    p.add_argument("--train-subset", type=int, help="quick checks only: N evenly spaced train images")
    p.add_argument("--test-subset", type=int, help="quick checks only: N evenly spaced test images")
    p.add_argument("--subset-size", type=int, default=SUBSET_SIZE, help="images behind subset_top1")
    p.add_argument("--supersede", nargs="?", const="yes", choices=SUPERSEDE_CHOICES,
                   help="replace the release of that name on purpose (a campaign milestone): refused for a run of "
                        "fewer epochs than the release it replaces unless --supersede=force")
    args = p.parse_args(argv)
    root = Path(args.root).resolve()
    cmd = export_command(argv if argv is not None else sys.argv[1:])
    try:
        export_run(args.run, args.name, root, args.data_dir, args.batch_size, args.workers, args.train_subset,
                   args.test_subset, args.subset_size, args.max_iter, args.figure, command=cmd, device=args.device,
                   supersede=args.supersede)
    except (DataNotFoundError, FileNotFoundError, ValueError) as err:  # DataError (an unreadable image) included
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
