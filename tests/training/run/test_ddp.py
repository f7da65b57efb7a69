"""torchrun/DDP on CPU: 2 gloo processes train to the same weights as 1 process on the same global batch."""
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import training.run.engine
import training.run.methods
from training.run.metrics import read_records
from training.run.pretrain import main

REPO = Path(__file__).resolve().parents[3]
SMOKE = str(REPO / "training" / "configs" / "smoke.yaml")
ARGS = ["--config", SMOKE, "dataset=synthetic", "data.subset=48", "batch_size=16", "epochs=1",
        "model.projector_bn=false", "model.proj_hidden=32", "model.proj_dim=8", "engine.precision=fp32",
        "engine.progress=false", "engine.log_every=1", "optim.lr=0.5"]


def _bn_free_backbone(arch):
    from tests.training.run.test_pretrain import TinyNet

    return TinyNet(bn=False)


def _worker(rank, world, port, out, method, errors, extra=(), expected=0, sigterm_rank0_after=None):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    training.run.methods.create_backbone = _bn_free_backbone
    if sigterm_rank0_after is not None and rank == 0:
        from tests.training.run.test_pretrain import sigterm_after

        training.run.engine.Trainer.train_step = sigterm_after(sigterm_rank0_after)
    try:
        code = main(ARGS + [f"method={method}", "--output-dir", out, *extra])
        if code != expected:
            errors.put(f"rank {rank} exited {code}, expected {expected}")
    except Exception as e:  # pragma: no cover - reported to the parent
        errors.put(f"rank {rank}: {e!r}")
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_same_weights_as_one_process(ddp_out, method, tmp_path, monkeypatch, extra=()):
    """One uninterrupted process on the same global batch ends at step 3 with the DDP run's weights."""
    monkeypatch.setattr(training.run.methods, "create_backbone", _bn_free_backbone)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    torch.set_num_threads(1)
    assert main(ARGS + [f"method={method}", "--output-dir", str(tmp_path / "single"), *extra]) == 0
    ddp = torch.load(Path(ddp_out) / "checkpoint.pt", weights_only=True)
    single = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)
    assert ddp["step"] == single["step"] == 3
    for k, v in single["model"].items():
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["simclr", "gca_uot"])
def test_two_gloo_processes_match_one_process(method, tmp_path, monkeypatch):
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    ddp_out = str(tmp_path / "ddp")
    mp.start_processes(_worker, args=(2, _free_port(), ddp_out, method, errors), nprocs=2, join=True,
                       start_method="spawn")
    assert errors.empty(), errors.get()

    _assert_same_weights_as_one_process(ddp_out, method, tmp_path, monkeypatch)
    losses = [[r["loss"] for r in read_records(d) if r["event"] != "session"] for d in (ddp_out, tmp_path / "single")]
    torch.testing.assert_close(torch.tensor(losses[0]), torch.tensor(losses[1]), rtol=1e-5, atol=1e-6)
    run = json.loads((Path(ddp_out) / "run.json").read_text())
    assert run["world_size"] == 2 and run["command"].startswith("torchrun --nproc_per_node=2 -m training pretrain")


@pytest.mark.slow
def test_a_sigterm_on_rank_0_stops_every_rank_at_one_step_and_resumes_exactly(tmp_path, monkeypatch):
    ctx, out = mp.get_context("spawn"), str(tmp_path / "ddp")
    errors = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(2, _free_port(), out, "simclr", errors, (), 3, 1), nprocs=2, join=True,
                       start_method="spawn")
    assert errors.empty(), errors.get()
    assert torch.load(Path(out) / "checkpoint.pt", weights_only=True)["step"] == 1  # rank 1 stopped there too
    mp.start_processes(_worker, args=(2, _free_port(), out, "simclr", errors, ("--resume",)), nprocs=2,
                       join=True, start_method="spawn")
    assert errors.empty(), errors.get()

    _assert_same_weights_as_one_process(out, "simclr", tmp_path, monkeypatch)


@pytest.mark.slow
def test_two_streaming_gloo_processes_match_one_in_memory_process(tmp_path, monkeypatch):
    from tests.training.run.test_stream import jpeg_tree

    tree = jpeg_tree(tmp_path / "data", n=16)  # 48 JPEGs of three sizes, decoded at 16 px
    data = [f"data.dir={tree}", "dataset=folder", "data.subset=null", "data.decode_size=16", "aug.size=16"]
    ctx, ddp_out = mp.get_context("spawn"), str(tmp_path / "ddp")
    errors = ctx.SimpleQueue()
    streamed = (*data, "data.stream=true", "data.workers=1")
    mp.start_processes(_worker, args=(2, _free_port(), ddp_out, "gca_uot", errors, streamed), nprocs=2, join=True,
                       start_method="spawn")
    assert errors.empty(), errors.get()
    _assert_same_weights_as_one_process(ddp_out, "gca_uot", tmp_path, monkeypatch, (*data, "data.stream=false"))
