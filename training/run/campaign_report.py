"""The campaign's progress on one page (``python -m training progress --report`` writes it to
``results/campaign/README.md``).

Written from the ``<method>.jsonl`` lines alone (the run folders may be gone with their machines): per method
where the run stands, the compute its stretches took, the steps lost to machine changes, every stretch
(hardware, views/s) and the k-NN monitor's points. ``campaign.sh`` rewrites it after each stretch; commit it
with the lines.
"""
import math

__all__ = ["method_report", "page"]

HEADER = ("| recorded (UTC) | steps | epoch | wall | views/s median / mean | hardware | lost steps | k-NN monitor |\n"
          "|---|---:|---:|---:|---:|---|---:|---|")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _knn(points: list) -> str:
    return ", ".join(f"epoch {p['epoch']}: {p['knn_top1']:.1f}%" for p in points) or "-"


def _row(line: dict) -> str:
    s = line["stretch"]
    rate = f"{s.get('views_per_s') or '-'} / {s.get('mean_views_per_s') or '-'}"  # older lines lack the mean
    return (f"| {line['recorded_at'].replace('T', ' ')[:16]} | {s['steps'][0]:,}-{s['steps'][1]:,} | "
            f"{line['epoch']} | {_hours(s['wall_time_s'])} | {rate} | {s.get('hardware') or 'unrecorded'} | "
            f"{line['lost_steps']:,} | {_knn(line['knn'])} |")


def method_report(method: str, lines: list, milestone: int = 50) -> str:
    """The markdown section of one method's progress lines (oldest first)."""
    last = lines[-1]
    lost = sum(line["lost_steps"] for line in lines)
    # a line's step is past its epochs' steps (a stretch stops mid-epoch): the lowest ratio is the closest
    per_epoch = min((line["step"] / line["epoch"] for line in lines if line["epoch"]), default=math.inf)
    furthest = max(lines, key=lambda line: line["step"])
    next_stop = min(last["epochs"], (last["epoch"] // milestone + 1) * milestone)
    return "\n".join([
        f"## {method}: epoch {last['epoch']} of {last['epochs']} (step {last['step']:,})",
        "",
        f"Run `{last['run']}`: {last['arch']} on {last['dataset']}, batch {last['batch_size']}. Next milestone: "
        f"epoch {next_stop}. Stretches: {len(lines)}, {_hours(sum(x['stretch']['wall_time_s'] for x in lines))} "
        f"of training in all. Lost to machine changes: {lost:,} steps (~{math.floor(lost / per_epoch)} epochs); "
        f"furthest reached: epoch {furthest['epoch']} (step {furthest['step']:,}).",
        "",
        HEADER,
        *(_row(line) for line in lines),
        "",
    ])


def page(lines_by_method: dict, milestone: int = 50) -> str:
    """The page of ``{method: its progress lines}``, a section per method in the dict's order (none empty)."""
    return "\n".join([
        "# The campaign's progress",
        "",
        "Written by `python -m training progress --report` from the progress lines in this folder (one per "
        "stretch of training; `steps` are the stretch's, `epoch` where the run stood after it). Views/s: the "
        "median of the stretch's logged intervals / the mean over its whole wall time (start-up and anything "
        "sharing the CPU included). k-NN monitor: k=200 on a fixed train/test subset, as the recipe sets it; "
        "not the release protocol.",
        "",
        *(method_report(method, lines, milestone) for method, lines in lines_by_method.items()),
    ])
