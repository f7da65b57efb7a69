"""training.run.window (window-plan): what a device call would send, the carried data, the window's arithmetic."""
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import save

from training.run.config import load_config
from training.run.methods import build_method
from training.run.progress import NextRun
from training.run.window import (COMMAND_LIMIT, HIDE_WEIGHTS, MIB, QUEUE, SHOW_WEIGHTS, campaign_command,
                                 device_command, hide_weights, main, pack_data, travelling_bytes, window_seconds)


REPO = Path(__file__).resolve().parents[3]


def git(repo, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A checkout whose tracked weights/ (65 MiB, sparse) is over the limit, beside small code."""
    repo = tmp_path / "repo"
    (repo / "weights" / "w").mkdir(parents=True)
    with open(repo / "weights" / "w" / "model.safetensors", "wb") as f:
        f.truncate(65 * MIB)
    (repo / "code.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("/.carry/\nruns/\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    return repo


@pytest.fixture
def imagenette(tmp_path):
    root = tmp_path / "imagenette"
    for split, n in (("train", 3), ("val", 2)):
        (root / split / "n01").mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (224, 300), (i * 40, 90, 200)).save(root / split / "n01" / f"{i}.JPEG")
    return root


def test_what_travels_is_on_disk_and_not_ignored_plus_the_carry(repo):
    (repo / "new.py").write_text("y = 2\n")              # untracked, not ignored: travels
    (repo / "runs").mkdir()
    (repo / "runs" / "ckpt").write_bytes(b"0" * 5000)    # ignored: stays
    (repo / ".carry").mkdir()
    (repo / ".carry" / "data.tgz").write_bytes(b"0" * 3000)
    sizes = travelling_bytes(repo, [".carry/data.tgz"])
    assert sizes["weights"] == 65 * MIB and sizes["new.py"] == 6 and sizes[".carry"] == 3000 and "runs" not in sizes
    git(repo, *shlex.split(HIDE_WEIGHTS)[1:])
    assert "weights" not in travelling_bytes(repo) and not (repo / "weights").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status == "?? new.py\n"  # hidden, not deleted: nothing to commit
    git(repo, *shlex.split(SHOW_WEIGHTS)[1:])
    assert travelling_bytes(repo)["weights"] == 65 * MIB


def test_the_data_is_packed_once_at_its_size_with_both_splits(imagenette, tmp_path):
    dest = pack_data(imagenette, tmp_path / ".carry" / "im.tgz", size=48)
    with tarfile.open(dest) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        assert sorted(names) == ["train/n01/0.jpg", "train/n01/1.jpg", "train/n01/2.jpg", "val/n01/0.jpg",
                                 "val/n01/1.jpg"]
        tar.extract("val/n01/0.jpg", tmp_path / "x")
    assert min(Image.open(tmp_path / "x" / "val" / "n01" / "0.jpg").size) == 48
    stamp = dest.stat().st_mtime_ns
    assert pack_data(imagenette, dest, size=48).stat().st_mtime_ns == stamp  # kept for the next window
    with pytest.raises(FileNotFoundError, match="lacks train/ and val/"):
        pack_data(imagenette / "train", tmp_path / "other.tgz")  # a split, not the root
    assert not (tmp_path / "other.tgz").exists()


@pytest.mark.parametrize("name", sorted(QUEUE))
def test_each_item_fits_the_device_time_and_its_command_the_limits(name):
    item = QUEUE[name]
    seconds = window_seconds(item, start_s=120, return_s=30)
    assert seconds["return_calls"] == -(-item.trained * item.returned_bytes // (60 * MIB))
    used = seconds["start_s"] + seconds["command_s"] + (seconds["return_calls"] - 1) * 30 + seconds["margin_s"]
    assert used <= 900 and seconds["command_s"] <= 600
    run = NextRun(item.methods[0], 50, "folder", "start", 0, None)
    cmd = (campaign_command(item, run, seconds["command_s"], probe_s=150, pack_s=60) if item.campaign else
           device_command(item, seconds["command_s"], probe_s=150, pack_s=60))
    assert len(cmd) <= COMMAND_LIMIT
    assert f"--config {item.recipe}" in cmd and "OTZOO_WINDOW_CHECK=0" in cmd and f"tar xzf .carry/{item.data}" in cmd
    trained = item.methods[:item.trained]
    assert all(f"--method {m}" in cmd for m in trained) and ("--together" in cmd) == (len(trained) > 1)
    run_s = seconds["command_s"] - 150 - 60
    assert f"--budget {run_s}s" in cmd and f"gpu_window.sh {item.recipe} {run_s}s {' '.join(trained)} --" in cmd


@pytest.mark.parametrize("release, fitted, stop_after", [(None, 35, 35), (None, 80, 50),
                                                         (("gca_uot_resnet18_cifar10", 50), 30, 80),
                                                         (("gca_uot_resnet18_cifar10", 50), 70, 100)])
def test_the_campaign_continues_its_release_for_the_epochs_that_fit_up_to_its_milestone(release, fitted,
                                                                                        stop_after):
    run = NextRun("gca_uot", 50 if release is None else 100, "folder", "start", 0, release)
    cmd = campaign_command(QUEUE["campaign"], run, 600, probe_s=150, pack_s=60)
    assert ("--resume-from gca_uot_resnet18_cifar10 " in cmd) == (release is not None)
    assert "epochs=" not in cmd  # the schedule stays the recipe's 200 epochs
    arithmetic = cmd[cmd.index("S=$(("):cmd.index(" && bash training/gpu_window.sh")]
    shown = subprocess.run(["bash", "-c", f"E={fitted}; {arithmetic}; echo $S"], capture_output=True, text=True)
    assert int(shown.stdout) == stop_after and "--stop-after-epoch $S" in cmd


def test_the_campaign_data_travels_as_it_is(tmp_path):
    root = tmp_path / "cifar10"
    for split in ("train", "test"):
        (root / split / "cat").mkdir(parents=True)
        Image.new("RGB", (32, 32), (9, 90, 200)).save(root / split / "cat" / "0.jpg", quality=75)
    dest = pack_data(root, tmp_path / "c.tgz", size=None, splits=("train", "test"))
    with tarfile.open(dest) as tar:
        assert sorted(m.name for m in tar.getmembers() if m.isfile()) == ["test/cat/0.jpg", "train/cat/0.jpg"]
        assert tar.extractfile("test/cat/0.jpg").read() == (root / "test" / "cat" / "0.jpg").read_bytes()
    with pytest.raises(FileNotFoundError, match=r"lacks train/ and test/: give the dataset's root \(with train/"):
        pack_data(root / "train", tmp_path / "d.tgz", size=None, splits=("train", "test"))


def test_the_vit_pair_needs_six_return_calls():
    assert window_seconds(QUEUE["vit"], 120, 30)["return_calls"] == 6  # ~351 MB in calls of 60 MiB


def test_what_comes_back_is_counted_from_the_model_as_gpu_window_writes_it():
    """The campaign's model built for real, its state cast to fp16 as the window returns it: the bytes the plan
    counts on the meta device, plus only the safetensors headers."""
    state = build_method(load_config(QUEUE["campaign"].recipe)).state_dict()
    fp16 = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    written = len(save(fp16))
    assert QUEUE["campaign"].returned_bytes <= written <= QUEUE["campaign"].returned_bytes + 64 * 1024
    assert 24 * 10 ** 6 < written < 26 * 10 ** 6  # resnet18_cifar and its projector


def test_a_command_with_no_time_left_to_train_is_refused():
    with pytest.raises(ValueError, match="leave 30 s to train"):
        device_command(QUEUE["vit"], 240, probe_s=150, pack_s=60)


def test_the_plan_says_to_hide_the_weights_when_over_the_limit(repo, imagenette, capsys):
    assert main(["resnet50", "--data", str(imagenette), "--repo", str(repo)]) == 2
    out, err = capsys.readouterr()
    assert "would travel, over 64 MiB: hide the weights" in err and HIDE_WEIGHTS in err and SHOW_WEIGHTS in err
    assert (repo / ".carry" / "imagenette144.tgz").is_file() and "command (" in out
    git(repo, *shlex.split(HIDE_WEIGHTS)[1:])
    assert main(["resnet50", "--data", str(imagenette), "--repo", str(repo)]) == 0
    assert 'carry=[".carry/imagenette144.tgz"]' in capsys.readouterr().out


def test_a_data_root_without_val_is_refused_with_nothing_written(repo, imagenette, capsys):
    assert main(["vit", "--data", str(imagenette / "train"), "--repo", str(repo)]) == 2
    assert "lacks train/ and val/" in capsys.readouterr().err and not (repo / ".carry").exists()


@pytest.fixture
def campaign_repo(repo, tmp_path):
    """The checkout with the campaign's recipe and a (small) release of gca_uot in weights/, and a CIFAR tree."""
    (repo / "training" / "configs").mkdir(parents=True)
    (repo / QUEUE["campaign"].recipe).write_text((REPO / QUEUE["campaign"].recipe).read_text())
    (repo / "weights" / "gca_uot_resnet18_cifar10").mkdir()
    (repo / "weights" / "gca_uot_resnet18_cifar10" / "model.safetensors").write_bytes(b"0" * 1000)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "recipe and release")
    for split in ("train", "test"):
        (tmp_path / "cifar10" / split / "cat").mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(tmp_path / "cifar10" / split / "cat" / "0.jpg")
    return repo


