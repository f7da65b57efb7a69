"""training.run.fit_epochs: a probe's costs, the prediction, a real probe's report (timing: benchmarks/fit_epochs.py)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.run import fit_epochs as fit_epochs_module
from training.run.fit_epochs import FitError, fit_epochs, predict_s, probe_costs

REPO = Path(__file__).resolve().parents[3]
TINY = ["dataset=synthetic", "data.subset=64", "batch_size=16", "model.proj_hidden=32", "model.proj_dim=8",
        "engine.precision=fp32", "engine.compile=false", "engine.knn_train=64", "engine.knn_test=64"]


def epoch(n, elapsed, knn_s=None):
    rec = {"event": "epoch", "epoch": n, "step": 4 * n, "elapsed_s": elapsed}
    return rec if knn_s is None else {**rec, "knn_s": knn_s, "knn_top1": 10.0}


def test_costs_separate_start_epochs_and_the_monitor():
    records = [{"event": "step", "step": 1, "elapsed_s": 20.0}, epoch(1, 30.0, 3.0), epoch(2, 38.0, 1.0),
               epoch(3, 45.0, 1.0), epoch(4, 52.0, 1.0)]
    costs = probe_costs(records, import_s=5.0, batch_size=16)
    assert costs["start_s"] == 35.0 and costs["epoch_s"] == 6.0  # gaps 8-3, 7-1, 7-1
    assert costs["knn_s"] == 1.0 and costs["first_knn_s"] == 3.0
    assert costs["views_per_s"] == round(2 * 16 * 4 / 6.0, 1) and costs["epochs_probed"] == 4


def test_prediction_and_fit():
    costs = {"start_s": 35.0, "epoch_s": 6.0, "knn_s": 1.0, "first_knn_s": 3.0}
    assert predict_s(costs, 10, knn_every=0) == 35.0 + 60.0
    assert predict_s(costs, 10, knn_every=2) == 35.0 + 60.0 + 5 * 1.0 + 2.0
    epochs = fit_epochs(costs, budget_s=200.0, knn_every=0, safety=0.9)
    assert predict_s(costs, epochs, 0) <= 180.0 < predict_s(costs, epochs + 1, 0)
    every4 = fit_epochs(costs, budget_s=200.0, knn_every=4, safety=0.9)
    assert every4 % 4 == 0 and predict_s(costs, every4, 4) <= 180.0 < predict_s(costs, every4 + 4, 4)
    assert fit_epochs(costs, budget_s=30.0, knn_every=0) == 0


def test_a_probe_of_one_epoch_is_too_short_to_measure():
    with pytest.raises(FitError, match="longer --probe"):
        probe_costs([epoch(1, 30.0)], import_s=5.0, batch_size=16)


@pytest.mark.slow
def test_a_real_probe_reports_its_costs_and_the_epochs_they_fit(tmp_path):
    # whether a fitted run then keeps its budget is a timing: benchmarks/fit_epochs.py measures it
    cmd = [sys.executable, "-m", "training", "fit-epochs", "--config", "training/configs/smoke.yaml", "--budget",
           "10m", "--probe-epochs", "2", "--method", "simclr", "--report", str(tmp_path / "fit.json"), *TINY,
           "engine.knn_every=2"]
    fit = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                         timeout=300)
    assert fit.returncode == 0, fit.stderr
    report = json.loads((tmp_path / "fit.json").read_text())
    costs = report["methods"]["simclr"]
    assert costs["epochs_probed"] == 2 and costs["start_s"] > costs["epoch_s"] > 0 and costs["knn_s"] > 0
    assert costs["views_per_s"] == pytest.approx(2 * 16 * 4 / costs["epoch_s"], rel=0.01)  # 64 images: 4 steps
    epochs = fit_epochs(costs, budget_s=600.0, knn_every=2)
    assert int(fit.stdout.strip()) == report["epochs"] == costs["epochs"] == epochs >= 2 and epochs % 2 == 0


def test_bad_arguments_say_what_to_do():
    proc = subprocess.run([sys.executable, "-m", "training", "fit-epochs", "--config", "training/configs/smoke.yaml",
                           "--method", "simclr", "--budget", "six minutes"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "use e.g. 150m" in proc.stderr


@pytest.mark.parametrize("together", [False, True])
def test_methods_are_probed_side_by_side_only_when_together(monkeypatch, together):
    spans = {}

    def fake_probe(config, method, overrides, epochs, seconds):
        start = time.monotonic()
        time.sleep(0.3)
        spans[method] = (start, time.monotonic())
        return {"method": method}

    monkeypatch.setattr(fit_epochs_module, "probe", fake_probe)
    costs = fit_epochs_module.probe_all(["simclr", "gca_uot"], together, "c.yaml", [], 2, 10.0)
    assert list(costs) == ["simclr", "gca_uot"] and costs["gca_uot"] == {"method": "gca_uot"}
    (a0, a1), (b0, b1) = spans["simclr"], spans["gca_uot"]
    assert (max(a0, b0) < min(a1, b1)) == together  # the two probes overlap in time
