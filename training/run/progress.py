"""``python -m training progress``: one line of a long run's progress, appended to a small JSONL file in git.

A run folder lives only as long as its machine; a campaign that trains across sessions and machines keeps its
time-to-accuracy record as text instead (``results/campaign/<method>.jsonl``, one line per stretch of work).
A stretch is what the run trained since its last ``session`` record in ``metrics.jsonl`` (the engine writes
one at every start or resume): its steps, wall time, median views/s (of the step records' intervals), mean
views/s (two views per image over the whole wall time: start-up and anything sharing the CPU included),
hardware and k-NN monitor points. Where the run restarted below the step the file's last line reached (a
machine lost with its run folder), the difference is recorded as ``lost_steps``.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple, Optional

import yaml

from .campaign_report import page
from .metrics import read_records

__all__ = ["MILESTONE_EVERY", "stretch_record", "append_record", "read_progress", "epochs_done", "next_method",
           "Standing", "standings", "NextRun", "next_run", "write_report", "main"]

# Epochs between the campaign's milestones (the only state of a run that outlives its machine: a release).
# 25, not the campaign issue's 50, for a measured reason: of the five machines the gca_uot run was lost with
# (results/campaign/gca_uot.jsonl, 2026-12-04 to 12-07), none reached epoch 50 (they got 5, 19, 10, 3 and 34
# epochs in, 72 epochs lost in all); one reached 25. Each milestone adds ~25 MB to git.
MILESTONE_EVERY = 25


def read_progress(path) -> list:
    """The records of a progress file, oldest first (``[]`` when it does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _stretch_start(records: list, previous: Optional[dict]) -> tuple:
    """(index of the first record of the stretch, its first step, its session record or None)."""
    sessions = [i for i, r in enumerate(records) if r.get("event") == "session"]
    if sessions:
        i = sessions[-1]
        return i + 1, records[i]["step"], records[i]
    start = previous["step"] if previous else 0  # a run from before session records: since the last line
    first = next((i for i, r in enumerate(records) if r.get("step", 0) > start), len(records))
    return first, start, None


def _checkpoint(run_dir: Path) -> dict:
    """The run's saved position: ``{"step", "wall_time_s", "hardware"}`` of its checkpoint (``{}`` without one).
    A stop between two log records (a budget, a signal) is saved there, not in metrics.jsonl."""
    if not (run_dir / "checkpoint.pt").is_file():
        return {}
    from .checkpoint import load_checkpoint

    state = load_checkpoint(run_dir / "checkpoint.pt")
    spans = state.get("hardware_spans") or [{}]
    return {"step": int(state["step"]), "wall_time_s": float(state["wall_time_s"]),
            "hardware": spans[-1].get("hardware")}


def stretch_record(run_dir, previous: Optional[dict] = None) -> dict:
    """The progress line of ``run_dir`` for its latest stretch; ``previous`` is the file's last line."""
    run_dir = Path(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    records = read_records(run_dir)
    first, start_step, session = _stretch_start(records, previous)
    stretch = records[first:]
    steps = [r for r in stretch if r.get("event") == "step"]
    epochs = [r for r in records if r.get("event") == "epoch"]
    last = max((r for r in records if "elapsed_s" in r), key=lambda r: r["step"], default=None)
    saved = _checkpoint(run_dir)
    if saved and (last is None or saved["step"] > last["step"]):  # stopped after the last log record
        last = {"step": saved["step"], "elapsed_s": round(saved["wall_time_s"], 1)}
    if last is None or last["step"] <= start_step:
        raise ValueError(f"{str(run_dir)!r} trained no step since its last start (step {start_step}): nothing to "
                         "record")
    name = run_dir.parent.name if run_dir.name.startswith("milestone-") else run_dir.name  # a window's milestone
    same_stretch = previous and previous.get("run") == name and (
        (previous.get("stretch") or {}).get("started_at") == (session or {}).get("started_at"))
    if same_stretch and previous["step"] >= last["step"]:  # not a run restarted below it (a lost machine)
        raise ValueError(f"{str(run_dir)!r} is at step {last['step']}, already the last progress line; nothing new "
                         "to record (did the run start at all?)")
    begun = next((r["elapsed_s"] for r in reversed(records[:first]) if "elapsed_s" in r), 0.0)
    wall = round(last["elapsed_s"] - begun, 1)
    return {
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run": name, "method": cfg["method"], "arch": cfg["arch"], "dataset": cfg["dataset"],
        "batch_size": cfg["batch_size"], "epochs": cfg["epochs"],
        "step": last["step"], "epoch": epochs[-1]["epoch"] if epochs else 0,
        "steps_per_epoch": epochs[-1]["step"] // epochs[-1]["epoch"] if epochs else None,
        "wall_time_s": last["elapsed_s"],
        "stretch": {
            "steps": [start_step, last["step"]],
            "started_at": session["started_at"] if session else None,
            "wall_time_s": wall,
            # the stretch's whole wall time (start-up and anything sharing the CPU included)
            "mean_views_per_s": round(2 * cfg["batch_size"] * (last["step"] - start_step) / wall, 1) if wall else None,
            # the first step record of a stretch carries the start-up (decode, compile): left out
            "views_per_s": round(statistics.median(r["views_per_s"] for r in steps[1:]), 1) if len(steps) > 1
            else None,
            "hardware": session["hardware"] if session else saved.get("hardware"),
        },
        "knn": [{k: r[k] for k in ("epoch", "knn_top1", "feature_rank") if k in r}
                for r in stretch if r.get("event") == "epoch" and r.get("knn_top1") is not None],
        "lost_steps": max(0, previous["step"] - start_step) if previous else 0,
    }


def append_record(path, record: dict) -> Path:
    """Append ``record`` as one line to ``path`` (created with its folder when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    return path


def epochs_done(run_dir) -> int:
    """The epochs a run folder has completed (0 when it does not exist yet)."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.jsonl").is_file():
        return 0
    return max((r["epoch"] for r in read_records(run_dir) if r.get("event") == "epoch"), default=0)


def next_method(done: dict, milestone: int, epochs: int) -> Optional[tuple]:
    """``(method, stop_after_epoch)``: the method to train next so that a flagship and its baseline stand at
    the same milestone at every point in time, or None when every method has its ``epochs``. ``done`` maps
    each method (in priority order) to its epochs; of those not complete, the one with fewer milestones
    reached goes first, on a tie the one further along (finish what is started), then the first named; it
    trains up to its next milestone (at most ``epochs``)."""
    order = list(done)
    todo = [m for m in order if done[m] < epochs]
    if not todo:
        return None
    method = min(todo, key=lambda m: (done[m] // milestone, -done[m], order.index(m)))
    return method, min(epochs, (done[method] // milestone + 1) * milestone)


def continuable_release(method: str, cfg: dict) -> Optional[tuple]:
    """``(name, epochs)`` of the canonical release of ``method`` when it is a milestone of the run of ``cfg`` (same
    recipe, heads shipped, before the schedule's end): what ``--resume-from`` continues on a machine without the
    run folder; else None."""
    import otzoo

    from .pretrain import recipe_diff

    name = f"{method}_{cfg['arch'].removesuffix('_cifar')}_{cfg['dataset']}"
    if name not in otzoo.list_pretrained():
        return None
    release = otzoo.get_pretrained_cfg(name)
    budget, config = release.get("budget") or {}, (release.get("recipe") or {}).get("config") or {}
    schedule = budget.get("schedule") or {}
    if not release.get("heads") or not schedule or budget.get("steps", 0) >= schedule.get("steps", 0):
        return None
    if recipe_diff({**config, "method": method}, {**cfg, "method": method}):
        return None
    return name, int(budget["epochs"])


class Standing(NamedTuple):
    """Where one method of a campaign stands: its run folder's name (under the runs folder), the epochs that
    folder has completed (-1: no checkpoint there) and its continuable release ``(name, epochs)`` or None."""
    folder: str
    local_epochs: int
    release: Optional[tuple]

    @property
    def epochs(self) -> int:
        """The furthest of the local folder and the release."""
        return max(self.local_epochs, self.release[1] if self.release else 0)

    @property
    def how(self) -> str:
        """``resume`` (the local folder), ``resume-from:NAME`` (its release, further along) or ``start``."""
        if self.local_epochs >= 0 and (self.release is None or self.local_epochs >= self.release[1]):
            return "resume"
        return f"resume-from:{self.release[0]}" if self.release else "start"


def standings(runs, recipe: str, methods: list) -> tuple:
    """``(cfg, {method: Standing})`` of ``methods`` on ``recipe`` with the run folders under ``runs`` and the
    releases registered here."""
    from .config import load_config

    cfg = load_config(recipe)
    stand = {}
    for m in methods:
        folder = Path(runs) / f"{Path(recipe).stem}_{m}_{cfg['arch']}"
        local = epochs_done(folder) if (folder / "checkpoint.pt").is_file() else -1
        stand[m] = Standing(folder.name, local, continuable_release(m, {**cfg, "method": m}))
    return cfg, stand


class NextRun(NamedTuple):
    """What the campaign trains next: ``method`` up to epoch ``stop``, in run folder ``folder`` (under the runs
    folder), ``how`` (:attr:`Standing.how`), with the epochs the local folder and the release have reached."""
    method: str
    stop: int
    folder: str
    how: str
    local_epochs: int
    release: Optional[tuple]


def next_run(runs, recipe: str, methods: list, milestone: int = MILESTONE_EVERY) -> Optional[NextRun]:
    """The :class:`NextRun` of ``methods`` on ``recipe`` (:func:`standings`), milestone by milestone
    (:func:`next_method`); None when every method has completed it."""
    cfg, stand = standings(runs, recipe, methods)
    chosen = next_method({m: s.epochs for m, s in stand.items()}, milestone, cfg["epochs"])
    if chosen is None:
        return None
    s = stand[chosen[0]]
    return NextRun(chosen[0], chosen[1], s.folder, s.how, max(s.local_epochs, 0), s.release)


def _print_next(runs: Path, recipe: str, methods: list, milestone: int) -> int:
    """Prints ``METHOD STOP_EPOCH RUN_FOLDER HOW`` of :func:`next_run`."""
    chosen = next_run(runs, recipe, methods, milestone)
    if chosen is None:
        print(f"every method has completed the recipe {recipe}: {', '.join(methods)}", file=sys.stderr)
        return 4
    print(chosen.method, chosen.stop, chosen.folder, chosen.how)
    return 0


REFERENCES = "references.json"  # ``python -m training monitor-reference`` writes it


def read_references(folder) -> list:
    """The monitor's reference records in ``folder`` (``[]`` without its file), in name order."""
    path = Path(folder) / REFERENCES
    return sorted(json.loads(path.read_text()).values(), key=lambda r: r["name"]) if path.is_file() else []


def write_report(folder, milestone: int = MILESTONE_EVERY) -> Path:
    """``folder/README.md``: the campaign's page from every ``folder/*.jsonl``, the methods in name order, and the
    monitor's reference points (``folder/references.json``) when there are some."""
    folder = Path(folder)
    lines = {f.stem: read_progress(f) for f in sorted(folder.glob("*.jsonl"))}
    if not any(lines.values()):
        raise FileNotFoundError(f"{str(folder)!r} holds no progress file (<method>.jsonl): run "
                                "`python -m training progress --run RUN` after a stretch first")
    out, tmp = folder / "README.md", folder / "README.md.tmp"
    tmp.write_text(page({m: x for m, x in lines.items() if x}, milestone, read_references(folder)))
    tmp.replace(out)
    return out


def _print_report(folder: Path, milestone: int, prog: str) -> int:
    try:
        print(f"{write_report(folder, milestone)}: the campaign's progress, from its progress files")
    except FileNotFoundError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv=None, prog: str = "python -m training progress", command: str = "progress") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--run", help="the run directory (config.yaml + metrics.jsonl)")
    p.add_argument("--next", nargs="+", metavar="METHOD", help="print which of METHODs to train next (METHOD, the "
                   "epoch to stop after, its run folder) under --runs with --recipe, milestone by milestone")
    p.add_argument("--runs", default="runs", help="with --next: the folder of the run folders (default runs)")
    p.add_argument("--recipe", default="training/configs/cifar10_long.yaml", help="with --next: the recipe")
    p.add_argument("--milestone", type=int, default=MILESTONE_EVERY,
                   help=f"with --next or --report: epochs between milestones (default {MILESTONE_EVERY})")
    p.add_argument("--out", help="the progress file (default results/campaign/<method>.jsonl)")
    p.add_argument("--note", help="free text kept in the line, e.g. what was lost and why")
    p.add_argument("--report", nargs="?", const="results/campaign", metavar="FOLDER", help="write FOLDER/README.md "
                   "(default results/campaign) from its progress files: where each run stands, every stretch")
    args = p.parse_args(argv)
    if args.next:
        return _print_next(Path(args.runs), args.recipe, args.next, args.milestone)
    if args.report:
        return _print_report(Path(args.report), args.milestone, prog)
    if not args.run:
        p.error("--run or --next is required")
    run = Path(args.run)
    if not (run / "config.yaml").is_file() or not (run / "metrics.jsonl").is_file():
        print(f"{prog}: error: {str(run)!r} is not a pretraining run (it needs config.yaml and metrics.jsonl)",
              file=sys.stderr)
        return 2
    method = yaml.safe_load((run / "config.yaml").read_text())["method"]
    out = Path(args.out) if args.out else Path("results/campaign") / f"{method}.jsonl"
    progress = read_progress(out)
    try:
        record = stretch_record(run, progress[-1] if progress else None)
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if args.note:
        record["note"] = args.note
    append_record(out, record)
    s = record["stretch"]
    print(f"{out}: {record['run']} at step {record['step']} (epoch {record['epoch']}/{record['epochs']}), "
          f"this stretch steps {s['steps'][0]}-{s['steps'][1]} in {s['wall_time_s']:.0f} s at "
          f"{s['views_per_s'] or 'n/a (no step record)'} views/s on {s['hardware'] or 'unrecorded hardware'}")
    return 0
