"""training/gpu_window.sh: runs side by side, packs finished runs (fp16 backbones) in parts, says what failed."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from training.loading import load_run_model

REPO = Path(__file__).resolve().parents[2]
TINY = ["dataset=synthetic", "data.subset=32", "batch_size=16", "epochs=1", "model.proj_hidden=32", "model.proj_dim=8",
        "engine.precision=fp32", "engine.compile=false"]


@pytest.mark.slow
def test_window_packs_finished_runs_and_fails_on_the_rest(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, OUT=str(out), OTZOO_WINDOW_RUNS=str(tmp_path / "runs"), OMP_NUM_THREADS="1",
               PYTHON=sys.executable)
    proc = subprocess.run(["bash", "training/gpu_window.sh", "training/configs/smoke.yaml", "5m", "simclr", "nosuch",
                           "--", *TINY], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[window] simclr: complete" in proc.stdout and "[window] nosuch: no backbone" in proc.stdout
    assert "Unknown loss 'nosuch'" in (out / "smoke_nosuch.log").read_text()

    back = tmp_path / "back"
    back.mkdir()
    parts = b"".join(p.read_bytes() for p in sorted(out.glob("runs.tar.part-*")))
    subprocess.run(["tar", "x", "-C", str(back)], input=parts, check=True)
    assert sorted(p.name for p in back.iterdir()) == ["smoke_simclr"]
    run = back / "smoke_simclr"
    assert {"backbone.safetensors", "run.json", "config.yaml", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    with safe_open(str(run / "backbone.safetensors"), "pt") as f:
        assert f.metadata()["method"] == "simclr"
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16, torch.int64}
    assert load_run_model(run) is not None  # what export reads
