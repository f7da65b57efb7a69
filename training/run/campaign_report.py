"""The campaign's progress on one page (``python -m training progress --report`` writes it to
``results/campaign/README.md``).

Written from the ``<method>.jsonl`` lines alone (the run folders may be gone with their machines): per method
where the run stands, the compute its stretches took, the steps lost to machine changes, every stretch
(hardware, views/s) and the k-NN monitor's points. ``campaign.sh`` rewrites it after each stretch; commit it
with the lines.
"""
import math

__all__ = ["method_report", "references_section", "page"]

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


def _to_reach(last: dict, stop: int, per_epoch: float) -> str:
    """The steps from the last line to epoch ``stop``, and the hours they take at the last stretch's median rate."""
    steps = math.ceil(stop * (last.get("steps_per_epoch") or per_epoch)) - last["step"]
    rate = last["stretch"].get("views_per_s")
    if steps <= 0 or not rate:
        return ""
    return (f" To it: {steps:,} steps, ~{_hours(steps * 2 * last['batch_size'] / rate)} of training at the last "
            f"stretch's {rate} views/s ({last['stretch'].get('hardware') or 'unrecorded hardware'}).")


def _losses(lines: list) -> str:
    """``", N runs lost at epochs a, b, ..."``: where the run stood each time a machine was lost with it."""
    at = [str(before["epoch"]) for before, line in zip(lines, lines[1:]) if line["lost_steps"]]
    many = "s" * (len(at) != 1)
    return f", {len(at)} run{many} lost at epoch{many} {', '.join(at)}" if at else ""


def method_report(method: str, lines: list, milestone: int) -> str:
    """The markdown section of one method's progress lines (oldest first), milestones every ``milestone`` epochs."""
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
        f"epoch {next_stop}.{_to_reach(last, next_stop, per_epoch)} Stretches: {len(lines)}, {_hours(sum(x['stretch']['wall_time_s'] for x in lines))} "
        f"of training in all. Lost to machine changes: {lost:,} steps (~{math.floor(lost / per_epoch)} epochs"
        f"{_losses(lines)}); "
        f"furthest reached: epoch {furthest['epoch']} (step {furthest['step']:,}).",
        "",
        HEADER,
        *(_row(line) for line in lines),
        "",
    ])


def references_section(references: list) -> str:
    """The monitor's protocol on released weights (``monitor-reference`` records), beside their cards' k-NN."""
    return "\n".join([
        "## Reference points for the monitor",
        "",
        "The monitor's protocol (the same train and test subsets, k and T) on released weights, measured by "
        "`python -m training monitor-reference NAME` in fp32, beside the k-NN their cards state (every train and "
        "test image): a monitor point reads against these, not against full-protocol numbers.",
        "",
        "| weight | epochs of its schedule, batch | monitor k-NN | card k-NN | images (train / test), k | measured |",
        "|---|---|---:|---:|---|---|",
        *(f"| `{r['name']}` | {r['epochs']} of {r['schedule_epochs']}, batch {r['batch_size']} | "
          f"{r['monitor_knn_top1']:.2f}% | {r['release_knn_top1']:.2f}% | {r['num_train']:,} / {r['num_test']:,}, "
          f"k={r['k']} | {r['measured_at'][:10]}, {r['hardware']} |" for r in references),
        "",
    ])


def page(lines_by_method: dict, milestone: int, references: list = ()) -> str:
    """The page of ``{method: its progress lines}``, a section per method in the dict's order (none empty), then
    the monitor's reference points when there are some."""
    return "\n".join([
        "# The campaign's progress",
        "",
        "Written by `python -m training progress --report` from the progress lines in this folder (one per "
        "stretch of training; `steps` are the stretch's, `epoch` where the run stood after it). Views/s: the "
        "median of the stretch's logged intervals / the mean over its whole wall time (start-up and anything "
        "sharing the CPU included). k-NN monitor: k=200 on a fixed train/test subset, as the recipe sets it; "
        "not the release protocol. Milestones (released weights: the only state of a run that outlives its "
        f"machine) every {milestone} epochs.",
        "",
        *(method_report(method, lines, milestone) for method, lines in lines_by_method.items()),
        *([references_section(references)] if references else []),
    ])
