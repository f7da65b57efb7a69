import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.training.run.test_pretrain import SMOKE, TINY, tiny  # noqa: F401  (fixture)
from training.run import progress
from training.run.metrics import read_records
from training.run.pretrain import main as pretrain

KNN = ["engine.knn_every=1", "engine.knn_train=32", "engine.knn_test=32"]


def test_stop_after_epoch_saves_and_resumes_to_the_end(tiny, tmp_path, capsys):
    out = tmp_path / "milestone"
    args = ["--config", SMOKE, *TINY, "epochs=3", "--output-dir", str(out)]
    assert pretrain(args + ["--stop-after-epoch", "1"]) == 3
    assert "epoch 1 reached after step 2/6" in capsys.readouterr().err
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert pretrain(args + ["--resume", "--stop-after-epoch", "1"]) == 3  # already there: nothing trained
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert pretrain(args + ["--resume", "--stop-after-epoch", "2"]) == 3
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 4
    assert pretrain(args + ["--resume"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 6 and "--stop-after-epoch" not in run["command"]
    assert pretrain(args[:-2] + ["--output-dir", str(tmp_path / "bad"), "--stop-after-epoch", "0"]) == 2


def test_milestones_on_the_way_are_kept_and_the_run_goes_on(tiny, tmp_path, capsys):
    """--milestone-every: each N-th epoch's end is a milestone folder (a budget stop still leaves the newest),
    the stop's own epoch written once, the complete run's artifacts at its root."""
    out = tmp_path / "window"
    args = ["--config", SMOKE, *TINY, "epochs=4", "--output-dir", str(out), "--milestone-every", "1"]
    assert pretrain(args + ["--stop-after-epoch", "2"]) == 3
    assert "milestone written to" in capsys.readouterr().err
    assert sorted(p.name for p in out.glob("milestone-*")) == ["milestone-001", "milestone-002"]
    first = json.loads((out / "milestone-001" / "run.json").read_text())
    assert (first["epochs"], first["steps"], first["schedule"]["epochs"]) == (1, 2, 4)
    assert pretrain(args + ["--resume"]) == 0
    assert sorted(p.name for p in out.glob("milestone-*")) == [f"milestone-00{e}" for e in (1, 2, 3)]
    assert json.loads((out / "milestone-003" / "run.json").read_text())["epochs"] == 3
    assert json.loads((out / "run.json").read_text())["epochs"] == 4 and not (out / "milestone-004").exists()
    bad = ["--config", SMOKE, *TINY, "--output-dir", str(tmp_path / "bad"), "--milestone-every", "0"]
    assert pretrain(bad) == 2 and "--milestone-every must be an epoch >= 1" in capsys.readouterr().err


def test_every_start_is_a_session_record(tiny, tmp_path):
    out = tmp_path / "sessions"
    args = ["--config", SMOKE, *TINY, "epochs=2", "--output-dir", str(out)]
    assert pretrain(args + ["--stop-after-epoch", "1"]) == 3
    assert pretrain(args + ["--resume"]) == 0
    sessions = [r for r in read_records(out) if r["event"] == "session"]
    assert [(s["step"], s["resumed"]) for s in sessions] == [(0, False), (2, True)]
    assert all(s["hardware"].startswith("1x ") and s["started_at"].endswith("Z") for s in sessions)
    # a session's identity: two starts within one second (tiny runs on a fast CPU) are still told apart
    assert len({s["started_at"] for s in sessions}) == 2 and all(len(s["started_at"]) == 24 for s in sessions)


def test_progress_lines_follow_the_stretches_and_count_lost_steps(tiny, tmp_path, capsys):
    out, record = tmp_path / "run", tmp_path / "results" / "campaign" / "simclr.jsonl"
    args = ["--config", SMOKE, *TINY, *KNN, "epochs=3", "--output-dir", str(out)]
    assert pretrain(args + ["--stop-after-epoch", "2"]) == 3
    assert progress.main(["--run", str(out), "--out", str(record)]) == 0
    assert "steps 0-4" in capsys.readouterr().out
    assert pretrain(args + ["--resume"]) == 0
    assert progress.main(["--run", str(out), "--out", str(record), "--note", "second stretch"]) == 0
    capsys.readouterr()
    assert progress.main(["--run", str(out), "--out", str(record)]) == 2  # e.g. the next start failed at once
    assert "already the last progress line" in capsys.readouterr().err
    first, second = progress.read_progress(record)
    assert (first["step"], first["epoch"], first["stretch"]["steps"], first["lost_steps"]) == (4, 2, [0, 4], 0)
    assert [k["epoch"] for k in first["knn"]] == [1, 2] and [k["epoch"] for k in second["knn"]] == [3]
    assert (second["step"], second["epoch"], second["stretch"]["steps"]) == (6, 3, [4, 6])
    assert first["steps_per_epoch"] == second["steps_per_epoch"] == 2
    assert second["note"] == "second stretch" and second["epochs"] == 3 and second["method"] == "simclr"
    assert second["stretch"]["hardware"].startswith("1x ") and second["stretch"]["views_per_s"] > 0
    assert first["stretch"]["views_per_s"] > 0 and first["wall_time_s"] <= second["wall_time_s"]
    # the machine is lost with its run folder: the run starts again from step 0 elsewhere
    again = tmp_path / "again"
    assert pretrain(["--config", SMOKE, *TINY, "epochs=3", "--output-dir", str(again), "--stop-after-epoch", "1"]) == 3
    assert progress.main(["--run", str(again), "--out", str(record)]) == 0
    assert progress.read_progress(record)[-1]["lost_steps"] == 6


def test_a_run_restarted_in_its_own_folder_below_the_last_line_is_recorded_with_its_lost_steps(tiny, tmp_path):
    out, record = tmp_path / "run", tmp_path / "p.jsonl"
    assert pretrain(["--config", SMOKE, *TINY, "epochs=3", "--output-dir", str(out), "--stop-after-epoch", "2"]) == 3
    assert progress.main(["--run", str(out), "--out", str(record)]) == 0
    shutil.rmtree(out)  # the machine is lost with the folder; the campaign starts it again under the same name
    assert pretrain(["--config", SMOKE, *TINY, "epochs=3", "--output-dir", str(out), "--stop-after-epoch", "1"]) == 3
    assert progress.main(["--run", str(out), "--out", str(record)]) == 0
    first, again = progress.read_progress(record)
    assert (first["step"], again["step"], again["stretch"]["steps"], again["lost_steps"]) == (4, 2, [0, 2], 4)


def test_a_stop_between_log_records_is_recorded_at_the_saved_step(tiny, tmp_path):
    out, record = tmp_path / "run", tmp_path / "p.jsonl"
    args = ["--config", SMOKE, *TINY, "engine.log_every=100", "epochs=3", "--output-dir", str(out)]
    assert pretrain(args + ["--time-budget", "0"]) == 3  # stopped after step 1: no step record logged
    assert progress.main(["--run", str(out), "--out", str(record)]) == 0
    [line] = progress.read_progress(record)
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert line["step"] == 1 and line["stretch"]["steps"] == [0, 1]
    assert line["wall_time_s"] == round(saved["wall_time_s"], 1)


def test_progress_refuses_what_it_cannot_record(tiny, tmp_path, capsys):
    record = tmp_path / "p.jsonl"
    assert progress.main(["--run", str(tmp_path), "--out", str(record)]) == 2
    assert "not a pretraining run" in capsys.readouterr().err
    out = tmp_path / "r"
    args = ["--config", SMOKE, *TINY, "epochs=2", "--output-dir", str(out)]
    assert pretrain(args + ["--stop-after-epoch", "1"]) == 3
    assert pretrain(args + ["--resume", "--stop-after-epoch", "1"]) == 3  # a session that trained nothing
    assert progress.main(["--run", str(out), "--out", str(record)]) == 2
    assert "trained no step since its last start (step 2)" in capsys.readouterr().err
    assert not record.exists()


@pytest.mark.parametrize("previous, start", [(None, 0), ({"step": 3}, 3)])
def test_a_run_from_before_session_records_is_recorded_since_the_last_line(tmp_path, previous, start):
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.yaml").write_text("method: gca_uot\narch: resnet18_cifar\ndataset: cifar10\nbatch_size: 8\n"
                                     "epochs: 200\n")
    steps = [{"event": "step", "step": s, "epoch": 1, "loss": 1.0, "views_per_s": 10.0 * s, "elapsed_s": s}
             for s in range(1, 7)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps))
    line = progress.stretch_record(run, previous)
    assert line["stretch"]["steps"] == [start, 6] and line["stretch"]["hardware"] is None
    assert line["stretch"]["wall_time_s"] == 6 - start
    assert line["stretch"]["views_per_s"] == 10.0 * (start + 2 + 6) / 2  # median, the stretch's first left out
    assert line["stretch"]["mean_views_per_s"] == round(2 * 8 * (6 - start) / (6 - start), 1)  # views / wall time


