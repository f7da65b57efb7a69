"""Does a run fitted by ``python -m training fit-epochs`` finish within its budget? Probe, fit, then time the run.

Runs ``fit-epochs`` (a real probe) for ``--budget``, then pretrains the recipe for the epochs it printed, and
prints the budget, the prediction (the probe's costs through ``predict_s``) and the run's wall time, launch to
exit. A GPU window counts on this: a run its ``--time-budget`` stops brings nothing back. Defaults: the tiny
smoke recipe that the tests use, simclr, 60 s, so that it runs in ~2 minutes on a 2-core CPU:

    python benchmarks/fit_epochs.py [--config training/configs/smoke.yaml] [--budget 60s] [--method simclr]
        [-- key=value ...]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from training.run.fit_epochs import predict_s  # noqa: E402

TINY = ["dataset=synthetic", "data.subset=64", "batch_size=16", "model.proj_hidden=32", "model.proj_dim=8",
        "engine.precision=fp32", "engine.compile=false", "engine.knn_train=64", "engine.knn_test=64",
        "engine.knn_every=2"]


def training(*args) -> float:
    """Wall seconds of ``python -m training ARGS`` (it must succeed)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "training", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"python -m training {args[0]} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="training/configs/smoke.yaml")
    p.add_argument("--method", default="simclr")
    p.add_argument("--budget", default="60s")
    p.add_argument("--probe-epochs", default="4")
    p.add_argument("overrides", nargs="*", default=TINY, metavar="key=value")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "fit.json"
        probe_s = training("fit-epochs", "--config", args.config, "--method", args.method, "--budget", args.budget,
                           "--probe-epochs", args.probe_epochs, "--report", str(report_path), *args.overrides)
        report = json.loads(report_path.read_text())
        epochs = report["epochs"]
        run_s = training("pretrain", "--config", args.config, f"method={args.method}", *args.overrides,
                         f"epochs={epochs}", "--output-dir", str(Path(tmp) / "run"))
    costs, budget = report["methods"][args.method], report["budget_s"]
    predicted = predict_s(costs, epochs, report["knn_every"])
    print(f"probe {probe_s:.1f} s; costs {json.dumps(costs)}")
    print(f"budget {budget:.0f} s: {epochs} epochs fitted, predicted {predicted:.1f} s, run took {run_s:.1f} s "
          f"({run_s / budget:.2f} of the budget, {run_s / predicted:.2f} of the prediction)")


if __name__ == "__main__":
    main()
