"""training/gpu_window.sh: runs side by side, packs finished runs or their milestone (fp16 backbones and heads) in
parts, says what failed."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from training.evaluate.loading import load_run_model
from training.run import progress

REPO = Path(__file__).resolve().parents[2]
TINY = ["dataset=synthetic", "data.subset=32", "batch_size=16", "epochs=1", "model.proj_hidden=32", "model.proj_dim=8",
        "engine.precision=fp32", "engine.compile=false"]


def smoke_window(tmp_path, *args, **env):
    """gpu_window.sh on the CPU with the smoke recipe's tiny runs: (the process, its $OUT, the unpacked return)."""
    out, back = tmp_path / "out", tmp_path / "back"
    out.mkdir()
    env = dict(os.environ, OUT=str(out), OTZOO_WINDOW_RUNS=str(tmp_path / "runs"), OMP_NUM_THREADS="1",
               PYTHON=sys.executable, OTZOO_WINDOW_DEVICE="cpu", **env)
    proc = subprocess.run(["bash", "training/gpu_window.sh", "training/configs/smoke.yaml", "5m", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    back.mkdir()
    parts = b"".join(p.read_bytes() for p in sorted(out.glob("runs.tar.part-*")))
    if parts:
        subprocess.run(["tar", "x", "-C", str(back)], input=parts, check=True)
    return proc, out, back


@pytest.mark.slow
def test_window_packs_finished_runs_and_fails_on_the_rest(tmp_path):
    proc, out, back = smoke_window(tmp_path, "simclr", "nosuch", "--", *TINY)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[window] device check passed: one step of simclr on cpu" in proc.stdout
    assert "[window] simclr: complete" in proc.stdout and "[window] nosuch: no backbone" in proc.stdout
    assert "method 'nosuch' is not an otzoo loss" in (out / "smoke_nosuch.log").read_text()
    assert sorted(p.name for p in back.iterdir()) == ["smoke_simclr"]
    run = back / "smoke_simclr"
    assert {"backbone.safetensors", "heads.safetensors", "run.json", "config.yaml", "metrics.jsonl", "plan.png",
            "plan.json"} <= {p.name for p in run.iterdir()}
    with safe_open(str(run / "backbone.safetensors"), "pt") as f:
        assert f.metadata()["method"] == "simclr"
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16, torch.int64}
    assert load_run_model(run) is not None  # what export reads


@pytest.mark.slow
def test_each_method_brings_back_its_newest_milestone_with_its_heads_and_takes_its_own_arguments(tmp_path):
    """The campaign's window: per-method stops (METHOD:ARG,ARG), milestones kept on the way (--milestone-every);
    what comes back of each run is its newest milestone folder, not the run's state."""
    proc, _, back = smoke_window(tmp_path, "simclr:--stop-after-epoch=1", "gca_uot:--stop-after-epoch=2,seed=7", "--",
                                 *TINY, "epochs=3", "--milestone-every", "1", OTZOO_WINDOW_CHECK="0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[window] simclr: smoke_simclr/milestone-001" in proc.stdout
    assert "[window] gca_uot: smoke_gca_uot/milestone-002" in proc.stdout
    assert sorted(str(p.relative_to(back)) for p in back.glob("*/*")) == ["smoke_gca_uot/milestone-002",
                                                                        "smoke_simclr/milestone-001"]
    milestone = back / "smoke_simclr" / "milestone-001"
    assert {"backbone.safetensors", "heads.safetensors", "run.json", "metrics.jsonl", "plan.png", "pretrain.log"} <= {
        p.name for p in milestone.iterdir()}
    with safe_open(str(milestone / "heads.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} <= {torch.float16, torch.int64}
    for folder, epochs in ((milestone, 1), (back / "smoke_gca_uot" / "milestone-002", 2)):
        run = json.loads((folder / "run.json").read_text())
        assert (run["epochs"], run["schedule"]["epochs"]) == (epochs, 3)  # where in its schedule it stands
    assert "seed: 7" in (back / "smoke_gca_uot" / "milestone-002" / "config.yaml").read_text()
    assert "seed: 7" not in (milestone / "config.yaml").read_text()
    assert load_run_model(milestone) is not None  # what export reads
    assert progress.main(["--run", str(milestone), "--out", str(tmp_path / "progress.jsonl")]) == 0
    assert json.loads((tmp_path / "progress.jsonl").read_text())["run"] == "smoke_simclr"  # the run, not its folder


def test_runs_beyond_one_call_come_back_in_the_printed_follow_up_calls_and_check_whole(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    for name, mib in (("a_small", 0.25), ("b_big", 2)):  # finished runs already in the window's folder
        (runs / name).mkdir(parents=True)
        (runs / name / "backbone.safetensors").write_bytes(os.urandom(int(mib * 2 ** 20)))  # not cast: not safetensors
        (runs / name / "run.json").write_text("{}")
    env = dict(os.environ, OUT=str(out), OTZOO_WINDOW_RUNS=str(runs), OTZOO_WINDOW_MAX_MIB="1", PYTHON="true")
    proc = subprocess.run(["bash", "training/gpu_window.sh", "training/configs/smoke.yaml", "1m", "nosuch"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert "3 parts of 1 MiB; 1 came back with this call" in proc.stdout, proc.stdout
    follow_ups = [line.strip() for line in proc.stdout.splitlines() if line.startswith("  cp ")]
    assert len(follow_ups) == 2 and sorted(p.name for p in out.glob("runs.tar.part-*")) == ["runs.tar.part-000"]
    back = tmp_path / "back"  # each call's files arrive in their own folder; gathered in one here
    back.mkdir()
    for i, command in enumerate(follow_ups):
        call = tmp_path / f"call{i}"
        call.mkdir()
        subprocess.run(["bash", "-c", command], env=dict(os.environ, OUT=str(call)), check=True)
        for f in call.iterdir():
            f.rename(back / f.name)
    for f in out.glob("runs.tar.part-*"):
        f.rename(back / f.name)
    (back / "SHA256SUMS").write_text((out / "SHA256SUMS").read_text())
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=back, check=True)
    parts = b"".join(p.read_bytes() for p in sorted(back.glob("runs.tar.part-*")))
    listing = subprocess.run(["tar", "t"], input=parts, capture_output=True, check=True).stdout.decode().split()
    assert listing == ["a_small/backbone.safetensors", "a_small/run.json", "b_big/backbone.safetensors",
                       "b_big/run.json"]
    part = back / "runs.tar.part-001"
    part.write_bytes(part.read_bytes()[:-1] + b"x")  # a part damaged on the way: the check names it
    check = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=back, capture_output=True, text=True)
    assert check.returncode != 0 and "runs.tar.part-001: FAILED" in check.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_window_stops_at_the_device_check_before_any_run(tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    out.mkdir()
    env = dict(os.environ, OUT=str(out), OTZOO_WINDOW_RUNS=str(runs), OMP_NUM_THREADS="1", PYTHON=sys.executable)
    proc = subprocess.run(["bash", "training/gpu_window.sh", "training/configs/smoke.yaml", "5m", "simclr", "gca_uot",
                           "--", *TINY], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "device check failed (exit 2): no run started" in proc.stdout, proc.stdout
    assert "torch sees no CUDA GPU" in (out / "device_check.log").read_text()
    assert not any(runs.glob("smoke_*")) and not list(out.glob("runs.tar.part-*"))


def test_a_call_that_has_run_the_recipe_on_the_device_leaves_the_check_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, OUT=str(out), OTZOO_WINDOW_RUNS=str(tmp_path / "runs"), PYTHON="false",
               OTZOO_WINDOW_CHECK="0")  # `false`: had the check run, it would have failed
    proc = subprocess.run(["bash", "training/gpu_window.sh", "training/configs/smoke.yaml", "1m", "simclr"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert "[window] device check left out (OTZOO_WINDOW_CHECK=0" in proc.stdout, proc.stdout
    assert "[window] simclr: no backbone" in proc.stdout and not (out / "device_check.log").exists()
