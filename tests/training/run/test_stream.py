"""Streaming mode: the same pixels, batches and weights as the in-memory path; exact resumes; bad files refused."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import training.run.methods
import training.run.stream
from tests.training.run.test_pretrain import SMOKE, TINY, TinyNet
from training.run.config import ConfigError, load_config
from training.run.data import DataError, EpochShuffler, load_images
from training.run.metrics import read_records
from training.run.pretrain import main
from training.run.stream import BatchStream, StreamedImages, open_train_images

REPO = Path(__file__).resolve().parents[3]


def jpeg_tree(root: Path, n: int = 6, classes=("a", "b", "c"), sizes=((40, 30), (24, 36), (33, 33))) -> Path:
    """train/ and test/ ImageFolder trees of JPEGs of different sizes (decode_size makes them one size)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = sizes[(i + c) % len(sizes)]
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:03d}.jpg", quality=80)
    return root


def _data(tree, **kw) -> dict:
    return {"dir": str(tree), "subset": None, "decode_size": 16, "cache_dir": None, "stream": True, "workers": 0,
            **kw}


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(training.run.methods, "create_backbone", lambda arch: TinyNet())


def test_streamed_images_are_the_in_memory_images_bit_for_bit(tmp_path):
    tree = jpeg_tree(tmp_path)
    decoded = load_images("folder", "train", str(tree), decode_size=16)
    streamed = open_train_images("folder", _data(tree), torch.device("cpu"))
    assert isinstance(streamed.images, StreamedImages) and streamed.images.shape == decoded.images.shape
    idx = torch.tensor([17, 0, 5, 5, 9])
    assert torch.equal(streamed.images[idx], decoded.images[idx])
    assert torch.equal(streamed.labels, decoded.labels) and streamed.classes == decoded.classes


def test_images_of_different_sizes_without_decode_size_are_refused_naming_the_file(tmp_path):
    tree = jpeg_tree(tmp_path)
    images = open_train_images("folder", _data(tree, decode_size=None), torch.device("cpu")).images
    with pytest.raises(DataError, match=r"001\.jpg decodes to 24x36 .* data\.decode_size"):
        images[torch.arange(3)]


def test_unset_stream_keeps_a_split_that_fits_in_memory_and_streams_one_that_does_not(tmp_path, monkeypatch):
    tree, cpu = jpeg_tree(tmp_path), torch.device("cpu")
    assert isinstance(open_train_images("folder", _data(tree, stream=None), cpu).images, torch.Tensor)
    monkeypatch.setattr(training.run.stream, "memory_budget", lambda device, procs: 18 * 3 * 16 * 16 - 1)
    assert isinstance(open_train_images("folder", _data(tree, stream=None), cpu).images, StreamedImages)
    assert isinstance(open_train_images("folder", _data(tree, stream=False), cpu).images, torch.Tensor)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_stream_follows_the_shuffler_across_epochs_and_after_it_moves(tmp_path, workers):
    tree = jpeg_tree(tmp_path)
    images = open_train_images("folder", _data(tree), torch.device("cpu")).images
    shuffler = EpochShuffler(len(images), 4, seed=3)
    stream = BatchStream(images, shuffler, (2, 4), workers)
    try:
        for step in range(12):  # 4 batches per epoch: three epochs
            if step == 7:
                shuffler.epoch, shuffler.position = 5, 1  # a restore: the stream starts again from here
            state = (shuffler.epoch, shuffler.position)
            idx = shuffler.next_batch()[2:4]
            assert torch.equal(stream.take(idx, state), images[idx]), step
    finally:
        stream.close()


def _args(tree, out, *extra):
    return ["--config", SMOKE] + TINY[1:] + [f"data.dir={tree}", "data.subset=null", "batch_size=6", "epochs=2",
                                             "--output-dir", str(out), *extra]


def _run(tree, out, *extra):
    return main(_args(tree, out, *extra))


def _same_weights(a, b):
    sa, sb = (torch.load(Path(d) / "checkpoint.pt", weights_only=True) for d in (a, b))
    assert sa["step"] == sb["step"]
    for k, v in sa["model"].items():
        assert torch.equal(v, sb["model"][k]), k


