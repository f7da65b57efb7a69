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


def fake_python(tmp_path, plan, milestone_for=(), export_rc=0):
    """An interpreter for campaign.sh: ``progress --next`` answers the lines of ``plan`` in turn, ``pretrain``
    (exit 3) writes a milestone folder for the methods in ``milestone_for``, ``export`` exits ``export_rc``; each
    call is logged in ``tmp_path/calls``; ``-c`` (the budget's parsing) runs in this interpreter."""
    (tmp_path / "plan").write_text("".join(f"{line}\n" for line in plan))
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/bash
log={tmp_path}/calls
[ "$1" = -c ] && exec {sys.executable} "$@"
case "$3" in
  progress) [ "$4" = --next ] || exit 0
            n=$(grep -c '^next' $log 2>/dev/null); echo next >> $log; sed -n "$((n + 1))p" {tmp_path}/plan ;;
  pretrain) echo "pretrain $*" >> $log
            while [ $# -gt 0 ]; do case $1 in --output-dir) out=$2 ;; --stop-after-epoch) stop=$2 ;; esac; shift; done
            for m in {' '.join(milestone_for)}; do
              case $out in *_${{m}}_*) mkdir -p $out/milestone-$(printf %03d $stop); echo {{}} > $out/milestone-$(printf %03d $stop)/run.json ;; esac
            done
            exit 3 ;;
  export) echo "export $*" >> $log; exit {export_rc} ;;
esac
""")
    fake.chmod(0o755)
    return fake


def campaign(tmp_path, budget, fake):
    env = dict(os.environ, OTZOO_RUNS=str(tmp_path / "runs"), OTZOO_CAMPAIGN=str(tmp_path / "campaign"),
               OTZOO_DATA=str(tmp_path / "data"), PYTHON=str(fake))
    return subprocess.run(["bash", "training/campaign.sh", budget], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


def calls(tmp_path):
    return [line.split() for line in (tmp_path / "calls").read_text().splitlines()]


def test_a_local_run_behind_its_release_is_moved_aside_and_the_release_continued(tmp_path):
    """A GPU window took the run past the local folder: the campaign continues the release, keeping the folder."""
    runs = tmp_path / "runs"
    (runs / "long_gca_uot_resnet18_cifar").mkdir(parents=True)
    (runs / "long_gca_uot_resnet18_cifar" / "checkpoint.pt").write_bytes(b"epoch 10")
    fake = fake_python(tmp_path, ["gca_uot 100 long_gca_uot_resnet18_cifar resume-from:gca_uot_resnet18_cifar10"])
    proc = campaign(tmp_path, "1m", fake)
    assert proc.returncode == 3 and "is behind gca_uot_resnet18_cifar10: moved to" in proc.stdout, proc.stdout
    [aside] = runs.glob("long_gca_uot_resnet18_cifar.behind-*")
    assert (aside / "checkpoint.pt").read_bytes() == b"epoch 10"  # kept
    [_, [_, *args]] = calls(tmp_path)
    assert args[args.index("--resume-from") + 1] == "gca_uot_resnet18_cifar10" and "--resume" not in args
    assert args[args.index("--output-dir") + 1] == str(runs / "long_gca_uot_resnet18_cifar")


PLAN = ["gca_uot 25 long_gca_uot_resnet18_cifar resume", "simclr 25 long_simclr_resnet18_cifar start"]


def test_a_milestone_is_released_at_once_then_the_method_behind_trains_for_the_rest_of_the_budget(tmp_path):
    proc = campaign(tmp_path, "2h", fake_python(tmp_path, PLAN, milestone_for=["gca_uot"]))
    assert proc.returncode == 3, proc.stdout + proc.stderr  # simclr stopped by its budget
    milestone = tmp_path / "runs" / "long_gca_uot_resnet18_cifar" / "milestone-025"
    assert [c[0] for c in calls(tmp_path)] == ["next", "pretrain", "export", "next", "pretrain"]
    export, simclr = calls(tmp_path)[2], calls(tmp_path)[4]
    assert export[export.index("--run") + 1] == str(milestone) and "--supersede" in export
    assert export[export.index("--data-dir") + 1] == str(tmp_path / "data") and (milestone / "exported").is_file()
    assert simclr[simclr.index("--output-dir") + 1].endswith("long_simclr_resnet18_cifar")
    assert 6000 < int(simclr[simclr.index("--time-budget") + 1]) <= 7200  # what is left of the 2 h
    assert "released gca_uot at epoch 25: commit weights/" in proc.stdout


@pytest.mark.parametrize("budget, export_rc, rc, called", [
    ("10m", 0, 3, ["next", "pretrain"]),               # too little left to release: the command is printed
    ("2h", 1, 5, ["next", "pretrain", "export", "next", "pretrain"]),  # a failed export: the folder kept, the
])                                                                      # CPU trains the method behind all the same
def test_a_milestone_without_time_or_a_clean_export_is_left_to_release_by_hand(tmp_path, budget, export_rc, rc,
                                                                                 called):
    proc = campaign(tmp_path, budget, fake_python(tmp_path, PLAN, milestone_for=["gca_uot"], export_rc=export_rc))
    assert proc.returncode == rc and [c[0] for c in calls(tmp_path)] == called, proc.stdout + proc.stderr
    milestone = tmp_path / "runs" / "long_gca_uot_resnet18_cifar" / "milestone-025"
    assert (milestone / "run.json").is_file() and not (milestone / "exported").exists()
    assert f"export --run {milestone} --supersede" in proc.stdout + proc.stderr


def test_a_budget_it_cannot_read_is_refused_before_any_training(tmp_path):
    proc = campaign(tmp_path, "two hours", fake_python(tmp_path, PLAN))
    assert proc.returncode == 2 and "cannot read the budget two hours" in proc.stderr
    assert not (tmp_path / "calls").exists()
