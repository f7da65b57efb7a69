"""A campaign milestone: pretrain --stop-after-epoch writes <run>/milestone-<epoch>/, which export releases like a
finished run, with its heads and where it stands in the schedule; the run itself continues."""
import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from otzoo.models import sha256_file, unregister_pretrained
from tests.training.evaluate.test_commands import make_image_tree
from training.release import export, readme
from training.run.pretrain import main as pretrain

SMOKE = str(Path(__file__).resolve().parents[3] / "training" / "configs" / "smoke.yaml")
NAME = "simclr_resnet18_milestonetest"
TINY = ["data.subset=32", "batch_size=16", "epochs=3", "model.proj_hidden=32", "model.proj_dim=8",
        "engine.precision=fp32", "engine.compile=false", "engine.progress=false"]


@pytest.mark.slow
def test_a_milestone_is_released_like_a_finished_run_and_says_where_it_stands(tmp_path):
    data = make_image_tree(tmp_path / "data")
    out = tmp_path / "run"
    args = ["--config", SMOKE, "--data-dir", str(data), *TINY, "--output-dir", str(out)]
    assert pretrain(args + ["--stop-after-epoch", "1"]) == 3
    milestone = out / "milestone-001"
    assert {"backbone.safetensors", "heads.safetensors", "run.json", "config.yaml", "metrics.jsonl",
            "checkpoint.pt"} <= {p.name for p in milestone.iterdir()}
    run = json.loads((milestone / "run.json").read_text())
    assert (run["epochs"], run["steps"], run["schedule"]) == (1, 2, {"epochs": 3, "steps": 6})
    assert all(k.startswith("projector.") for k in load_file(str(milestone / "heads.safetensors")))

    root = tmp_path / "root"
    root.mkdir()
    (root / "README.md").write_text(f"# x\n\n{readme.START}\n{readme.END}\n")
    try:
        cfg = export.export_run(milestone, NAME, root, data_dir=str(data), subset_size=8, max_iter=20,
                                progress=False).to_dict()
        assert (cfg["budget"]["epochs"], cfg["recipe"]["epochs"], cfg["budget"]["schedule"]["epochs"]) == (1, 3, 3)
        heads = root / "weights" / NAME / "heads.safetensors"
        assert cfg["heads"] == {"filename": "heads.safetensors", "sha256": sha256_file(heads)}
        assert {str(v.dtype) for v in load_file(str(heads)).values() if v.is_floating_point()} == {"torch.float16"}
        card = (root / "model_cards" / f"{NAME}.md").read_text()
        assert "a milestone of a 3-epoch schedule (6 steps)" in card and "`heads.safetensors`" in card
        assert pretrain(args + ["--resume"]) == 0  # the run itself goes on to the end of its schedule
        assert json.loads((out / "run.json").read_text())["epochs"] == 3 and (out / "heads.safetensors").is_file()
        (root / "weights" / NAME / "stale.png").write_bytes(b"")  # a figure of the replaced release only
        final = export.export_run(out, NAME, root, data_dir=str(data), subset_size=8, max_iter=20, progress=False,
                                  supersede="yes")  # the schedule's end replaces its milestone
    finally:
        unregister_pretrained(NAME)
    [kept] = (root / "results" / "superseded").iterdir()  # the milestone's record stays
    assert kept.name.endswith(".e001.json") and json.loads(kept.read_text())["sha256"] == cfg["sha256"]
    assert "milestones.png" in final.figures and (root / "weights" / NAME / "milestones.png").is_file()
    assert "stale.png" not in final.figures and not (root / "weights" / NAME / "stale.png").exists()
    card = (root / "model_cards" / f"{NAME}.md").read_text()
    assert "## Milestones of this run" in card and "![milestones.png](milestones.png)" in card
    assert "| 1 of 3 |" in card and f"replaced, sha256 `{cfg['sha256'][:12]}`" in card


@pytest.fixture
def released(tmp_path, monkeypatch):
    """A tiny simclr release with its heads, in $OTZOO_WEIGHTS_DIR, registered; and the data it came from."""
    data = make_image_tree(tmp_path / "data")
    run = tmp_path / "run"
    assert pretrain(["--config", SMOKE, "--data-dir", str(data), *TINY, "epochs=1", "--output-dir", str(run)]) == 0
    root = tmp_path / "root"
    root.mkdir()
    (root / "README.md").write_text(f"# x\n\n{readme.START}\n{readme.END}\n")
    cfg = export.export_run(run, NAME, root, data_dir=str(data), subset_size=8, max_iter=20,
                            progress=False).to_dict()
    monkeypatch.setenv("OTZOO_WEIGHTS_DIR", str(root / "weights"))
    yield cfg, root / "weights" / NAME, data
    unregister_pretrained(NAME)


