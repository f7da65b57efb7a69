"""``training baseline``: a recipe's step-0 backbone measured by export's protocol, and its row in the cards."""
import copy
import json
from pathlib import Path

import pytest
import torch

from training.release import baseline, cards, readme
from training.run.config import load_config
from training.run.engine import seed_everything
from training.run.methods import build_method
from tests.training.evaluate.test_commands import make_image_tree
from tests.training.release.test_cards import with_recipe

CONFIGS = Path(__file__).resolve().parents[3] / "training" / "configs"
ONE_RECIPE_PER_ARCH = sorted({load_config(p)["arch"]: p.name for p in sorted(CONFIGS.glob("*.yaml"))}.values())


@pytest.mark.parametrize("recipe", ONE_RECIPE_PER_ARCH)
def test_the_baseline_is_the_backbone_a_run_of_the_recipe_starts_from(recipe):
    cfg = load_config(CONFIGS / recipe)
    seed_everything(cfg["seed"])  # as the engine's setup does, then builds the method
    started = build_method(cfg).backbone.state_dict()
    torch.manual_seed(cfg["seed"] + 1)  # whatever ran before: the baseline seeds itself
    model = baseline.initial_backbone(cfg, num_classes=7)
    state = model.state_dict()
    head = {k for k in state if k.startswith(model.default_cfg["classifier"])}
    assert set(state) - head == set(started) and all(torch.equal(state[k], started[k]) for k in started)
    assert model.num_classes == 7 and model.pretrained_cfg["input_size"] == (3, cfg["aug"]["size"], cfg["aug"]["size"])
    assert model.pretrained_cfg["mean"] == tuple(cfg["data"]["mean"])


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baseline")
    data = make_image_tree(tmp / "data")
    argv = ["--config", str(CONFIGS / "smoke.yaml"), "--data-dir", str(data), "--root", str(tmp / "root"),
            "--max-iter", "50"]
    assert baseline.main(argv) == 0
    return tmp, data, argv


def test_overrides_are_the_recipe_measured_and_recorded(tmp_path):
    data = make_image_tree(tmp_path / "data", n_train=4, n_test=2)
    out = tmp_path / "b.json"
    argv = ["--config", str(CONFIGS / "imagenette_gpu.yaml"), "arch=resnet50", "aug.size=32", "--data-dir", str(data),
            "--json-out", str(out), "--subset-size", "4", "--max-iter", "5"]
    assert baseline.main([*argv[:2], "dataset=cifar10", *argv[2:]]) == 0
    record = json.loads(out.read_text())
    assert record["arch"] == "resnet50" and record["input_size"] == 32
    assert record["command_line"].startswith("python -m training baseline --config training/configs/imagenette_gpu.yaml "
                                              "dataset=cifar10 arch=resnet50 aug.size=32 --data-dir DATA")


def test_the_record_holds_exports_metrics_and_no_path_of_this_machine(measured):
    tmp, data, _ = measured
    path = tmp / "root" / "results" / "baselines" / "cifar10" / "resnet18_cifar-32px.json"
    record = json.loads(path.read_text())
    assert record["command_line"] == "python -m training baseline --config training/configs/smoke.yaml --data-dir DATA"
    assert str(tmp) not in path.read_text() and not record["subsampled"] and record["seed"] == 0
    for key in ("knn_top1", "knn_top1_k20", "linear_top1", "linear_top1_1pct", "linear_top1_10pct", "subset_top1"):
        assert 0 <= record["metrics"][key] <= 100
    assert record["metrics"]["num_train"] == 32 and record["metrics"]["num_test"] == 16
    assert readme.baseline_records(tmp / "root") == [record]


def test_a_quick_check_is_never_written_where_the_cards_read(measured, capsys):
    tmp, _, argv = measured
    root = tmp / "quick"
    assert baseline.main(argv[:-4] + ["--root", str(root), "--train-subset", "8"]) == 2
    assert "give --json-out" in capsys.readouterr().err and not root.exists()
    out = tmp / "quick.json"
    assert baseline.main(argv + ["--train-subset", "8", "--json-out", str(out)]) == 0
    assert json.loads(out.read_text())["subsampled"] and not root.exists()


