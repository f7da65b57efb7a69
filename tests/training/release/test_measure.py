import json
import shutil

import pytest

from otzoo.models import unregister_pretrained
from training.release import export, measure
from training.evaluate.plot_plan import run_plan
from tests.training.evaluate.test_commands import make_image_tree, make_run_dir

NAME = "gca_uot_resnet18_measuretest"
LOW_KEYS = ("linear_top1_1pct", "linear_top1_10pct", "low_label")
LATER_KEYS = LOW_KEYS + ("feature_geometry",)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("measure")
    data = make_image_tree(tmp / "data")
    run = make_run_dir(tmp / "runs" / "r", data_dir=data)
    cfg = export.export_run(run, NAME, tmp / "root", data_dir=str(data), subset_size=8, max_iter=50,
                            progress=False).to_dict()
    unregister_pretrained(NAME)
    return cfg, tmp / "root", data


def strip(exported, tmp_path, keys):
    """A copy of the exported weight's root without the metrics ``keys`` (an older export)."""
    cfg, original, data = exported
    root = tmp_path / "root"
    shutil.copytree(original, root)
    cfg_path, config_path = root / "otzoo" / "pretrained" / f"{NAME}.json", root / "weights" / NAME / "config.json"
    old = json.loads(cfg_path.read_text())
    for key in keys:
        old["metrics"].pop(key)
    cfg_path.write_text(json.dumps(old, indent=2) + "\n")
    hf = json.loads(config_path.read_text())
    hf["otzoo"]["metrics"] = old["metrics"]
    config_path.write_text(json.dumps(hf, indent=2) + "\n")
    return cfg, root, data


@pytest.fixture
def released(exported, tmp_path):
    """Exported before the low-label probes and the feature geometry existed."""
    return strip(exported, tmp_path, LATER_KEYS)


def test_measure_adds_the_metrics_export_would_and_keeps_the_tensors(released):
    exported, root, data = released
    weight = (root / "weights" / NAME / "model.safetensors").read_bytes()
    cfg, record = measure.measure_weight(NAME, root, str(data), max_iter=50, progress=False)
    for key in LATER_KEYS:
        assert cfg["metrics"][key] == exported["metrics"][key]
    assert cfg["metrics"]["remeasured"] == [record] and record["added"] == ["low_label", "feature_geometry"]
    assert record["knn_top1"] == exported["metrics"]["knn_top1"]
    assert record["linear_top1"] == exported["metrics"]["linear_top1"]
    assert json.loads((root / "otzoo" / "pretrained" / f"{NAME}.json").read_text()) == cfg
    assert json.loads((root / "weights" / NAME / "config.json").read_text())["otzoo"]["metrics"] == cfg["metrics"]
    assert (root / "weights" / NAME / "model.safetensors").read_bytes() == weight
    assert f"{cfg['metrics']['linear_top1_10pct']:.2f}" in (root / "model_cards" / f"{NAME}.md").read_text()


def test_measure_writes_nothing_when_a_shipped_number_does_not_reproduce(released, capsys):
    _, root, data = released
    cfg_path = root / "otzoo" / "pretrained" / f"{NAME}.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["metrics"]["knn_top1"] += 1.0
    cfg_path.write_text(json.dumps(cfg))
    assert measure.main([NAME, "--root", str(root), "--data-dir", str(data), "--max-iter", "20"]) == 1
    assert "knn_top1 measured" in capsys.readouterr().err
    assert json.loads(cfg_path.read_text()) == cfg


def test_measure_refuses_a_file_that_fails_its_sha256_and_an_unknown_name(released, capsys):
    _, root, data = released
    with open(root / "weights" / NAME / "model.safetensors", "ab") as f:
        f.write(b"\0")
    assert measure.main([NAME, "--root", str(root), "--data-dir", str(data)]) == 1
    assert "sha256" in capsys.readouterr().err
    assert measure.main(["no_such_weight", "--root", str(root)]) == 2
    assert "list_pretrained" in capsys.readouterr().err


