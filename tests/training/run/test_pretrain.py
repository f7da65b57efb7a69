import json
import os
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

import training.run.engine
import training.run.methods
from training.evaluate.loading import load_run_model
from training.run.metrics import read_records
from training.run.pretrain import main

REPO = Path(__file__).resolve().parents[3]
SMOKE = str(REPO / "training" / "configs" / "smoke.yaml")
RUN_KEYS = {"method", "arch", "dataset", "data_dir", "data_variant", "epochs", "steps", "views_seen",
            "batch_size", "world_size", "seed", "wall_time_s", "hardware", "hardware_spans", "otzoo_version", "torch_version",
            "command", "config", "final_loss"}


class TinyNet(nn.Module):
    """A few-thousand-parameter backbone with otzoo's interface (num_features, pooled output)."""

    def __init__(self, bn=True):
        super().__init__()
        self.num_features = 16
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16) if bn else nn.Identity(),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.body(x)


TINY = ["dataset=synthetic", "data.subset=32", "data.decode_size=16", "aug.size=16", "batch_size=16", "epochs=1", "model.proj_hidden=32",
        "model.proj_dim=8", "model.byol_proj_hidden=32", "model.byol_proj_dim=8", "model.byol_pred_hidden=32",
        "engine.progress=false", "engine.log_every=1"]


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(training.run.methods, "create_backbone", lambda arch: TinyNet())


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"], prog="python -m training pretrain")
    assert e.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--config", "--resume", "--time-budget", "--output-dir", "--data-dir", "key=value"):
        assert opt in text


def test_bad_config_exits_2_with_message(tmp_path, capsys):
    assert main(["--config", SMOKE, "optim.lrr=1", "--output-dir", str(tmp_path / "r")]) == 2
    assert "optim.lrr" in capsys.readouterr().err
    assert main(["--config", SMOKE, "--time-budget", "soon", "--output-dir", str(tmp_path / "r")]) == 2


def _methods():
    from otzoo.losses import list_losses

    return list_losses()


