"""Exact resumption: stopped runs (time budget, kill -9) continue to the same weights as straight runs."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import training.run.methods
from training.run.pretrain import main

REPO = Path(__file__).resolve().parents[3]
SMOKE = str(REPO / "training" / "configs" / "smoke.yaml")
TINY = ["dataset=synthetic", "model.proj_hidden=32", "model.proj_dim=8", "model.byol_proj_hidden=32",
        "model.byol_proj_dim=8", "model.byol_pred_hidden=32", "engine.progress=false", "engine.log_every=1"]


def _tiny_backbone(arch):
    from tests.training.run.test_pretrain import TinyNet

    return TinyNet()


def _slow_loss(name, **kw):
    """The real loss, 50 ms slower per call, so a subprocess can be killed mid-epoch."""
    from otzoo.losses import create_loss

    loss = create_loss(name, **kw)
    fwd = loss.forward

    def forward(*a, **k):
        time.sleep(0.05)
        return fwd(*a, **k)
    loss.forward = forward
    return loss


def tiny_main(argv):
    """Entry point of the subprocess: pretrain with the tiny backbone."""
    training.run.methods.create_backbone = _tiny_backbone
    training.run.methods.create_loss = _slow_loss
    return main(argv)


def _state(out):
    return torch.load(Path(out) / "checkpoint.pt", weights_only=True)


def _assert_same_state(a, b):
    assert a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(x["momentum_buffer"], y["momentum_buffer"])


@pytest.mark.parametrize("method, subset", [("simclr", 16), ("byol", 48)])
def test_stop_and_resume_equals_straight_run(method, subset, tmp_path, monkeypatch):
    """subset 16 / batch 16: 1 epoch + resume 1 epoch; subset 48: resumes at every step (mid-epoch)."""
    monkeypatch.setattr(training.run.methods, "create_backbone", _tiny_backbone)
    args = ["--config", SMOKE, f"method={method}", *TINY, f"data.subset={subset}", "batch_size=16", "epochs=2"]
    assert main(args + ["--output-dir", str(tmp_path / "straight")]) == 0
    chunked = ["--output-dir", str(tmp_path / "chunked")]
    assert main(args + chunked + ["--time-budget", "0"]) == 3
    stops = 1
    while main(args + chunked + ["--time-budget", "0", "--resume"]) == 3:
        stops += 1
    assert stops == (1 if subset == 16 else 5)
    _assert_same_state(_state(tmp_path / "straight"), _state(tmp_path / "chunked"))
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "straight" / "backbone.safetensors"))
    b = load_file(str(tmp_path / "chunked" / "backbone.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_kill_9_mid_epoch_loses_little_and_resumes_exactly(tmp_path, monkeypatch):
    # One thread in both processes: float reductions then run in the same order, bit for bit.
    args = ["--config", SMOKE, *TINY, "data.subset=64", "batch_size=8", "epochs=2", "engine.checkpoint_minutes=0",
            "engine.threads=1"]
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-c", "import sys; from tests.training.run.test_resume import tiny_main; "
                                 "sys.exit(tiny_main(sys.argv[1:]))", *args, "--output-dir", str(killed)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if (killed / "checkpoint.pt").is_file():
                try:
                    if _state(killed)["step"] >= 3:
                        break
                except Exception:  # pragma: no cover - must never happen: saves are atomic
                    raise
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        else:
            pytest.fail("the subprocess wrote no checkpoint in time")
        time.sleep(0.03)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    state = _state(killed)  # the last good checkpoint loads (never half-written)
    assert 3 <= state["step"] < 16 and not (killed / "run.json").exists()

    monkeypatch.setattr(training.run.methods, "create_backbone", _tiny_backbone)
    assert main(args + ["--output-dir", str(killed), "--resume"]) == 0
    assert main(args + ["--output-dir", str(tmp_path / "straight")]) == 0
    _assert_same_state(_state(tmp_path / "straight"), _state(killed))