def test_the_campaign_plan_starts_the_method_behind_from_step_0_and_says_how_to_release_it(campaign_repo, tmp_path,
                                                                                          monkeypatch, capsys):
    import otzoo

    monkeypatch.setattr(otzoo, "list_pretrained", lambda *a, **k: [])  # no milestone released yet
    args = ["campaign", "--data", str(tmp_path / "cifar10"), "--repo", str(campaign_repo), "--runs",
            str(tmp_path / "runs")]
    git(campaign_repo, *shlex.split(HIDE_WEIGHTS)[1:])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "campaign: gca_uot from step 0 towards its milestone at epoch 25" in out
    assert "--stop-after-epoch $S data.cache_dir" in out and "--resume-from" not in out
    assert "export --run runs/cifar10_long_gca_uot/milestone-EEE --supersede" in out
    assert (campaign_repo / ".carry" / "cifar10.tgz").is_file()


def test_a_local_run_ahead_of_the_window_says_how_to_make_it_travel(campaign_repo, tmp_path, capsys):
    folder = tmp_path / "runs" / "cifar10_long_gca_uot_resnet18_cifar"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"mid-epoch 15")
    (folder / "metrics.jsonl").write_text('{"event": "epoch", "epoch": 14, "step": 1358}\n')
    git(campaign_repo, *shlex.split(HIDE_WEIGHTS)[1:])
    assert main(["campaign", "--data", str(tmp_path / "cifar10"), "--repo", str(campaign_repo), "--runs",
                 str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "campaign: gca_uot from step 0 towards its milestone at epoch 25" in out
    assert f"the local run {folder} is at epoch 14: the window pays off only if it passes that epoch" in out
    assert f"pretrain --resume --output-dir {folder} --stop-after-epoch 15\n" in out
    assert f"export --run {folder}/milestone-015 --supersede\n" in out


def test_a_campaign_window_from_a_release_carries_that_release_and_no_other_weight(campaign_repo, tmp_path,
                                                                                   monkeypatch, capsys):
    import otzoo

    cfg = load_config(str(campaign_repo / QUEUE["campaign"].recipe))
    release = {"heads": {"filename": "heads.safetensors", "sha256": "0" * 64}, "recipe": {"config": cfg},
               "budget": {"epochs": 50, "steps": 4850, "schedule": {"epochs": 200, "steps": 19400}}}
    names = ["gca_uot_resnet18_cifar10", "simclr_resnet18_cifar10"]  # both at the first milestone
    monkeypatch.setattr(otzoo, "list_pretrained", lambda *a, **k: names)
    monkeypatch.setattr(otzoo, "get_pretrained_cfg", lambda name: release)
    args = ["campaign", "--data", str(tmp_path / "cifar10"), "--repo", str(campaign_repo), "--runs",
            str(tmp_path / "runs")]
    git(campaign_repo, *shlex.split(HIDE_WEIGHTS)[1:])
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert "gca_uot from release gca_uot_resnet18_cifar10 (epoch 50) towards its milestone at epoch 75" in out
    keep = hide_weights("gca_uot_resnet18_cifar10")
    assert f"release gca_uot_resnet18_cifar10, which must travel: {keep}" in err
    git(campaign_repo, *shlex.split(keep)[1:])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "--stop-after-epoch $S --resume-from gca_uot_resnet18_cifar10 " in out and "S=$(( 50 + E < 75" in out
    assert sorted(travelling_bytes(campaign_repo)) == [".gitignore", "code.py", "training", "weights"]
    weights = campaign_repo / "weights"
    assert (weights / "gca_uot_resnet18_cifar10").is_dir() and not (weights / "w").exists()
