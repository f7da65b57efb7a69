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
from training.run.progress import MILESTONE_EVERY
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
    assert seconds["return_calls"] == -(-len(item.methods) * item.returned_bytes // (60 * MIB))
    used = seconds["start_s"] + seconds["command_s"] + (seconds["return_calls"] - 1) * 30 + seconds["margin_s"]
    assert used <= 900 and seconds["command_s"] <= 600
    releases = {m: (f"{m}_resnet18_cifar10", 175) for m in item.methods}  # the longest names it can carry
    cmd = (campaign_command(item, releases, 200, seconds["command_s"], probe_s=150, pack_s=60) if item.campaign else
           device_command(item, seconds["command_s"], probe_s=150, pack_s=60))
    assert len(cmd) <= COMMAND_LIMIT
    assert f"--config {item.recipe}" in cmd and "OTZOO_WINDOW_CHECK=0" in cmd and f"tar xzf .carry/{item.data}" in cmd
    assert all(f"--method {m}" in cmd for m in item.methods) and "--together" in cmd
    run_s = seconds["command_s"] - 150 - 60
    assert f"--budget {run_s}s" in cmd and f"gpu_window.sh {item.recipe} {run_s}s {item.methods[0]}" in cmd


@pytest.mark.parametrize("fitted, stops", [(35, (35, 60)), (80, (80, 105)), (170, (170, 195)), (190, (190, 200))])
def test_the_campaign_trains_both_from_their_releases_for_the_epochs_that_fit_to_the_recipes_end(fitted, stops):
    """simclr behind gca_uot by one milestone (the CPU's alternation): both get the same epochs, so the gap stays."""
    starts = {"simclr": None, "gca_uot": ("gca_uot_resnet18_cifar10", 25)}
    cmd = campaign_command(QUEUE["campaign"], starts, 200, 600, probe_s=150, pack_s=60)
    assert "epochs=" not in cmd  # the schedule stays the recipe's 200 epochs
    assert "--together --probe-epochs 2" in cmd and "--method simclr --method gca_uot" in cmd
    assert (" simclr:--stop-after-epoch=$S0 gca_uot:--stop-after-epoch=$S1,--resume-from=gca_uot_resnet18_cifar10 "
            f"-- --milestone-every {MILESTONE_EVERY} data.cache_dir=/tmp/c") in cmd
    arithmetic = cmd[cmd.index("S0=$(("):cmd.index(" && bash training/gpu_window.sh")]
    shown = subprocess.run(["bash", "-c", f"E={fitted}; {arithmetic}; echo $S0 $S1"], capture_output=True, text=True)
    assert tuple(map(int, shown.stdout.split())) == stops


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
    for method in ("gca_uot", "simclr"):
        assert f"campaign: {method} from step 0, for the epochs that fit (at most to epoch 200)" in out
        assert f"{method}:--stop-after-epoch=$S" in out
        assert f"export --run runs/cifar10_long_{method}/milestone-EEE --supersede" in out
        assert f"progress --run runs/cifar10_long_{method}/milestone-EEE --out results/campaign/{method}.jsonl" in out
    assert "--resume-from" not in out
    assert (campaign_repo / ".carry" / "cifar10.tgz").is_file()


def test_a_local_run_ahead_of_the_window_says_how_to_make_it_travel(campaign_repo, tmp_path, monkeypatch, capsys):
    import otzoo

    monkeypatch.setattr(otzoo, "list_pretrained", lambda *a, **k: [])  # no release: the shipped ones may be milestones
    folder = tmp_path / "runs" / "cifar10_long_gca_uot_resnet18_cifar"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"mid-epoch 15")
    (folder / "metrics.jsonl").write_text('{"event": "epoch", "epoch": 14, "step": 1358}\n')
    git(campaign_repo, *shlex.split(HIDE_WEIGHTS)[1:])
    assert main(["campaign", "--data", str(tmp_path / "cifar10"), "--repo", str(campaign_repo), "--runs",
                 str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "campaign: gca_uot from step 0, for the epochs that fit" in out
    assert f"the local run {folder} is at epoch 14: the window pays off only if it passes that epoch" in out
    assert f"pretrain --resume --output-dir {folder} --stop-after-epoch 15\n" in out
    assert f"export --run {folder}/milestone-015 --supersede\n" in out


def test_a_campaign_window_from_releases_carries_those_releases_and_no_other_weight(campaign_repo, tmp_path,
                                                                                    monkeypatch, capsys):
    import otzoo

    (campaign_repo / "weights" / "simclr_resnet18_cifar10").mkdir()
    (campaign_repo / "weights" / "simclr_resnet18_cifar10" / "model.safetensors").write_bytes(b"1" * 1000)
    git(campaign_repo, "add", ".")
    git(campaign_repo, "commit", "-qm", "simclr's release")

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
    assert "gca_uot from release gca_uot_resnet18_cifar10 (epoch 50), for the epochs that fit" in out
    keep = hide_weights(*names)
    assert keep == HIDE_WEIGHTS + " '/weights/gca_uot_resnet18_cifar10/' '/weights/simclr_resnet18_cifar10/'"
    assert all(f"release {name}, which must travel: {keep}" in err for name in names)
    git(campaign_repo, *shlex.split(keep)[1:])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "gca_uot:--stop-after-epoch=$S0,--resume-from=gca_uot_resnet18_cifar10 " in out
    assert "simclr:--stop-after-epoch=$S1,--resume-from=simclr_resnet18_cifar10 " in out
    assert "S0=$(( 50 + E < 200 ? 50 + E : 200 ))" in out
    assert sorted(travelling_bytes(campaign_repo)) == [".gitignore", "code.py", "training", "weights"]
    weights = campaign_repo / "weights"
    assert all((weights / name).is_dir() for name in names) and not (weights / "w").exists()


def test_a_method_that_has_completed_the_recipe_is_left_out_and_with_both_there_is_no_window(campaign_repo, tmp_path,
                                                                                             monkeypatch, capsys):
    import otzoo

    monkeypatch.setattr(otzoo, "list_pretrained", lambda *a, **k: [])  # no release: the shipped ones may be milestones
    def complete(method):
        folder = tmp_path / "runs" / f"cifar10_long_{method}_resnet18_cifar"
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"end of epoch 200")
        (folder / "metrics.jsonl").write_text('{"event": "epoch", "epoch": 200, "step": 19400}\n')

    git(campaign_repo, *shlex.split(HIDE_WEIGHTS)[1:])
    args = ["campaign", "--data", str(tmp_path / "cifar10"), "--repo", str(campaign_repo), "--runs",
            str(tmp_path / "runs")]
    complete("gca_uot")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "campaign: simclr from step 0" in out and "campaign: gca_uot" not in out
    assert "--method simclr " in out and "--method gca_uot" not in out and "--together" not in out
    assert " simclr:--stop-after-epoch=$S0 -- " in out
    complete("simclr")
    assert main(args) == 2
    assert "every method of the campaign has completed training/configs/cifar10_long.yaml" in capsys.readouterr().err
