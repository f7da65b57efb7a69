"""A run's ``metrics.jsonl``: read back in order, and drawn as ``curves.png``."""
import json
import os
from pathlib import Path
from typing import Optional

__all__ = ["read_records", "plot_curves"]


def read_records(run_dir) -> list:
    """The records of ``<run_dir>/metrics.jsonl``, in order."""
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]


def plot_curves(records, path: Path, title: Optional[str] = None) -> None:
    """Loss, learning rate and kNN monitor (with the feature rank, right axis) of ``records``
    (metrics.jsonl) as a PNG titled ``title``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in records if r.get("event") == "step"]
    knn = [r for r in records if r.get("event") == "epoch" and r.get("knn_top1") is not None]
    fig, axes = plt.subplots(1, 3 if knn else 2, figsize=(13 if knn else 9, 3.2))
    axes[0].plot([r["step"] for r in steps], [r["loss"] for r in steps])
    axes[0].set(xlabel="step", ylabel="loss", title="training loss")
    axes[1].plot([r["step"] for r in steps], [r["lr"] for r in steps])
    axes[1].set(xlabel="step", ylabel="lr", title="learning rate")
    if knn:
        axes[2].plot([r["epoch"] for r in knn], [r["knn_top1"] for r in knn], marker="o")
        axes[2].set(xlabel="epoch", ylabel="top-1 (%)", title="kNN monitor (subset)")
        ranked = [r for r in knn if "feature_rank" in r]  # runs before feature_rank have none
        if ranked:
            rank_axis = axes[2].twinx()
            rank_axis.plot([r["epoch"] for r in ranked], [r["feature_rank"] for r in ranked], "s--", color="tab:red")
            rank_axis.set_ylabel("feature rank (RankMe)", color="tab:red")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)