@pytest.mark.slow
def test_init_starts_a_new_run_from_a_release_on_your_own_tree(released, tmp_path, capsys):
    import torch

    cfg, folder, _ = released
    mine = make_image_tree(tmp_path / "mine", classes=["x0", "x1", "x2", "x3"], seed=3)  # a user's own images
    out = tmp_path / "continued"
    args = ["--config", SMOKE, "--data-dir", str(mine), *TINY, "epochs=1", "dataset=my_images", "data.decode_size=32",
            "--output-dir", str(out)]
    assert pretrain(args + ["--init", NAME, "--time-budget", "0"]) == 3  # one step, then stop
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["init"] == {"name": NAME, "sha256": cfg["sha256"], "heads": True, "epochs": 1}
    shipped = load_file(str(folder / "model.safetensors"))
    moved = max((state["model"][f"backbone.{k}"].float() - v.float()).abs().max().item()
                for k, v in shipped.items() if k.startswith("conv1."))
    assert 0 < moved < 0.1  # one SGD step away from the release, not from a random init
    assert pretrain(args + ["--resume"]) == 0
    assert json.loads((out / "run.json").read_text())["init"]["name"] == NAME


@pytest.mark.slow
def test_init_refuses_a_tampered_heads_file_and_writes_nothing(released, tmp_path, capsys):
    cfg, folder, data = released
    heads = folder / "heads.safetensors"
    raw = bytearray(heads.read_bytes())
    raw[-1] ^= 1
    heads.write_bytes(bytes(raw))
    out = tmp_path / "never"
    args = ["--config", SMOKE, "--data-dir", str(data), *TINY, "--output-dir", str(out), "--init", NAME]
    assert pretrain(args) == 2
    err = capsys.readouterr().err
    assert f"--init {NAME}" in err and "sha256" in err and not out.exists()
    assert pretrain(args[:-2] + ["arch=resnet50_cifar", "--init", NAME]) == 2
    assert "set arch=resnet18_cifar" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_from_a_milestone_on_a_fresh_folder_ends_near_the_uninterrupted_run(tmp_path, monkeypatch, capsys):
    """The machine is lost after a milestone: the run continues from the release alone (fp16 weights, heads, its
    step) and ends within 2% of the uninterrupted run's last-epoch loss (momentum rebuilt under a re-warmup)."""
    from training.run.metrics import read_records

    data = make_image_tree(tmp_path / "data")
    base = ["--config", SMOKE, "--data-dir", str(data), *TINY, "epochs=4"]
    straight, lost = tmp_path / "straight", tmp_path / "lost"
    assert pretrain(base + ["--output-dir", str(straight)]) == 0
    assert pretrain(base + ["--output-dir", str(lost), "--stop-after-epoch", "2"]) == 3
    root = tmp_path / "root"
    root.mkdir()
    (root / "README.md").write_text(f"# x\n\n{readme.START}\n{readme.END}\n")
    monkeypatch.setenv("OTZOO_WEIGHTS_DIR", str(root / "weights"))
    export.export_run(lost / "milestone-002", NAME, root, data_dir=str(data), subset_size=8, max_iter=20,
                      progress=False)
    try:
        again = tmp_path / "elsewhere"
        assert pretrain(base + ["--output-dir", str(again), "--resume-from", NAME, "optim.lr=0.5"]) == 2
        assert "the recipe differs from the one that produced it in ['optim.lr']" in capsys.readouterr().err
        assert not again.exists()
        assert pretrain(["--resume-from", NAME, "--data-dir", str(data), "--output-dir", str(again),
                         "engine.progress=false"]) == 0
    finally:
        unregister_pretrained(NAME)
    run = json.loads((again / "run.json").read_text())
    assert run["steps"] == 8 and run["restarts"][0]["step"] == 4 and run["restarts"][0]["rewarmup_steps"] == 2
    assert run["command"].endswith("epochs=4 --output-dir runs/lost")  # the command that started the run
    from training.release import cards

    row = cards._restart_rows({"restarts": run["restarts"]})[0]
    assert row.startswith(f"| Restart | at step 4 from the release `{NAME}`") and "2-step linear re-warmup" in row

    def last_epoch_loss(out):
        return [r["loss"] for r in read_records(out) if r["event"] == "epoch"][-1]

    assert last_epoch_loss(again) == pytest.approx(last_epoch_loss(straight), rel=0.02)


@pytest.mark.parametrize("name, message", [
    # a 16-epoch release from before heads, outside the campaign (whose milestones ship heads: gca_uot's do)
    ("byol_resnet18_cifar10", "ships no pretraining heads"),
    ("nosuch_resnet18_cifar10", "Unknown otzoo model"),
])
def test_resume_from_what_cannot_be_continued_says_what_to_do(tmp_path, capsys, name, message):
    assert pretrain(["--resume-from", name, "--output-dir", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "r").exists()
