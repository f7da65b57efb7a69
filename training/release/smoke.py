"""End-to-end smoke run: pretrain -> knn -> linear -> export -> load -> classify, on a few hundred images.

``python -m training smoke [--data-dir DIR] [--keep DIR]``

Everything is written into a temporary root (or ``--keep DIR``), never into the repo. The
numbers it prints come from two tiny epochs on a few hundred images: they check that the
chain works, not how good any method is.
"""
import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = REPO_ROOT / "training" / "configs" / "smoke.yaml"
EVAL_TRAIN, EVAL_TEST, SUBSET = 500, 200, 100


def run_smoke(data_dir=None, keep=None, config=SMOKE_CONFIG, n_classify: int = 8) -> dict:
    """Run the chain in a temp root (kept at ``keep`` if given); returns a summary dict.

    Raises ``training.release.guard.ReleaseRefused`` when ``keep`` is a repository or holds that release, and
    ``training.run.datasets.DataNotFoundError`` (naming ``$OTZOO_DATA``), before any work when
    the dataset is neither in ``data_dir`` / ``$OTZOO_DATA`` nor downloadable.
    """
    from training.release import export
    from training.run.datasets import build_dataset, resolve_data_dir

    import otzoo

    if keep:
        _check_keep(Path(keep), config)
    folder = resolve_data_dir(data_dir)  # checks the flag / $OTZOO_DATA
    data_arg = ["--data-dir", str(folder)] if folder else []
    build_dataset("cifar10", "train", data_dir=data_dir)  # fail fast with DataNotFoundError
    test_pil = build_dataset("cifar10", "test", data_dir=data_dir)

    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="otzoo-smoke-"))
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / "runs" / "smoke"
    times, summary = {}, {"root": str(root)}
    try:
        t = time.time()
        run_info = _pretrain(config, run_dir, data_arg)
        times["pretrain"] = time.time() - t
        for cmd in ("knn", "linear"):
            t = time.time()
            result = _evaluate(cmd, run_dir, data_arg, root)
            summary[f"{cmd}_top1"], summary["eval_precision"] = result[f"{cmd}_top1"], result["precision"]
            times[cmd] = time.time() - t

        t = time.time()
        name = export.default_name(run_info["method"], run_info["arch"], run_info["dataset"])
        previous = otzoo.get_pretrained_cfg(name) if name in otzoo.list_pretrained() else None
        cfg = export.export_run(run_dir, name, root, data_dir=str(folder) if folder else None,
                                train_subset=EVAL_TRAIN, test_subset=EVAL_TEST, subset_size=SUBSET,
                                progress=False)  # registers the smoke cfg in this process
        times["export"] = time.time() - t

        t = time.time()
        rows = _load_and_classify(name, root / "weights", test_pil, n_classify)
        times["load+classify"] = time.time() - t
        summary.update(name=name, cfg=cfg.to_dict(), classified=rows, times=times, run=run_info)
    finally:
        if "cfg" in locals():  # put the registry back as it was
            from otzoo.models import register_pretrained, unregister_pretrained
            register_pretrained(previous) if previous else unregister_pretrained(name)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return summary


def _check_keep(root: Path, config) -> None:
    """Before any work: the smoke weight (subsampled metrics) may go into ``root`` (never a repository, never
    over a release); raises ReleaseRefused."""
    import yaml

    from training.release.export import default_name
    from training.release.guard import check_release

    cfg = yaml.safe_load(Path(config).read_text())
    check_release(root, default_name(cfg["method"], cfg["arch"], cfg["dataset"]), cfg["epochs"], subsampled=True)


def _pretrain(config, run_dir: Path, data_arg: list) -> dict:
    from training.run import pretrain

    rc = pretrain.main(["--config", str(config), "--output-dir", str(run_dir), *data_arg],
                       prog="python -m training pretrain", command="pretrain")
    if rc:
        raise RuntimeError(f"pretrain exited with {rc}")
    return json.loads((run_dir / "run.json").read_text())


