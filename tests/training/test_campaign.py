"""training/campaign.sh: each call trains the method that is behind, resumes exactly, and appends a progress line."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.evaluate.test_commands import make_image_tree
from training.run.progress import read_progress

REPO = Path(__file__).resolve().parents[2]
TINY = ["data.subset=32", "batch_size=32", "model.proj_hidden=32", "model.proj_dim=8", "engine.precision=fp32",
        "engine.compile=false"]


@pytest.mark.slow
def test_campaign_stretches_resume_then_move_to_the_baseline(tmp_path):
    runs, record = tmp_path / "runs", tmp_path / "campaign"
    env = dict(os.environ, OTZOO_DATA=str(make_image_tree(tmp_path / "data")), OTZOO_RUNS=str(runs),
               OTZOO_CAMPAIGN=str(record), OTZOO_RECIPE="training/configs/smoke.yaml", OMP_NUM_THREADS="1",
               PYTHON=sys.executable)

    def stretch(budget):
        return subprocess.run(["bash", "training/campaign.sh", budget, "--", *TINY], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)

    first = stretch("1")  # the budget stops gca_uot after its first step
    assert first.returncode == 3, first.stdout + first.stderr
    assert "gca_uot until epoch 2: start" in first.stdout
    second = stretch("10m")  # resumed exactly, to the end of the smoke recipe's 2 epochs
    assert second.returncode == 0 and "gca_uot until epoch 2: resume" in second.stdout, second.stderr
    third = stretch("10m")
    assert third.returncode == 0 and "simclr until epoch 2: start" in third.stdout, third.stderr
    assert stretch("10m").returncode == 4  # both complete
    gca = read_progress(record / "gca_uot.jsonl")
    assert [line["stretch"]["steps"][0] for line in gca] == [0, gca[0]["step"]] and gca[-1]["epoch"] == 2
    assert all(line["lost_steps"] == 0 for line in gca)
    [simclr] = read_progress(record / "simclr.jsonl")
    assert simclr["method"] == "simclr" and simclr["stretch"]["steps"] == [0, gca[-1]["step"]]