@pytest.mark.parametrize("method", _methods())
def test_every_method_trains(method, tiny, tmp_path):
    out = tmp_path / method
    assert main(["--config", SMOKE, f"method={method}", *TINY, "--output-dir", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == method and run["steps"] == 2 and run["views_seen"] == 64
    losses = [r["loss"] for r in read_records(out) if r["event"] != "session"]
    assert all(torch.isfinite(torch.tensor(losses)))
    from safetensors.torch import load_file

    trained = load_file(str(out / "backbone.safetensors"))
    torch.manual_seed(0)
    init = TinyNet().state_dict()
    assert set(trained) == set(init)
    assert not torch.equal(trained["body.0.weight"], init["body.0.weight"])  # parameters moved


def test_nan_guard_stops_without_a_broken_checkpoint(tiny, monkeypatch, tmp_path, capsys):
    real = training.run.methods.create_loss
    calls = {"n": 0}

    def nan_on_third_call(name, **kw):
        loss = real(name, **kw)
        fwd = loss.forward

        def forward(*a, **k):
            calls["n"] += 1
            value = fwd(*a, **k)
            return value * float("nan") if calls["n"] == 3 else value
        loss.forward = forward
        return loss

    monkeypatch.setattr(training.run.methods, "create_loss", nan_on_third_call)
    out = tmp_path / "nan"
    assert main(["--config", SMOKE, *TINY, "epochs=2", "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "loss is nan at step 2" in err and "epoch 2" in err
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2 - 0 and state["data"]["epoch"] == 1  # the epoch-1 checkpoint, untouched
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / "run.json").exists() and not (out / "backbone.safetensors").exists()


def test_nan_embeddings_stop_the_run_with_the_same_guard(monkeypatch, tmp_path, capsys):
    class DivergesAtThirdCall(TinyNet):
        calls = 0

        def forward(self, x):
            DivergesAtThirdCall.calls += 1
            out = super().forward(x)
            return out * float("nan") if DivergesAtThirdCall.calls == 3 else out

    monkeypatch.setattr(training.run.methods, "create_backbone", lambda arch: DivergesAtThirdCall())
    out = tmp_path / "nan_z"
    assert main(["--config", SMOKE, *TINY, "epochs=2", "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "embeddings are NaN/inf" in err and "at step 2" in err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2


def test_time_budget_stops_cleanly_then_resume_finishes(tiny, tmp_path, capsys):
    out = tmp_path / "budget"
    args = ["--config", SMOKE, *TINY, "epochs=2", "--output-dir", str(out)]
    assert main(args + ["--time-budget", "0s"]) == 3
    assert "--resume" in capsys.readouterr().err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 1
    assert not (out / "run.json").exists()
    assert main(args) == 2  # an unfinished run is never silently overwritten
    assert main(args + ["--resume"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 4
    assert "--time-budget" not in run["command"] and "--resume" not in run["command"]
    assert main(args + ["--resume", "epochs=3"]) == 2  # resuming with a different recipe is refused


def sigterm_after(step_number, times=1, sig=signal.SIGTERM):
    """Trainer.train_step that sends this process `times` SIGTERMs (what a scheduler, `kill` or torchrun
    sends; or ``sig``, e.g. SIGINT: Ctrl-C) once step `step_number` is done."""
    step = training.run.engine.Trainer.train_step

    def step_then_sigterm(self):
        step(self)
        if self.step == step_number:
            for _ in range(times):
                os.kill(os.getpid(), sig)

    return step_then_sigterm


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_stops_after_the_step_in_progress_with_state_saved(tiny, tmp_path, monkeypatch, capsys, sig):
    step = training.run.engine.Trainer.train_step
    monkeypatch.setattr(training.run.engine.Trainer, "train_step", sigterm_after(3, sig=sig))  # mid-epoch
    before = signal.getsignal(sig)
    out = tmp_path / "term"
    args = ["--config", SMOKE, *TINY, "epochs=3", "--output-dir", str(out)]
    assert main(args) == 3
    assert f"{sig.name} received after step 3/6" in capsys.readouterr().err
    assert signal.getsignal(sig) == before  # the caller's handler is back
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3
    monkeypatch.setattr(training.run.engine.Trainer, "train_step", step)
    assert main(args + ["--resume"]) == 0
    assert json.loads((out / "run.json").read_text())["steps"] == 6


def test_a_second_sigterm_exits_at_once_and_the_last_checkpoint_resumes(tiny, tmp_path, monkeypatch, capsys):
    step = training.run.engine.Trainer.train_step
    # mid-epoch: the last checkpoint is the end of epoch 1, step 2
    monkeypatch.setattr(training.run.engine.Trainer, "train_step", sigterm_after(3, times=2))
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "term2"
    args = ["--config", SMOKE, *TINY, "epochs=3", "--output-dir", str(out)]
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert "second SIGTERM" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    monkeypatch.setattr(training.run.engine.Trainer, "train_step", step)
    assert main(args + ["--resume"]) == 0


def test_a_second_signal_before_any_checkpoint_says_to_start_again(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training.run.engine.Trainer, "train_step", sigterm_after(1, times=2, sig=signal.SIGINT))
    out = tmp_path / "early"
    with pytest.raises(SystemExit) as stopped:
        main(["--config", SMOKE, *TINY, "epochs=3", "--output-dir", str(out)])
    assert stopped.value.code == 128 + signal.SIGINT
    err = capsys.readouterr().err
    assert "second SIGINT after step 1" in err and "start again without --resume" in err
    assert not (out / "checkpoint.pt").exists()


def test_a_run_resumed_on_other_hardware_names_every_machine(tiny, tmp_path, monkeypatch):
    out = tmp_path / "moved"
    args = ["--config", SMOKE, *TINY, "epochs=3", "--output-dir", str(out)]
    assert main(args + ["--time-budget", "0s"]) == 3  # step 1 here
    assert main(args + ["--time-budget", "0s", "--resume"]) == 3  # step 2 here: one span
    [span] = torch.load(out / "checkpoint.pt", weights_only=True)["hardware_spans"]
    here = span["hardware"]
    assert span["steps"] == [0, 2] and span["wall_time_s"] > 0 and here.startswith("1x ")
    monkeypatch.setattr(training.run.engine, "hardware_string", lambda info, precision: "1x Other CPU, bf16 autocast")
    assert main(args + ["--resume"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert [(s["hardware"], s["steps"]) for s in run["hardware_spans"]] == [
        (here, [0, 2]), ("1x Other CPU, bf16 autocast", [2, 6])]
    assert run["hardware"] == f"{here} (steps 0-2); 1x Other CPU, bf16 autocast (steps 2-6)"
    assert sum(s["wall_time_s"] for s in run["hardware_spans"]) == pytest.approx(run["wall_time_s"], abs=0.2)


def test_a_span_that_trained_no_step_is_not_named():
    from training.run.hardware import add_hardware_span, describe_hardware
    spans = add_hardware_span([], "1x CPU A, fp32", (0, 0), 40.0)  # stopped during its setup
    spans = add_hardware_span(spans, "1x GPU B, bf16 autocast", (0, 8), 100.0)
    assert [s["steps"] for s in spans] == [[0, 0], [0, 8]]  # its wall time still counts
    assert describe_hardware(spans) == "1x GPU B, bf16 autocast"
    assert describe_hardware(spans[:1]) == "1x CPU A, fp32"


@pytest.mark.parametrize("raw, tidy", [
    ("1x CPU Intel(R) Xeon(R) Processor (2 cores), bf16 autocast", "1x CPU Intel Xeon (2 cores), bf16 autocast"),
    ("1x CPU AMD EPYC 7763 64-Core Processor (2 cores), fp32", "1x CPU AMD EPYC 7763 64-Core (2 cores), fp32"),
    ("1x CPU Intel(R) Core(TM) i7-9750H CPU @ 2.60GHz (12 cores), fp32",
     "1x CPU Intel Core i7-9750H CPU @ 2.60GHz (12 cores), fp32"),
    ("8x NVIDIA H100 80GB HBM3, bf16 autocast", "8x NVIDIA H100 80GB HBM3, bf16 autocast"),
])
def test_hardware_is_recorded_without_trademark_marks(raw, tidy):
    from training.run.hardware import tidy_hardware
    assert tidy_hardware(raw) == tidy


def test_a_run_started_under_the_raw_cpu_name_stays_one_span():
    from training.run.hardware import add_hardware_span
    raw = "1x CPU Intel(R) Xeon(R) Processor (2 cores), bf16 autocast"  # recorded before names were tidied
    spans = add_hardware_span([{"hardware": raw, "steps": [0, 5], "wall_time_s": 10.0}],
                              "1x CPU Intel Xeon (2 cores), bf16 autocast", (5, 9), 4.0)
    assert spans == [{"hardware": "1x CPU Intel Xeon (2 cores), bf16 autocast", "steps": [0, 9], "wall_time_s": 14.0}]


def test_a_checkpoint_without_hardware_says_so(tiny, tmp_path):
    out = tmp_path / "old"
    args = ["--config", SMOKE, *TINY, "epochs=2", "--output-dir", str(out)]
    assert main(args + ["--time-budget", "0s"]) == 3
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    here = state.pop("hardware_spans")[0]["hardware"]
    torch.save(state, out / "checkpoint.pt")  # as written before checkpoints recorded their hardware
    assert main(args + ["--resume"]) == 0
    assert json.loads((out / "run.json").read_text())["hardware"] == (
        f"hardware not recorded (steps 0-1); {here} (steps 1-4)")


@pytest.mark.data
@pytest.mark.slow
def test_smoke_recipe_end_to_end(cifar10_dir, tmp_path):
    """The smoke recipe on ~256 real images: the run directory contract, loadable by otzoo."""
    import otzoo
    from safetensors.torch import load_file

    out = tmp_path / "smoke"
    assert main(["--config", SMOKE, "--data-dir", str(cifar10_dir), "--output-dir", str(out),
                 "engine.knn_every=2", "engine.knn_train=256", "engine.knn_test=100"]) == 0
    for name in ("config.yaml", "checkpoint.pt", "metrics.jsonl", "curves.png", "backbone.safetensors", "run.json"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = json.loads((out / "run.json").read_text())
    assert set(run) == RUN_KEYS
    assert run["command"].startswith("python -m training pretrain --config ")
    assert run["steps"] == 8 and run["views_seen"] == 8 * 128 and run["world_size"] == 1
    model = otzoo.create_model(run["arch"], num_classes=0)
    model.load_state_dict(load_file(str(out / "backbone.safetensors")), strict=True)
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    knn = [r["knn_top1"] for r in records if "knn_top1" in r]
    assert len(knn) == 1 and 0.0 <= knn[0] <= 100.0
    ranks = [r["feature_rank"] for r in records if "knn_top1" in r]
    assert 1.0 <= ranks[0] <= 512


@pytest.mark.parametrize("extra", [["optim.name=lars", "optim.lr=1.0"], ["aug.policy=large_erase"],
                                   ["aug.policy=brightness"], ["aug.policy=strong_crop"],
                                   ["engine.precision=fp32", "engine.channels_last=false"]],
                         ids=["lars", "large_erase", "brightness", "strong_crop", "fp32"])
def test_recipe_variants_train(extra, tiny, tmp_path):
    out = tmp_path / "run"
    assert main(["--config", SMOKE, *TINY, *extra, "--output-dir", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert torch.isfinite(torch.tensor(run["final_loss"]))
    from training.run.device import resolve_precision

    expected = "fp32" if "engine.precision=fp32" in extra else resolve_precision("auto", torch.device("cpu"))
    assert run["hardware"].endswith({"fp32": "fp32", "bf16": "bf16 autocast"}[expected])


def test_schedule_and_durations():
    from training.run.config import parse_duration
    from training.run.optim import warmup_cosine

    f = warmup_cosine(warmup_steps=4, total_steps=20, min_ratio=0.1)
    assert [f(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0) and f(12) == pytest.approx(0.55) and f(20) == pytest.approx(0.1)
    assert all(f(i) >= f(i + 1) for i in range(4, 20))
    assert parse_duration("150m") == 9000 and parse_duration("1h30m") == 5400 and parse_duration("90") == 90
    with pytest.raises(ValueError, match="150m"):
        parse_duration("later")


def test_byol_target_follows_cosine_ema():
    from training.run.methods import BYOLMethod

    m = BYOLMethod(TinyNet(), nn.Identity(), proj_hidden=8, proj_dim=4, pred_hidden=8, tau=0.9)
    assert m.tau(0, 10) == pytest.approx(0.9) and m.tau(5, 10) == pytest.approx(0.95) and m.tau(10, 10) == 1.0
    online, target = m.backbone.body[0].weight, m.target_backbone.body[0].weight
    with torch.no_grad():
        online.add_(1.0)
    before = target.clone()
    m.update_target(0, 10)  # tau = 0.9: target moves 10% of the way to the online weights
    torch.testing.assert_close(target, before + 0.1 * (online - before))
    assert not target.requires_grad


class _CountHostReads:
    """Counts the ops that read a tensor's value back to Python (``.item()``, ``float()``,
    ``bool()``, ``if tensor``): on a GPU each one waits for the device."""

    READS = ("_local_scalar_dense", "is_nonzero", "equal")

    def __enter__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        reads = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func.__name__.split(".")[0] in reads.READS:
                    reads.calls.append(func.__name__)
                return func(*args, **(kwargs or {}))

        self.calls, self.mode = [], Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)


@pytest.mark.parametrize("method", _methods())
def test_a_training_step_reads_nothing_back_from_the_device(method, tiny, tmp_path):
    """The step the engine runs on CUDA, run here: no value read back between log steps."""
    from training.run.config import load_config
    from training.run.engine import Trainer

    cfg = load_config(SMOKE, [*TINY, f"method={method}", "epochs=2", "engine.log_every=1000"])
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train_step()  # first call: lazy initialisation may read values
    with _CountHostReads() as reads:
        trainer.train_step()
    assert reads.calls == [], f"{method}: the step reads back {reads.calls}"
    assert trainer.step == 2
    with _CountHostReads() as reads:  # the counter sees the reads a log step makes
        trainer.log_step(0, type("Bar", (), {"set_postfix": lambda *a, **k: None})())
    trainer.metrics_file.close()
    assert reads.calls


@pytest.mark.cuda
@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_a_few_steps_on_cuda(method, tiny, tmp_path, cuda_device):
    out = tmp_path / method
    assert main(["--config", SMOKE, *TINY, f"method={method}", "engine.device=cuda", "engine.compile=true",
                 "engine.knn_every=1", "engine.knn_train=32", "engine.knn_test=16", "--output-dir", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert "CPU" not in run["hardware"] and torch.isfinite(torch.tensor(run["final_loss"]))


@pytest.mark.parametrize("recipe", sorted(p.name for p in (REPO / "training" / "configs").glob("*.yaml")))
def test_every_recipe_trains_here(recipe, tiny, tmp_path):
    """Each shipped recipe (the GPU ones included) runs on this CPU at a tiny size, as written otherwise."""
    out = tmp_path / "run"
    config = str(REPO / "training" / "configs" / recipe)
    assert main(["--config", config, *TINY, "engine.device=cpu", "engine.compile=false", "engine.knn_every=0",
                 "--output-dir", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 2 and torch.isfinite(torch.tensor(run["final_loss"]))


@pytest.mark.parametrize("recipe,decode,size,batch", [("imagenette_cpu.yaml", 64, 64, 4),
                                                      ("imagenet1k_resnet50.yaml", 64, 64, 4),
                                                      ("imagenette_vit_gpu.yaml", 144, 224, 2)])
def test_imagenet_recipes_train_two_steps_with_their_real_architecture(recipe, decode, size, batch, tmp_path):
    """The ImageNet-stem ResNets and ViT-B/16 (AdamW) of the Imagenette / ImageNet-1k recipes, two steps and the
    kNN monitor (the ViT's at 224 px from images decoded at 144, as its recipe does)."""
    out = tmp_path / "run"
    config = str(REPO / "training" / "configs" / recipe)
    assert main(["--config", config, "dataset=synthetic", f"data.subset={2 * batch}", f"data.decode_size={decode}",
                 f"aug.size={size}", f"batch_size={batch}", "epochs=1", "engine.device=cpu", "engine.compile=false",
                 "engine.knn_every=1", "engine.knn_train=4", "engine.knn_test=4", "engine.progress=false",
                 "engine.log_every=1", "--output-dir", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 2 and torch.isfinite(torch.tensor(run["final_loss"]))
    monitor = [r for r in read_records(out) if r.get("event") == "epoch"][-1]
    assert 0 <= monitor["knn_top1"] <= 100
    model = load_run_model(out)
    assert model.pretrained_cfg["input_size"] == (3, size, size)
    assert model.pretrained_cfg["mean"] == (0.485, 0.456, 0.406)  # the run's, not CIFAR's


def test_one_run_per_output_folder_and_a_stale_lock_is_taken_over(tiny, tmp_path, capsys):
    import subprocess
    import sys

    from training.run.checkpoint import _boot_id

    out = tmp_path / "locked"
    out.mkdir()
    args = ["--config", SMOKE, *TINY, "--output-dir", str(out)]
    (out / "run.lock").write_text(f"{os.getppid()} {_boot_id()}\n")  # a live process holds it
    assert main(args) == 2
    assert f"is in use by process {os.getppid()}" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["run.lock"]  # nothing written
    (out / "run.lock").write_text(f"{os.getppid()} another-boot\n")  # the same pid before a restart: gone
    assert main(args + ["--time-budget", "0"]) == 3
    assert not (out / "run.lock").exists()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / "run.lock").write_text(f"{gone.stdout.strip()} {_boot_id()}\n")  # its process is gone
    assert main(args + ["--resume"]) == 0
    assert (out / "run.json").is_file() and not (out / "run.lock").exists()


def test_a_mid_epoch_resume_reports_the_whole_epoch_mean_loss(tiny, tmp_path, monkeypatch):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    base = ["--config", SMOKE, *TINY, "epochs=3"]
    assert main(base + ["--output-dir", str(straight)]) == 0
    step = training.run.engine.Trainer.train_step
    monkeypatch.setattr(training.run.engine.Trainer, "train_step", sigterm_after(3))  # first step of epoch 2
    assert main(base + ["--output-dir", str(resumed)]) == 3
    monkeypatch.setattr(training.run.engine.Trainer, "train_step", step)
    assert main(base + ["--output-dir", str(resumed), "--resume"]) == 0

    def epoch_losses(out):
        return [r["loss"] for r in read_records(out) if r["event"] == "epoch"]

    assert epoch_losses(resumed) == pytest.approx(epoch_losses(straight), rel=1e-6)


def _image_tree_with(tmp_path, bad: bytes):
    from tests.training.evaluate.test_commands import make_image_tree

    data = make_image_tree(tmp_path / "data", n_train=4, n_test=2)
    first = sorted((data / "train").rglob("*.png"))[0]
    (first.parent / "0000.png").write_bytes(bad)
    return data, first.parent / "0000.png"


@pytest.mark.parametrize("damage", ["truncated", "not an image"])
def test_an_unreadable_image_is_one_line_naming_the_file_exit_2(damage, tiny, tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "ok.png")
    whole = (tmp_path / "ok.png").read_bytes()
    data, bad = _image_tree_with(tmp_path, whole[: len(whole) // 2] if damage == "truncated" else b"hello")
    out = tmp_path / "run"
    rc = main(["--config", SMOKE] + TINY[1:] + [f"data.dir={data}", "data.subset=null", "batch_size=4",
                                                "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (out / "checkpoint.pt").exists() and not (out / "metrics.jsonl").exists()


def test_a_batch_larger_than_the_data_is_one_line_exit_2_and_the_folder_can_be_used_again(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--config", SMOKE] + TINY + ["batch_size=64", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "32 images cannot fill one batch of 64" in err and len(err.strip().splitlines()) == 1
    assert main(["--config", SMOKE] + TINY + ["--output-dir", str(out)]) == 0  # nothing left blocks the fixed command
