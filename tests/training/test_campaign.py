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
    page = (record / "README.md").read_text()  # rewritten after every stretch
    assert "## gca_uot: epoch 2 of 2" in page and "## simclr: epoch 2 of 2" in page


def test_a_local_run_behind_its_release_is_moved_aside_and_the_release_continued(tmp_path):
    """A GPU window took the run past the local folder: the campaign continues the release, keeping the folder."""
    runs = tmp_path / "runs"
    (runs / "long_gca_uot_resnet18_cifar").mkdir(parents=True)
    (runs / "long_gca_uot_resnet18_cifar" / "checkpoint.pt").write_bytes(b"epoch 10")
    fake = tmp_path / "python"  # `progress --next` chooses the release; `pretrain` says how it was called
    fake.write_text('#!/bin/bash\ncase "$3" in\n'
                    '  progress) [ "$4" = --next ] && echo "gca_uot 100 long_gca_uot_resnet18_cifar '
                    'resume-from:gca_uot_resnet18_cifar10"; exit 0 ;;\n'
                    f'  pretrain) echo "$@" > {tmp_path}/pretrain.args; exit 3 ;;\nesac\n')
    fake.chmod(0o755)
    env = dict(os.environ, OTZOO_RUNS=str(runs), OTZOO_CAMPAIGN=str(tmp_path / "campaign"), PYTHON=str(fake))
    proc = subprocess.run(["bash", "training/campaign.sh", "1m"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 3 and "is behind gca_uot_resnet18_cifar10: moved to" in proc.stdout, proc.stdout
    [aside] = runs.glob("long_gca_uot_resnet18_cifar.behind-*")
    assert (aside / "checkpoint.pt").read_bytes() == b"epoch 10"  # kept
    args = (tmp_path / "pretrain.args").read_text().split()
    assert args[args.index("--resume-from") + 1] == "gca_uot_resnet18_cifar10" and "--resume" not in args
    assert args[args.index("--output-dir") + 1] == str(runs / "long_gca_uot_resnet18_cifar")
