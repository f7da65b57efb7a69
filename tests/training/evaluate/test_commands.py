import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import otzoo
import timm
from training.evaluate import commands as evaluate
from training.evaluate.loading import load_run_model
from training.evaluate.features import eval_transform, extract_features
from training.evaluate.knn import knn_top1
from training.evaluate.linear import WEIGHT_DECAYS, linear_top1, train_linear_probe

CLASSES = ["c0", "c1", "c2", "c3"]
COLORS = [(230, 40, 40), (40, 230, 40), (40, 40, 230), (230, 230, 40)]


# ----------------------------------------------------------------------------- helpers shared by tests/training
def make_image_tree(root: Path, n_train: int = 8, n_test: int = 4, classes=CLASSES, seed: int = 0,
                    noise: float = 25.0) -> Path:
    """train/ and test/ ImageFolder trees of 32x32 PNGs: one noisy colour per class."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, (name, color) in enumerate(zip(classes, COLORS)):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.clip(np.array(color)[None, None] + rng.normal(0, noise, (32, 32, 3)), 0, 255)
                Image.fromarray(img.astype(np.uint8)).save(d / f"{i:04d}.png")
    return root


def make_run_dir(path: Path, arch: str = "resnet18_cifar", method: str = "gca_uot", dataset: str = "cifar10",
                 data_dir=None, seed: int = 0) -> Path:
    """A finished-run directory per COMMON.md: random backbone.safetensors + run.json (+ a curves.png)."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    model = otzoo.create_model(arch, num_classes=0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "backbone.safetensors"))
    config = {"method": method, "arch": arch, "epochs": 1, "batch_size": 8, "seed": seed}
    (path / "run.json").write_text(json.dumps({
        "method": method, "arch": arch, "dataset": dataset, "data_dir": str(data_dir) if data_dir else None,
        "data_variant": "synthetic test images", "epochs": 1, "steps": 4, "views_seen": 64, "batch_size": 8,
        "world_size": 1, "seed": seed, "wall_time_s": 12.5, "hardware": "test",
        "hardware_spans": [{"hardware": "test", "steps": [0, 4], "wall_time_s": 12.5}], "otzoo_version": otzoo.__version__,
        "torch_version": torch.__version__, "command": "python -m training pretrain --config test.yaml",
        "config": config, "final_loss": 1.0}))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path / "curves.png")
    return path


# ----------------------------------------------------------------------------- CLI
def test_knn_and_linear_cli_on_run_dir(tmp_path, capsys):
    data = make_image_tree(tmp_path / "data", n_train=4, n_test=2)
    run = make_run_dir(tmp_path / "run")
    out = tmp_path / "knn.json"
    assert evaluate.main(["--run", str(run), "--data-dir", str(data), "--json-out", str(out)],
                         prog="knn", command="knn") == 0
    res = json.loads(out.read_text())
    assert res["num_train"] == 16 and res["num_test"] == 8
    # independent recomputation with the public functions
    model = load_run_model(run)
    from torchvision.datasets import ImageFolder
    tf = eval_transform(model)
    tr = extract_features(model, ImageFolder(str(data / "train"), transform=tf))
    te = extract_features(model, ImageFolder(str(data / "test"), transform=tf))
    assert res["knn_top1"] == round(knn_top1(*tr, *te), 2)
    assert "knn top-1" in capsys.readouterr().out

    out = tmp_path / "linear.json"
    assert evaluate.main(["--run", str(run), "--data-dir", str(data), "--json-out", str(out), "--max-iter", "20"],
                         prog="linear", command="linear") == 0
    res = json.loads(out.read_text())
    head, _ = train_linear_probe(*tr, 4, max_iter=20)
    assert res["linear_top1"] == round(linear_top1(head, *te), 2)
    assert res["probe"]["weight_decay"] in WEIGHT_DECAYS


