"""``python -m training fit-epochs``: the most epochs of a recipe that fit a time budget, measured by a probe.

For a device window whose speed no one has measured: each ``--method`` is pretrained for
``--probe-epochs`` epochs (at most ``--probe`` seconds) with the recipe and overrides (a real
``python -m training pretrain``: decode, compile, the kNN monitor forced at every epoch end so that
its cost is measured too), and its epoch records give

- ``start_s``: launch to the end of epoch 1's steps (imports, decode, compile; an upper bound for the
  run itself, which finds the decode and compile caches warm),
- ``epoch_s``: one more epoch (its steps, checkpoint and curves), the median over the probe's epochs,
- ``knn_s`` / ``first_knn_s``: one kNN monitor (the first also decodes the test set).

A run of E epochs is predicted to take ``start_s + (E - 1) * epoch_s + n_knn * knn_s +
(first_knn_s - knn_s) + epoch_s`` (the last term: the end of the run, with a margin), where ``n_knn``
= E // the run's ``engine.knn_every``. Printed (stdout, alone): the largest E whose prediction is
within ``--safety`` x ``--budget`` for every method, rounded down to a multiple of ``knn_every`` so
that the last epoch has a monitor point. One recipe gives every method the same epochs: probe the
slowest ones; ``--together`` probes them side by side, as a window trains them (sharing the device, each
is slower than alone). In one window, e.g.::

    E=$(python -m training fit-epochs --config training/configs/cifar10_gpu.yaml --budget 6m \\
          --method byol --method gca_uot --report $OUT/fit.json data.cache_dir=/tmp/c) &&
    bash training/gpu_window.sh training/configs/cifar10_gpu.yaml 6m30s gca_uot -- epochs=$E data.cache_dir=/tmp/c

Exit status: 0 (E printed), 1 a probe failed or not even one epoch fits, 2 bad arguments.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .metrics import read_records
from .config import ConfigError, load_config
from .config import parse_duration

__all__ = ["probe_costs", "predict_s", "fit_epochs", "probe", "probe_all", "main"]


class FitError(RuntimeError):
    """A probe that failed or measured too little to predict from."""


def probe_costs(records, import_s: float, batch_size: int) -> dict:
    """The costs (seconds) of a probe's ``metrics.jsonl`` records; ``import_s``: launch to the trainer's start."""
    epochs = [r for r in records if r.get("event") == "epoch"]
    if len(epochs) < 2:
        raise FitError(f"the probe finished {len(epochs)} epoch(s); two are needed to measure one: give it a "
                       "longer --probe (seconds) or --probe-epochs of at least 2")
    knn = [float(r.get("knn_s", 0.0)) for r in epochs]
    gaps = [b["elapsed_s"] - a["elapsed_s"] - k for a, b, k in zip(epochs, epochs[1:], knn)]
    epoch_s = max(statistics.median(gaps), 1e-3)
    views_per_epoch = 2 * batch_size * epochs[0]["step"]
    return {"start_s": round(import_s + epochs[0]["elapsed_s"], 2), "epoch_s": round(epoch_s, 3),
            "knn_s": round(statistics.median(knn), 3), "first_knn_s": round(knn[0], 3),
            "views_per_s": round(views_per_epoch / epoch_s, 1), "epochs_probed": len(epochs)}


def predict_s(costs: dict, epochs: int, knn_every: int) -> float:
    """Predicted wall time of a run of ``epochs`` epochs with a kNN monitor every ``knn_every`` (0: none)."""
    n_knn = epochs // knn_every if knn_every else 0
    knn = n_knn * costs["knn_s"] + (costs["first_knn_s"] - costs["knn_s"] if n_knn else 0.0)
    return costs["start_s"] + epochs * costs["epoch_s"] + knn


def fit_epochs(costs: dict, budget_s: float, knn_every: int, safety: float = 0.9) -> int:
    """The largest epoch count predicted within ``safety * budget_s`` (a multiple of ``knn_every`` when one fits)."""
    epochs = 0
    while predict_s(costs, epochs + 1, knn_every) <= safety * budget_s:
        epochs += 1
    if knn_every and epochs >= knn_every:
        epochs -= epochs % knn_every
    return epochs


def probe(config: str, method: str, overrides: list, epochs: int = 3, seconds: float = 180.0,
          python: str = sys.executable) -> dict:
    """Pretrain ``method`` for ``epochs`` (at most ``seconds``) in a temporary folder; its :func:`probe_costs`."""
    from .checkpoint import load_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "probe"
        cmd = [python, "-m", "training", "pretrain", "--config", config, f"method={method}", *overrides,
               f"epochs={epochs}", "engine.knn_every=1", "engine.progress=false", "--output-dir", str(run),
               "--time-budget", str(seconds)]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t0
        if proc.returncode not in (0, 3):
            raise FitError(f"the probe of {method} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        records = read_records(run)
        done = run / "run.json"
        trained_s = (json.loads(done.read_text()) if done.is_file() else load_checkpoint(run / "checkpoint.pt"))[
            "wall_time_s"]  # from the trainer's start: the rest of the wall time is the launch
    batch = load_config(config, overrides)["batch_size"]
    return probe_costs(records, max(wall - trained_s, 0.0), batch)


def probe_all(methods: list, together: bool, config: str, overrides: list, epochs: int, seconds: float) -> dict:
    """``{method: probe(...)}``, one after another or (``together``) all at once, sharing the device as a window's
    runs do; a failure raises once every probe has ended."""
    with ThreadPoolExecutor(len(methods) if together else 1) as pool:
        return dict(zip(methods, pool.map(lambda m: probe(config, m, overrides, epochs, seconds), methods)))


def main(argv=None, prog: str = "python -m training fit-epochs", command: str = "fit-epochs") -> int:
    title, rest = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(prog=prog, description=title, epilog=rest,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the run's YAML recipe")
    p.add_argument("--method", action="append", required=True, help="a method to probe (repeat: the slowest decide)")
    p.add_argument("--budget", required=True, help="the run's wall time, e.g. 6m or 360")
    p.add_argument("--probe-epochs", type=int, default=3, help="each probe's epochs (default 3; at least 2)")
    p.add_argument("--probe", default="180s", help="each probe's wall time at most (default 180s)")
    p.add_argument("--safety", type=float, default=0.9, help="the fraction of --budget to fill (default 0.9)")
    p.add_argument("--together", action="store_true",
                   help="probe the methods side by side, sharing the device as gpu_window.sh's runs do")
    p.add_argument("--report", help="write each method's costs and the result to this JSON file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="the run's config overrides")
    args = p.parse_intermixed_args(argv)
    try:
        budget, seconds = parse_duration(args.budget), parse_duration(args.probe)
        cfg = load_config(args.config, args.overrides)
        if args.probe_epochs < 2:
            raise ValueError(f"--probe-epochs {args.probe_epochs}: a probe needs at least 2 epochs to measure one")
    except (ConfigError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    knn_every = int(cfg["engine"]["knn_every"])
    report = {"config": args.config, "budget_s": budget, "safety": args.safety, "knn_every": knn_every, "methods": {}}
    try:
        for m, costs in probe_all(args.method, args.together, args.config, args.overrides, args.probe_epochs,
                                  seconds).items():
            costs["epochs"] = fit_epochs(costs, budget, knn_every, args.safety)
            report["methods"][m] = costs
            print(f"[fit] {m}: {json.dumps(costs)}", file=sys.stderr)
        report["epochs"] = min(c["epochs"] for c in report["methods"].values())
    except FitError as err:
        report["error"] = str(err)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    if "error" in report or report["epochs"] < 1:
        why = report.get("error") or f"not even one epoch fits {budget:.0f} s (the costs above)"
        print(f"{prog}: error: {why}", file=sys.stderr)
        return 1
    epochs, warmup = report["epochs"], cfg["optim"]["warmup_epochs"]
    if epochs <= warmup:
        print(f"[fit] warning: {epochs} epochs do not pass the recipe's {warmup} warmup epochs", file=sys.stderr)
    print(epochs)
    return 0