@pytest.mark.parametrize("done, chosen", [
    ({"gca_uot": 0, "simclr": 0}, ("gca_uot", 50)),     # the flagship first
    ({"gca_uot": 20, "simclr": 0}, ("gca_uot", 50)),    # finish the milestone in progress
    ({"gca_uot": 50, "simclr": 0}, ("simclr", 50)),     # then the baseline catches up
    ({"gca_uot": 50, "simclr": 30}, ("simclr", 50)),
    ({"gca_uot": 50, "simclr": 50}, ("gca_uot", 100)),
    ({"gca_uot": 0, "simclr": 10}, ("simclr", 50)),     # whichever started first finishes first
    ({"gca_uot": 180, "simclr": 150}, ("gca_uot", 200)),  # the milestone in progress first
    ({"gca_uot": 200, "simclr": 199}, ("simclr", 200)),  # a completed method is never chosen
    ({"gca_uot": 200, "simclr": 200}, None),
])
def test_next_method_alternates_milestone_by_milestone(done, chosen):
    assert progress.next_method(done, milestone=50, epochs=200) == chosen


def test_a_lost_run_continues_from_its_milestone_release_only_when_it_is_one(monkeypatch):
    import otzoo
    from training.run.config import load_config

    cfg = load_config(str(Path(SMOKE)), ["epochs=200"])
    release = {"name": "gca_uot_resnet18_cifar10", "heads": {"filename": "heads.safetensors", "sha256": "0" * 64},
               "budget": {"epochs": 50, "steps": 50, "schedule": {"epochs": 200, "steps": 200}},
               "recipe": {"config": dict(cfg, method="gca_uot", output_dir="runs/x")}}
    registry = {release["name"]: release}
    monkeypatch.setattr(otzoo, "list_pretrained", lambda *a, **k: list(registry))
    monkeypatch.setattr(otzoo, "get_pretrained_cfg", lambda name: registry[name])
    gca = dict(cfg, method="gca_uot")
    assert progress.continuable_release("gca_uot", gca) == ("gca_uot_resnet18_cifar10", 50)
    assert progress.continuable_release("simclr", dict(cfg, method="simclr")) is None  # not released
    for changed in ({"heads": {}}, {"budget": {"epochs": 200, "steps": 200, "schedule": {"epochs": 200, "steps": 200}}},
                    {"budget": {"epochs": 16, "steps": 16}}, {"recipe": {"config": dict(cfg, epochs=16)}}):
        registry[release["name"]] = {**release, **changed}  # no heads, complete, not a milestone, another recipe
        assert progress.continuable_release("gca_uot", gca) is None, changed