def test_bad_input_is_refused_with_a_message(measured, capsys, tmp_path):
    _, data, _ = measured
    assert baseline.main(["--config", str(tmp_path / "nope.yaml"), "--json-out", str(tmp_path / "o.json")]) == 2
    assert "recipes live in training/configs/" in capsys.readouterr().err
    argv = ["--config", str(CONFIGS / "smoke.yaml"), "--data-dir", str(tmp_path / "none"), "--root", str(tmp_path)]
    assert baseline.main(argv) == 2 and "error:" in capsys.readouterr().err
    assert baseline.main(argv[:2] + ["arch=resnet_nope", *argv[2:4]]) == 2 and "resnet_nope" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def baseline_record(size=32, subsampled=False, linear=35.5):
    metrics = {"linear_top1": linear, "knn_top1": 30.25, "knn_top1_k20": 31.0, "linear_top1_1pct": 20.0,
               "linear_top1_10pct": 28.0, "feature_geometry": {"rankme": 50.0, "rankme_centred": 60.0}}
    return {"arch": "resnet18_cifar", "dataset": "cifar10", "input_size": size, "seed": 0, "subsampled": subsampled,
            "dataset_variant": "CIFAR-10 (JPEG q75 copy)", "metrics": metrics, "hardware": "1x CPU X (2 cores), fp32",
            "eval_time_s": 600.0, "command_line": "python -m training baseline --config c.yaml --data-dir DATA"}


def test_the_card_sets_the_weight_beside_its_random_init_and_states_the_gain():
    gca = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24)
    gca.update(input_size=[3, 32, 32])
    gca["metrics"] = dict(gca["metrics"], knn_top1_k20=60.0)
    others = [baseline_record(size=64, linear=1.0), baseline_record(subsampled=True, linear=2.0)]
    card = cards.render_card(gca, baselines=others + [baseline_record()])
    section = card[card.index("## What the pretraining bought"):card.index("## Comparison with the paper")]
    assert "| Backbone | Linear | k-NN (k=200) | k-NN (k=20) | RankMe (centred) |" in section  # no low-label here
    assert "| **`gca_uot_resnet18_cifar10`** | 67.24 | 80.12 | 60.00 | n/a |" in section
    assert "| random init, seed 0 | 35.50 | 30.25 | 31.00 | 50.0 (60.0) |" in section
    assert "| pretraining's gain | +31.74 | +49.87 | +29.00 | |" in section
    assert "in 10 min: `python -m training baseline --config c.yaml --data-dir DATA`" in section
    assert "## What the pretraining bought" not in cards.render_card(gca, baselines=others)
    assert "## What the pretraining bought" not in cards.render_card(copy.deepcopy(CFG_NO_SIZE),
                                                                     baselines=[baseline_record()])


CFG_NO_SIZE = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24)


def test_a_head_that_does_not_fit_in_float16_is_refused_by_export_and_kept_fp32_for_a_baseline(tmp_path):
    from training.release.export import eval_sets, measure_release

    data = make_image_tree(tmp_path / "data")
    model = baseline.initial_backbone(load_config(CONFIGS / "smoke.yaml"), 4)
    with torch.no_grad():
        model.bn1.weight.mul_(1e-9)  # every feature's spread ~1e-9: the folded head ~1e9, past float16's 65504
        model.bn1.bias.zero_()
    sets = eval_sets("cifar10", str(data), None, None, 8)[:3]
    with pytest.raises(ValueError, match="does not fit in torch.float16"):
        measure_release(copy.deepcopy(model), *sets, max_iter=20, progress=False)
    _, metrics = measure_release(model, *sets, max_iter=20, progress=False, stored=False)
    assert metrics["linear_top1"] > 25.0  # above chance (4 classes): a head, not the constant of an overflow