def test_finetune_cli_runs_and_reports(tmp_path):
    data = make_image_tree(tmp_path / "data", n_train=4, n_test=2)
    run = make_run_dir(tmp_path / "run")
    out = tmp_path / "ft.json"
    assert evaluate.main(["--run", str(run), "--data-dir", str(data), "--epochs", "1", "--batch-size", "8",
                          "--json-out", str(out)], prog="finetune", command="finetune") == 0
    res = json.loads(out.read_text())
    assert 0.0 <= res["finetune_top1"] <= 100.0 and res["num_test"] == 8
    assert np.isfinite(res["final_loss"])
    assert res["recipe"]["epochs"] == 1 and res["num_labelled"] == 16 and res["command_line"].startswith("finetune")

    assert evaluate.main(["--scratch", "resnet18_cifar", "--data-dir", str(data), "--epochs", "1",
                          "--label-fraction", "0.5", "--backbone-lr-scale", "0.5", "--json-out", str(out)],
                         prog="finetune", command="finetune") == 0
    res = json.loads(out.read_text())
    assert res["source"] == "random init (resnet18_cifar)" and res["num_labelled"] == 8  # 2 of 4 per class
    assert res["recipe"]["backbone_lr_scale"] == 0.5 and res["recipe"]["label_fraction"] == 0.5
    assert res["input_size"] == 32  # the architecture's own


def test_finetune_img_size_sets_the_transforms_and_is_recorded(tmp_path):
    data = make_image_tree(tmp_path / "data", n_train=4, n_test=2)
    out = tmp_path / "ft.json"
    assert evaluate.main(["--scratch", "resnet18_cifar", "--img-size", "24", "--data-dir", str(data), "--epochs", "1",
                          "--json-out", str(out)], prog="finetune", command="finetune") == 0
    assert json.loads(out.read_text())["input_size"] == 24
    args = evaluate.build_parser("finetune", "finetune").parse_args(["--scratch", "resnet18_cifar", "--img-size", "24"])
    model, _ = evaluate._load_source(args)
    assert evaluate.finetune_transform(model).transforms[0].size == (24, 24)
    assert evaluate.eval_transform(model)(Image.new("RGB", (40, 40))).shape == (3, 24, 24)


def test_img_size_is_refused_for_a_vit_at_another_size():
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    with pytest.raises(ValueError, match="drop --img-size"):
        evaluate._set_input_size(vit, 128)
    evaluate._set_input_size(vit, 224)  # its own size is fine


def test_cli_errors_are_clear(tmp_path, capsys):
    assert evaluate.main(["--run", str(tmp_path)], prog="knn", command="knn") == 2
    assert "backbone.safetensors" in capsys.readouterr().err
    run = make_run_dir(tmp_path / "run")
    assert evaluate.main(["--run", str(run), "--data-dir", str(tmp_path / "nope")], prog="knn", command="knn") == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("command", ["knn", "linear", "finetune", "export"])
def test_an_unreadable_image_is_one_line_naming_the_file_exit_2(tmp_path, capsys, command, workers):
    from training.release import export

    data = make_image_tree(tmp_path / "data", n_train=2, n_test=2)
    bad = data / "test" / "c1" / "0001.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    args = ["--run", str(make_run_dir(tmp_path / "run")), "--data-dir", str(data), "--workers", str(workers)]
    if command == "export":
        rc = export.main(args + ["--root", str(tmp_path / "root"), "--subset-size", "4"])
    else:
        rc = evaluate.main(args + (["--epochs", "1"] if command == "finetune" else []), prog=command, command=command)
    err = capsys.readouterr().err  # the feature passes' progress bars come before
    assert rc == 2 and "Traceback" not in err
    assert err.split("\r")[-1].strip().startswith(f"error: cannot decode {bad}") and err.count("error:") == 1
    assert not (tmp_path / "root" / "weights").exists()


@pytest.mark.parametrize("command", ["knn", "linear", "finetune", "export"])
def test_splits_with_different_classes_are_refused(tmp_path, capsys, command):
    from training.release import export

    data = make_image_tree(tmp_path / "data")
    (data / "test" / "c0").rename(data / "test" / "zz")  # the test split's first class folder is named otherwise
    run = make_run_dir(tmp_path / "run")
    args = ["--run", str(run), "--data-dir", str(data)]
    if command == "export":
        rc = export.main(args + ["--root", str(tmp_path / "root"), "--subset-size", "4"])
    else:
        rc = evaluate.main(args, prog=command, command=command)
    assert rc == 2
    err = capsys.readouterr().err
    assert "train split has classes ['c0'" in err and "'zz']" in err and "every accuracy would be wrong" in err
    assert not (tmp_path / "root" / "weights").exists()