@pytest.mark.parametrize("local, how", [(None, "resume-from:gca_uot_resnet18_cifar10"),   # machine lost
                                        (10, "resume-from:gca_uot_resnet18_cifar10"),     # a GPU window went further
                                        (50, "resume"), (60, "resume")])                 # the local run is not behind
def test_the_next_run_continues_whichever_of_local_folder_and_release_is_further(monkeypatch, tmp_path, local, how):
    import yaml

    import otzoo
    from training.run.config import load_config

    cfg = load_config(SMOKE, ["epochs=200"])
    recipe = tmp_path / "long.yaml"
    recipe.write_text(yaml.safe_dump(cfg))
    release = {"heads": {"filename": "heads.safetensors", "sha256": "0" * 64},
               "budget": {"epochs": 50, "steps": 50, "schedule": {"epochs": 200, "steps": 200}},
               "recipe": {"config": dict(cfg, method="gca_uot")}}
    monkeypatch.setattr(otzoo, "list_pretrained", lambda *a, **k: ["gca_uot_resnet18_cifar10"])
    monkeypatch.setattr(otzoo, "get_pretrained_cfg", lambda name: release)
    folder = tmp_path / "runs" / f"long_gca_uot_{cfg['arch']}"
    if local is not None:
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"")
        (folder / "metrics.jsonl").write_text(json.dumps({"event": "epoch", "epoch": local, "step": local}) + "\n")
    chosen = progress.next_run(tmp_path / "runs", str(recipe), ["gca_uot"])
    assert chosen.how == how and chosen.folder == folder.name and chosen.release == ("gca_uot_resnet18_cifar10", 50)
    assert (chosen.method, chosen.stop, chosen.local_epochs) == ("gca_uot", 75, local or 0)  # every 25 epochs