def _evaluate(cmd: str, run_dir: Path, data_arg: list, root: Path) -> dict:
    from training.evaluate import commands as evaluate

    out = root / f"{cmd}.json"
    sub = ["--train-subset", str(EVAL_TRAIN), "--test-subset", str(EVAL_TEST), "--precision", "auto"]
    rc = evaluate.main(["--run", str(run_dir), *data_arg, *sub, "--json-out", str(out)],
                       prog=f"python -m training {cmd}", command=cmd)
    if rc:
        raise RuntimeError(f"{cmd} exited with {rc}")
    return json.loads(out.read_text())


@contextlib.contextmanager
def _weights_dir(path: Path):
    old = os.environ.get("OTZOO_WEIGHTS_DIR")
    os.environ["OTZOO_WEIGHTS_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OTZOO_WEIGHTS_DIR", None)
        else:
            os.environ["OTZOO_WEIGHTS_DIR"] = old


def _load_and_classify(name: str, weights_dir: Path, test_pil, n: int) -> list:
    """Load the export the way a user does (by name, sha256 verified) and classify ``n`` test images."""
    import otzoo
    from training.run.datasets import evenly_spaced_subset

    with _weights_dir(weights_dir):
        model = otzoo.create_model(name, pretrained=True).eval()
    tf = otzoo.create_transform(otzoo.resolve_data_config(model))
    names = model.pretrained_cfg.get("label_names") or test_pil.classes
    rows = []
    with torch.inference_mode():
        for img, y in evenly_spaced_subset(test_pil, n):
            p = model(tf(img.convert("RGB")).unsqueeze(0)).softmax(1)[0]
            rows.append((names[y], names[int(p.argmax())], float(p.max())))
    return rows


def format_summary(s: dict) -> str:
    m, b = s["cfg"]["metrics"], s["run"]
    lines = [
        "",
        "otzoo smoke run: pretrain -> knn -> linear -> export -> load -> classify  [OK]",
        f"  pretrain : {b['method']} / {b['arch']}, {b['epochs']} epochs, {b.get('views_seen')} views, "
        f"{b.get('wall_time_s', 0):.0f} s on {b.get('hardware')}",
        f"  knn      : {s['knn_top1']:.2f}% top-1 ({EVAL_TRAIN} train / {EVAL_TEST} test images, {s['eval_precision']})",
        f"  linear   : {s['linear_top1']:.2f}% top-1 (same subsets, {s['eval_precision']})",
        f"  export   : {s['name']}  knn {m['knn_top1']:.2f}  linear {m['linear_top1']:.2f}  "
        f"first-{m['subset_size']} {m['subset_top1']:.2f}  (fp32, measured on the reloaded weight)",
        "  classify : " + ", ".join(f"{t}->{p}" for t, p, _ in s["classified"]),
        "  times    : " + ", ".join(f"{k} {v:.0f} s" for k, v in s["times"].items()),
        "  These numbers come from a tiny smoke run (2 epochs on a few hundred images): they show the",
        "  pipeline works end to end and are meaningless as accuracy.",
    ]
    if s.get("kept"):
        lines.append(f"  outputs  : {s['root']}")
    return "\n".join(lines)


def main(argv=None, prog: str = "python -m training smoke", command: str = "smoke") -> int:
    from training.release.guard import ReleaseRefused
    from training.run.datasets import DataNotFoundError

    p = argparse.ArgumentParser(prog=prog, description="Run pretrain -> knn -> linear -> export -> load on a few "
                                "hundred CIFAR-10 images in a temp dir (about a few minutes on 2 CPU cores).")
    p.add_argument("--data-dir", help="CIFAR-10 ImageFolder root with train/ and test/ (default $OTZOO_DATA, "
                   "else torchvision download)")
    p.add_argument("--keep", help="write into this directory and keep it (default: a temp dir, removed)")
    args = p.parse_args(argv)
    start = time.time()
    try:
        s = run_smoke(args.data_dir, args.keep)
    except (DataNotFoundError, ReleaseRefused) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    s["kept"] = bool(args.keep)
    print(format_summary(s))
    print(f"  total    : {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
