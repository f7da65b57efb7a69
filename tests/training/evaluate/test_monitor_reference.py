"""training.evaluate.monitor_reference: a recipe's k-NN monitor protocol on a released weight, beside its card."""
import json

import pytest

import otzoo
from tests.training.evaluate.test_commands import make_image_tree
from training.evaluate import commands, monitor_reference
from training.run.progress import read_references
from tests.training.run.test_campaign_report import line

NAME = "gca_uot_resnet18_cifar10"  # a shipped weight; the data is a tiny tree, so only the protocol is checked
RECIPE = "training/configs/smoke.yaml"


def test_a_reference_is_the_knn_commands_number_at_the_recipes_monitor_settings(tmp_path, capsys):
    data = make_image_tree(tmp_path / "data")
    folder = tmp_path / "campaign"
    folder.mkdir()
    (folder / "gca_uot.jsonl").write_text(json.dumps(line((0, 97), 1)) + "\n")
    assert monitor_reference.main([NAME, "--recipe", RECIPE, "--data-dir", str(data), "--folder", str(folder)]) == 0
    release = otzoo.get_pretrained_cfg(NAME)
    card, epochs = release["metrics"]["knn_top1"], release["budget"]["epochs"]
    assert f"(card {card:.2f}%)" in capsys.readouterr().out
    assert f"`{NAME}` | {epochs} of " in (folder / "README.md").read_text()  # the page is rewritten with it
    [record] = read_references(folder)
    assert commands.main(["--model", NAME, "--data-dir", str(data), "--train-subset", "5000", "--test-subset", "1000",
                          "--json-out", str(tmp_path / "knn.json")]) == 0
    measured = json.loads((tmp_path / "knn.json").read_text())
    assert record["monitor_knn_top1"] == measured["knn_top1"]
    assert (measured["weight_sha256"], measured["weight_epochs"]) == (release["sha256"], epochs)  # which release
    assert record["release_knn_top1"] == card and record["sha256"] == release["sha256"]  # which file it was
    assert (record["num_train"], record["num_test"], record["k"], record["epochs"]) == (32, 16, 200, epochs)
    assert record["command"].endswith("--k 200 --t 0.1 --precision fp32 --data-dir DATA")
    assert str(tmp_path) not in (folder / "references.json").read_text()


def test_an_unknown_weight_is_refused_and_nothing_written(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        monitor_reference.main(["gca_uot_resnet18_nosuch", "--folder", str(tmp_path)])
    assert exit_.value.code == 2 and "not released here" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_missing_data_is_an_error_that_writes_nothing(tmp_path, capsys):
    folder = tmp_path / "campaign"
    assert monitor_reference.main([NAME, "--data-dir", str(tmp_path / "missing"), "--folder", str(folder)]) == 2
    assert "nothing written" in capsys.readouterr().err and not folder.exists()
