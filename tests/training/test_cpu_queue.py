"""training/cpu_queue.sh: a run stopped by the queue's budget resumes on the next call, is exported once, then skipped."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.release import readme
from tests.training.evaluate.test_commands import make_image_tree

REPO = Path(__file__).resolve().parents[2]
TINY = ["data.subset=32", "batch_size=32", "epochs=4", "model.proj_hidden=32", "model.proj_dim=8",
        "engine.precision=fp32", "engine.compile=false"]


@pytest.mark.slow
def test_queue_stops_at_its_budget_resumes_exports_once_then_skips(tmp_path):
    root, runs = tmp_path / "root", tmp_path / "runs"
    root.mkdir()
    (root / "README.md").write_text(f"# x\n\n{readme.START}\n{readme.END}\n")
    env = dict(os.environ, OTZOO_DATA=str(make_image_tree(tmp_path / "data")), OTZOO_RUNS=str(runs),
               OTZOO_ROOT=str(root), OTZOO_EXPORT_ARGS="--subset-size 8 --max-iter 20", OMP_NUM_THREADS="1",
               PYTHON=sys.executable)

    def queue(budget):
        return subprocess.run(["bash", "training/cpu_queue.sh", "training/configs/smoke.yaml", budget, "simclr",
                               "--", *TINY], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    spent = queue("0")
    assert spent.returncode == 3 and "budget spent before simclr" in spent.stdout, spent.stdout + spent.stderr
    assert not runs.exists()

    run = runs / "smoke_simclr_resnet18_cifar"  # a run stopped by its budget, as a queue's last run is
    stopped = subprocess.run([sys.executable, "-m", "training", "pretrain", "--config", "training/configs/smoke.yaml",
                              "--output-dir", str(run), *TINY, "--time-budget", "1"], cwd=REPO, env=env)
    assert stopped.returncode == 3 and (run / "checkpoint.pt").is_file() and not (run / "run.json").exists()

    second = queue("10m")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "pretrain simclr: resume" in second.stdout and "exported simclr" in second.stdout
    assert (run / "run.json").is_file() and (run / "exported").is_file()
    assert (root / "weights" / "simclr_resnet18_cifar10").is_dir()
    assert "`simclr_resnet18_cifar10`" in (root / "README.md").read_text()

    third = queue("10m")
    assert third.returncode == 0 and "simclr: already exported" in third.stdout, third.stdout + third.stderr
    assert "pretrain simclr" not in third.stdout and "export simclr" not in third.stdout


def test_queue_refuses_a_budget_it_cannot_read(tmp_path):
    proc = subprocess.run(["bash", "training/cpu_queue.sh", "training/configs/smoke.yaml", "soon", "simclr"],
                          cwd=REPO, env=dict(os.environ, PYTHON=sys.executable, OTZOO_RUNS=str(tmp_path)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not 'soon'" in proc.stderr
    assert not any(tmp_path.iterdir())
