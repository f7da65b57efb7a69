"""``python -m training curve``: time to accuracy of a run: its kNN monitor against wall-clock minutes.

Reads ``<run>/metrics.jsonl`` (the epoch records that carry ``knn_top1``; a run watched with
``engine.knn_every=N engine.knn_train=50000 engine.knn_test=10000`` measures the full CIFAR-10
test set) and ``<run>/config.yaml``, and writes ``<run>/knn_vs_time.png`` (or ``--out``); ``export``
draws it beside the weight of every run with monitor points, and the card shows it. Works on an
unfinished run too. Where :data:`training.release.references.LIGHTLY_KNN_POINT` has the dataset,
lightly's published point is drawn for reference (other hardware, other recipe).
"""
import argparse
import sys
from pathlib import Path
from typing import Optional

import yaml

from training.release.references import LIGHTLY_KNN_POINT
from training.run.metrics import read_records

__all__ = ["knn_points", "plot_time_to_accuracy", "plot_milestones", "run_curve", "main"]
FILENAME = "knn_vs_time.png"
MILESTONES = "milestones.png"


def knn_points(records) -> list:
    """``[(minutes, epoch, knn_top1)]`` of the epoch records of ``metrics.jsonl`` that carry a kNN value."""
    return [(r["elapsed_s"] / 60, r["epoch"], r["knn_top1"]) for r in records
            if r.get("event") == "epoch" and r.get("knn_top1") is not None]


def plot_time_to_accuracy(records, path, title: str, monitor: str, reference: Optional[tuple] = None) -> Path:
    """Write the curve of ``records`` to ``path``: kNN top-1 (``monitor`` names its sizes) against minutes,
    each point labelled with its epoch; ``reference`` = ``(minutes, top1, label)`` is drawn as one marker."""
    points = knn_points(records)
    if not points:
        raise ValueError("the run has no kNN monitor points yet: train with engine.knn_every=N (N epochs between "
                         "points) and let it reach an epoch that is a multiple of N")
    fig, ax = _axes()
    minutes, _, top1 = zip(*points)
    ax.plot(minutes, top1, marker="o", label=f"this run ({monitor})")
    for x, e, y in points:
        ax.annotate(f"ep {e}", (x, y), textcoords="offset points", xytext=(3, -10), fontsize=7)
    return _finish(fig, ax, path, "wall-clock minutes of the run", "k-NN top-1 (%)", title, reference)


def plot_milestones(cfgs, path, title: str, reference: Optional[tuple] = None) -> Path:
    """Write the milestones plot of one run's released weights ``cfgs`` (records) to ``path``: linear and k-NN
    top-1 (the release protocol) against epochs; ``reference`` = ``(epochs, top1, label)`` is drawn as one marker."""
    epochs, linear, knn = zip(*sorted((c.budget["epochs"], c.metrics["linear_top1"], c.metrics["knn_top1"])
                                      for c in cfgs))
    fig, ax = _axes()
    ax.plot(epochs, linear, marker="o", label="linear probe top-1")
    ax.plot(epochs, knn, marker="s", label="k-NN top-1 (k=200)")
    return _finish(fig, ax, path, "epochs", "top-1 (%)", title, reference)


def _axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4))


def _finish(fig, ax, path, xlabel: str, ylabel: str, title: str, reference: Optional[tuple]) -> Path:
    """Reference marker, labels, grid and legend; saved to ``path`` and closed."""
    import matplotlib.pyplot as plt

    if reference:
        ax.plot([reference[0]], [reference[1]], marker="*", markersize=12, linestyle="none", label=reference[2])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(0, 100))
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_curve(run_dir, out=None) -> Path:
    """Write the curve of ``run_dir`` to ``out`` (default ``<run_dir>/knn_vs_time.png``); returns its path."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.jsonl").is_file() or not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a pretraining run: it needs metrics.jsonl and config.yaml")
    records = read_records(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    e = cfg["engine"]
    monitor = f"k={e['knn_k']}, {e['knn_train']:,} train / {e['knn_test']:,} test images"
    title = f"{run_dir.name}: {cfg['method']}, {cfg['arch']}, batch {cfg['batch_size']}"
    out = Path(out) if out else run_dir / FILENAME
    out.parent.mkdir(parents=True, exist_ok=True)
    return plot_time_to_accuracy(records, out, title, monitor, LIGHTLY_KNN_POINT.get(cfg["dataset"]))


def main(argv=None, prog: str = "python -m training curve", command: str = "curve") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="pretraining run directory (metrics.jsonl + config.yaml)")
    p.add_argument("--out", help=f"PNG path (default <run>/{FILENAME}; e.g. results/knn_vs_time-<weight>.png)")
    args = p.parse_args(argv)
    try:
        png = run_curve(args.run, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {png}")
    return 0
