import csv
import hashlib
import json

import pytest
import torch
from torchvision.datasets import ImageFolder

import otzoo
from otzoo.models import unregister_pretrained
from training.release import cards, export, readme
from training.evaluate import commands as evaluate
from training.evaluate.features import extract_features, feature_geometry
from training.evaluate.knn import knn_top1
from training.evaluate.linear import WEIGHT_DECAYS
from tests.training.evaluate.test_commands import make_image_tree, make_run_dir

NAME = "gca_uot_resnet18_exporttest"
PLAN_PNG = b"\x89PNG\r\n\x1a\n"
PLAN_MASS = {"batch": 8, "seed": 0, "positives": 0.25, "positives_uniform": 0.125, "same_class": 0.5,
             "same_class_uniform": 0.25}
REQUIRED = ["name", "tag", "hf_hub_id", "filename", "sha256", "architecture", "num_classes", "label_names",
            "input_size", "mean", "std", "interpolation", "crop_pct", "first_conv", "classifier", "method",
            "dataset", "recipe", "budget", "metrics", "paper", "license"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export of a random backbone into a temp root (with a README holding the markers)."""
    tmp = tmp_path_factory.mktemp("export")
    data = make_image_tree(tmp / "data")
    for c in range(4):  # mislabel one test image per class, so top-1 <= 75 and a wrong count shows
        (data / "test" / f"c{c}" / "0000.png").rename(data / "test" / f"c{(c + 1) % 4}" / "9000.png")
    run = make_run_dir(tmp / "runs" / "r", data_dir=data)
    (run / "plan.png").write_bytes(PLAN_PNG)  # as `python -m training plan` leaves them (no checkpoint here)
    (run / "plan.json").write_text(json.dumps(PLAN_MASS))
    root = tmp / "root"
    root.mkdir()
    (root / "README.md").write_text(f"# x\n\n{readme.START}\nSTALE\n{readme.END}\n\ntail\n")
    cfg = export.export_run(run, NAME, root, data_dir=str(data), subset_size=8, max_iter=50,
                            progress=False).to_dict()
    yield cfg, root, data, run
    unregister_pretrained(NAME)


def test_export_writes_every_artifact(exported):
    cfg, root, _, _ = exported
    folder = root / "weights" / NAME
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "curves.png", "model.safetensors", "plan.png"]
    assert json.loads((root / "otzoo" / "pretrained" / f"{NAME}.json").read_text()) == cfg
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == cfg["sha256"]
    missing = [k for k in REQUIRED if cfg.get(k) in (None, "", [], {})]
    assert not missing
    assert cfg["label_names"] == ["c0", "c1", "c2", "c3"] and cfg["num_classes"] == 4
    assert cfg["budget"]["epochs"] == 1 and cfg["budget"]["views_seen"] == 64
    assert cfg["budget"]["hardware_spans"] == [{"hardware": "test", "steps": [0, 4], "wall_time_s": 12.5}]
    assert cfg["reproduce"]["pretrain"].startswith("python -m training pretrain")
    assert cfg["metrics"]["linear_probe"]["weight_decay"] in WEIGHT_DECAYS
    assert cfg["figures"] == ["curves.png", "plan.png"]
    assert cfg["metrics"]["plan_mass"] == PLAN_MASS and "8 evenly spaced" in cfg["metrics"]["protocol"]["plan"]
    assert cfg["dtype"] == "float16"  # the release asks for float16 explicitly (save_pretrained keeps fp32)
    low = cfg["metrics"]["low_label"]
    assert list(low) == ["1%", "10%"] and all(len(r["top1"]) == 3 for r in low.values())
    assert low["1%"]["images"] == [8, 8, 8] and low["10%"]["images"] == [8, 8, 8]  # >= 2 per class of 4
    assert cfg["metrics"]["linear_top1_1pct"] == low["1%"]["mean"] and 0 <= low["10%"]["mean"] <= 100
    assert otzoo.get_pretrained_cfg(NAME)["sha256"] == cfg["sha256"]  # registered


def test_exported_metrics_are_what_a_user_gets(exported):
    cfg, root, data, _ = exported
    model = otzoo.create_model(cfg["architecture"], checkpoint_path=str(root / "weights" / NAME)).eval()
    assert model.pretrained_cfg["metrics"]["linear_top1"] == cfg["metrics"]["linear_top1"]  # config.json rewritten
    tf = otzoo.create_transform(otzoo.resolve_data_config(model))
    test = ImageFolder(str(data / "test"), transform=tf)
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor(test.targets)
    with torch.inference_mode():
        pred = model(x).argmax(1)
    assert round(100 * (pred == y).float().mean().item(), 2) == cfg["metrics"]["linear_top1"]
    assert round(100 * (pred[:8] == y[:8]).float().mean().item(), 2) == cfg["metrics"]["subset_top1"]
    train = ImageFolder(str(data / "train"), transform=tf)
    tr, te = extract_features(model, train), extract_features(model, test)
    assert round(knn_top1(*tr, *te), 2) == cfg["metrics"]["knn_top1"]
    assert cfg["metrics"]["feature_geometry"] == feature_geometry(te[0])
    assert cfg["metrics"]["linear_top1"] <= 75.0 and cfg["metrics"]["subset_top1"] <= 75.0


def test_card_results_and_readme(exported):
    cfg, root, _, _ = exported
    text = (root / "model_cards" / f"{NAME}.md").read_text()
    meta = cards.parse_front_matter(text)
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "otzoo"
    assert {"image-feature-extraction", "self-supervised-learning", "optimal-transport", "timm"} <= set(meta["tags"])
    values = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert values[cards.METRIC_NAMES["linear_top1"]] == cfg["metrics"]["linear_top1"]
    assert values[cards.METRIC_NAMES["knn_top1"]] == cfg["metrics"]["knn_top1"]
    for needle in ("92.61", "GCA-UOT", "![curves.png](curves.png)", cfg["reproduce"]["pretrain"],
                   f'otzoo.create_model("{NAME}", pretrained=True)', "torch.hub.load", "timm.create_model",
                   "@inproceedings{chen2024gca", f"{cfg['metrics']['linear_top1']:.2f}"):
        assert needle in text, needle
    rows = list(csv.DictReader((root / "results" / "results-cifar10.csv").open()))
    assert [r["name"] for r in rows] == [NAME] and float(rows[0]["linear_top1"]) == cfg["metrics"]["linear_top1"]
    assert float(rows[0]["rankme_centred"]) == cfg["metrics"]["feature_geometry"]["rankme_centred"]
    readme_text = (root / "README.md").read_text()
    assert f"`{NAME}`" in readme_text and "STALE" not in readme_text and readme_text.endswith("tail\n")


def test_export_cli_guards_the_repo_against_subsampled_metrics(tmp_path, capsys):
    run = make_run_dir(tmp_path / "run")
    assert export.main(["--run", str(run), "--subset-size", "8"]) == 2
    assert "--root" in capsys.readouterr().err
    assert export.main(["--run", str(tmp_path / "missing"), "--root", str(tmp_path)]) == 2
    assert "run.json" in capsys.readouterr().err


def test_the_recorded_export_command_leaves_out_where_it_wrote():
    argv = ["--run", "runs/r", "--root", "/tmp/x", "--max-iter", "5", "--root=/tmp/y"]
    assert export.export_command(argv) == "python -m training export --run runs/r --max-iter 5"


def test_default_name():
    assert export.default_name("gca_uot", "resnet18_cifar", "cifar10") == "gca_uot_resnet18_cifar10"
    assert export.default_name("simclr", "resnet50", "in100") == "simclr_resnet50_in100"


def test_knn_cli_on_the_exported_checkpoint_matches_the_cfg(exported, tmp_path):
    cfg, root, data, _ = exported
    out = tmp_path / "knn.json"
    assert evaluate.main(["--checkpoint", str(root / "weights" / NAME), "--data-dir", str(data),
                          "--json-out", str(out)], prog="knn", command="knn") == 0
    assert json.loads(out.read_text())["knn_top1"] == cfg["metrics"]["knn_top1"]


def test_export_ships_no_machine_paths(exported):
    from tests.test_shipped_files import MACHINE_PATH

    cfg, root, data, run = exported
    for path in (root / "otzoo" / "pretrained" / f"{NAME}.json", root / "model_cards" / f"{NAME}.md",
                 root / "weights" / NAME / "config.json"):
        text = path.read_text()
        assert str(run) not in text and str(data) not in text, path
        assert not MACHINE_PATH.search(text), (path, MACHINE_PATH.search(text).group())
    assert cfg["reproduce"]["export"].startswith("python -m training export --run runs/r ")


def test_portable_replaces_run_data_and_cache_paths():
    conf = {"output_dir": "/root/runs/x", "data": {"dir": "../shared/data/cifar10", "cache_dir": "/root/runs/.cache"}}
    info = {"data_dir": "/srv/data/cifar10", "config": conf}
    cmd = ("python -m training pretrain --data-dir ../shared/data/cifar10 data.cache_dir=/root/runs/.cache "
           "--output-dir /root/runs/x")
    out = export.portable({"cmd": cmd, "config": conf, "data": ["/srv/data/cifar10/train"]}, "/root/runs/x", info)
    assert out["cmd"] == ("python -m training pretrain --data-dir DATA data.cache_dir=runs/.cache "
                          "--output-dir runs/x")
    assert out["config"] == {"output_dir": "runs/x", "data": {"dir": "DATA", "cache_dir": "runs/.cache"}}
    assert out["data"] == ["DATA/train"]
    window = "python -m training export --run /root/runs/x --data-dir /srv/imagenette224"  # trained on a smaller copy
    assert export.portable(window, "/root/runs/x", info, "/srv/imagenette224") == (
        "python -m training export --run runs/x --data-dir DATA")