def test_a_streamed_run_stopped_at_every_step_ends_with_the_in_memory_runs_weights(tiny, tmp_path):
    """Its first step in memory (a run may change mode when it resumes), the rest streamed, the kNN monitor too."""
    tree = jpeg_tree(tmp_path / "data")
    assert _run(tree, tmp_path / "memory", "data.stream=false", "engine.knn_every=1") == 0
    chunked = tmp_path / "streamed"
    assert _run(tree, chunked, "data.stream=false", "engine.knn_every=1", "--time-budget", "0") == 3
    stops = 1
    while _run(tree, chunked, "data.stream=true", "data.workers=2", "engine.knn_every=1", "--time-budget", "0",
               "--resume") == 3:
        stops += 1
    assert stops == 5  # 3 steps per epoch, 2 epochs: stopped after each of the first five
    _same_weights(tmp_path / "memory", chunked)
    knn = [[r["knn_top1"] for r in read_records(d) if r["event"] == "epoch"] for d in (tmp_path / "memory", chunked)]
    assert len(knn[0]) == 2 and knn[0] == knn[1]


@pytest.mark.parametrize("rank,saves", [(0, True), (1, False)])
def test_only_rank_0_saves_when_an_image_stops_a_run_and_another_rank_says_the_last_checkpoint_is_kept(rank, saves):
    from types import SimpleNamespace

    from training.run.engine import Trainer

    saved = []
    trainer = Trainer.__new__(Trainer)
    trainer.info, trainer.step = SimpleNamespace(world_size=2, rank=rank, main=rank == 0), 7
    trainer.checkpoint = lambda: saved.append(trainer.step)
    line = trainer._save_before_data_error()
    assert (saved == [7]) == saves and ("saved at step 7" in line) == saves
    assert saves or "Rank 1 stopped at step 7; the run's last checkpoint is kept" in line


def test_an_unreadable_image_met_while_streaming_names_it_saves_the_state_and_resume_continues(tiny, tmp_path,
                                                                                                  capsys):
    tree = jpeg_tree(tmp_path / "data")
    assert _run(tree, tmp_path / "straight", "data.stream=false") == 0
    bad = tree / "train" / "b" / "004.jpg"
    whole = bad.read_bytes()
    bad.write_bytes(whole[: len(whole) // 3])  # truncated
    out = tmp_path / "streamed"
    capsys.readouterr()
    assert _run(tree, out, "data.stream=true", "data.workers=2") == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "--resume" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert f"state is saved at step {state['step']}" in err
    assert state["step"] == state["data"]["epoch"] * 3 + state["data"]["position"] < 6  # resumes at the step
    bad.write_bytes(whole)
    assert _run(tree, out, "data.stream=true", "data.workers=2", "--resume") == 0
    _same_weights(tmp_path / "straight", out)


def test_config_refuses_a_stream_or_workers_value_it_cannot_mean():
    with pytest.raises(ConfigError, match="data.stream must be true, false or null"):
        load_config(SMOKE, ["data.stream=sometimes"])
    with pytest.raises(ConfigError, match="data.workers must be an integer >= 0"):
        load_config(SMOKE, ["data.workers=-1"])


def stream_main(argv):
    """Entry point of the subprocess below: pretrain with the tiny backbone, each step 0.1 s slower."""
    step = training.run.engine.Trainer.train_step

    def slow_step(self):
        time.sleep(0.1)
        step(self)
    training.run.methods.create_backbone = lambda arch: TinyNet()
    training.run.engine.Trainer.train_step = slow_step
    return main(argv)


@pytest.mark.slow
def test_a_sigterm_to_the_process_group_stops_a_streamed_run_cleanly_and_resumes_exactly(tiny, tmp_path):
    """The workers get the signal too (one process group, as from a terminal or `pkill -f`)."""
    tree = jpeg_tree(tmp_path / "data", n=12)
    out, streamed = tmp_path / "streamed", ["engine.threads=1", "data.stream=true", "data.workers=2"]
    cmd = [sys.executable, "-c", "import sys; from tests.training.run.test_stream import stream_main; "
                                 "sys.exit(stream_main(sys.argv[1:]))", *_args(tree, out, *streamed)]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while not any('"step": 2,' in line for line in _lines(out / "metrics.jsonl")) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    err = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 3 and "SIGTERM received" in err, err
    assert 2 <= torch.load(out / "checkpoint.pt", weights_only=True)["step"] < 12
    assert _run(tree, out, *streamed, "--resume") == 0
    assert _run(tree, tmp_path / "memory", "engine.threads=1", "data.stream=false") == 0
    _same_weights(tmp_path / "memory", out)


def _lines(path: Path):
    return path.read_text().splitlines() if path.is_file() else []
