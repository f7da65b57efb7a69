"""``python -m training monitor-reference NAME [NAME ...]``: the k-NN monitor's protocol on released weights.

A long run's monitor measures k-NN on a fixed subset (the recipe's ``engine.knn_train`` evenly spaced train
images as the memory bank, ``engine.knn_test`` test images, ``knn_k``, ``knn_t``), which reads lower than the
release protocol (every train and test image). Measured the same way on a released weight, whose full-protocol
k-NN its card states, it gives the monitor's curve reference points on one scale: each is written, with the
card's number and the command that reproduces it, to ``FOLDER/references.json`` (default ``results/campaign``),
and the campaign's page is rewritten with them.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import otzoo
from training.evaluate import commands
from training.run.config import load_config
from training.run.progress import REFERENCES, read_references, write_report

__all__ = ["measure", "main"]


def _knn_args(name: str, engine: dict) -> list:
    return ["--model", name, "--train-subset", str(engine["knn_train"]), "--test-subset", str(engine["knn_test"]),
            "--k", str(engine["knn_k"]), "--t", str(engine["knn_t"]), "--precision", "fp32"]


def measure(name: str, recipe: str, data_dir=None) -> dict:
    """The reference record of released weight ``name``: ``recipe``'s monitor protocol on it (fp32, the
    release protocol's precision) beside its card's full-protocol k-NN; no path of this machine in it."""
    cfg = otzoo.get_pretrained_cfg(name)
    engine = load_config(recipe)["engine"]
    argv = _knn_args(name, engine)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "knn.json"
        data = ["--data-dir", str(data_dir)] if data_dir else []
        if commands.main([*argv, *data, "--json-out", str(out)], prog="python -m training knn") != 0:
            raise RuntimeError(f"the k-NN pass of {name} failed (its error is above)")
        result = json.loads(out.read_text())
    budget = cfg.get("budget") or {}
    return {"name": name, "sha256": cfg["sha256"], "method": cfg.get("method"), "epochs": budget.get("epochs"),
            "schedule_epochs": (budget.get("schedule") or {}).get("epochs", budget.get("epochs")),
            "batch_size": ((cfg.get("recipe") or {}).get("config") or {}).get("batch_size"),
            "monitor_knn_top1": result["knn_top1"], "release_knn_top1": cfg["metrics"]["knn_top1"],
            "num_train": result["num_train"], "num_test": result["num_test"], "k": engine["knn_k"],
            "t": engine["knn_t"], "hardware": result["hardware"], "eval_time_s": result["eval_time_s"],
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "recipe": Path(recipe).name,
            "command": " ".join(["python -m training knn", *argv, "--data-dir DATA"])}


def _write(folder: Path, records: list) -> Path:
    path = folder / REFERENCES
    kept = {r["name"]: r for r in read_references(folder)}
    kept.update((r["name"], r) for r in records)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(kept.items())), indent=2) + "\n")
    tmp.replace(path)
    return path


def main(argv=None, prog: str = "python -m training monitor-reference", command: str = "monitor-reference") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("names", nargs="+", metavar="NAME", help="released weights, e.g. gca_uot_resnet18_cifar10")
    p.add_argument("--recipe", default="training/configs/cifar10_long.yaml", help="whose monitor settings to use")
    p.add_argument("--data-dir", help="the dataset's ImageFolder root (default $OTZOO_DATA)")
    p.add_argument("--folder", default="results/campaign", help="where references.json and the page are")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in otzoo.list_pretrained()]
    if unknown:
        p.error(f"not released here: {', '.join(unknown)}; released: {', '.join(otzoo.list_pretrained())}")
    try:
        records = [measure(name, args.recipe, args.data_dir) for name in args.names]
    except RuntimeError as err:
        print(f"{prog}: error: {err}; nothing written", file=sys.stderr)
        return 2
    folder = Path(args.folder)
    print(f"{_write(folder, records)}: " + "; ".join(
        f"{r['name']} monitor {r['monitor_knn_top1']:.2f}% (card {r['release_knn_top1']:.2f}%)" for r in records))
    try:
        print(f"{write_report(folder)}: the campaign's page, with the references")
    except FileNotFoundError:  # no progress line yet: the page comes with the first
        pass
    return 0