def test_measure_adds_only_what_is_missing_and_keeps_the_earlier_checks(exported, tmp_path, capsys, monkeypatch):
    _, root, data = strip(exported, tmp_path, ("feature_geometry",))
    cfg_path = root / "otzoo" / "pretrained" / f"{NAME}.json"
    old = json.loads(cfg_path.read_text())
    old["metrics"]["remeasured"] = {"knn_top1": 1.0, "linear_top1": 2.0, "otzoo_version": "0", "hardware": "h",
                                    "command": "first measure"}  # what the first version of measure wrote
    cfg_path.write_text(json.dumps(old))
    splits = []
    real = measure._features
    monkeypatch.setattr(measure, "_features", lambda model, ds, split, *a: splits.append(split) or real(model, ds, split, *a))
    assert measure.main([NAME, "--root", str(root), "--data-dir", str(data)]) == 0
    assert splits == ["test"]  # the geometry needs no train features
    cfg = json.loads(cfg_path.read_text())
    first, second = cfg["metrics"]["remeasured"]
    assert first["added"] == ["low_label"] and first["command"] == "first measure"
    assert second["added"] == ["feature_geometry"] and "knn_top1" not in second
    assert cfg["metrics"]["feature_geometry"] == exported[0]["metrics"]["feature_geometry"]
    assert "added feature_geometry" in capsys.readouterr().out
    assert measure.main([NAME, "--root", str(root), "--data-dir", str(data)]) == 0
    assert "nothing written" in capsys.readouterr().out
    assert json.loads(cfg_path.read_text()) == cfg


@pytest.fixture
def shipped_plan(exported, tmp_path, monkeypatch):
    """A complete weight whose folder ships the plan.png of a (tiny) pretraining run that still has its checkpoint."""
    from tests.training.evaluate.test_plot_plan import _run

    _, root, _ = strip(exported, tmp_path, ())
    run = _run(tmp_path, monkeypatch, "gca_uot")
    (tmp_path / "drawn").mkdir()
    png = run_plan(run, tmp_path / "drawn" / "plan.png", batch=64)
    shutil.copy(png, root / "weights" / NAME / "plan.png")
    return root, run, json.loads(png.with_suffix(".json").read_text())


def test_measure_run_adds_the_mass_of_the_plan_the_weight_ships(shipped_plan, capsys):
    root, run, mass = shipped_plan
    cfg_path = root / "otzoo" / "pretrained" / f"{NAME}.json"
    assert measure.main([NAME, "--root", str(root), "--run", str(run)]) == 0
    assert "plan.png reproduced; added plan_mass" in capsys.readouterr().out
    cfg = json.loads(cfg_path.read_text())
    assert cfg["metrics"]["plan_mass"] == mass and "64 evenly spaced" in cfg["metrics"]["protocol"]["plan"]
    record = cfg["metrics"]["remeasured"][-1]
    assert record["added"] == ["plan_mass"] and "linear_top1" not in record  # no features needed
    assert record["command"].endswith(f"--run runs/{run.name}") and str(run.parent) not in record["command"]
    assert "the shipped plan.png, byte for byte" in (root / "model_cards" / f"{NAME}.md").read_text()
    assert measure.main([NAME, "--root", str(root), "--run", str(run)]) == 0
    assert "nothing written" in capsys.readouterr().out


def test_measure_run_refuses_a_plan_that_is_not_the_shipped_one(shipped_plan, capsys):
    root, run, _ = shipped_plan
    cfg_path = root / "otzoo" / "pretrained" / f"{NAME}.json"
    before = cfg_path.read_text()
    (root / "weights" / NAME / "plan.png").write_bytes(b"another figure")
    assert measure.main([NAME, "--root", str(root), "--run", str(run)]) == 1
    assert "is not" in capsys.readouterr().err and cfg_path.read_text() == before
    with pytest.raises(SystemExit):
        measure.main([NAME, NAME, "--root", str(root), "--run", str(run)])
    assert "one NAME" in capsys.readouterr().err
