"""Time to accuracy: a run's kNN monitor against wall-clock minutes, drawn by `curve` and by export."""
import json

import pytest
import yaml

from training.release import accuracy_curve, cards, export
from training.__main__ import main as training_main
from training.run.config import with_defaults

PNG = b"\x89PNG\r\n\x1a\n"


def run_with_monitor(path, knn=((2, 600.0, 31.5), (4, 1260.0, 40.25))):
    """A run folder as pretrain leaves it: config.yaml and metrics.jsonl with step and kNN epoch records."""
    path.mkdir(parents=True)
    cfg = with_defaults({"method": "simclr", "arch": "resnet18_cifar", "dataset": "cifar10", "batch_size": 256})
    cfg["engine"].update(knn_every=2, knn_train=50000, knn_test=10000)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    records = [{"event": "step", "step": 10, "epoch": 1, "loss": 5.0, "lr": 0.1, "elapsed_s": 30.0}]
    for epoch, elapsed, top1 in knn:
        records += [{"event": "epoch", "step": epoch * 195, "epoch": epoch, "loss": 4.0, "elapsed_s": elapsed,
                     "knn_top1": top1}, {"event": "epoch", "step": epoch * 195 + 195, "epoch": epoch + 1,
                                         "loss": 4.0, "elapsed_s": elapsed + 300}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_points_are_the_monitored_epochs_in_minutes():
    records = [{"event": "epoch", "epoch": 2, "elapsed_s": 600.0, "knn_top1": 31.5},
               {"event": "epoch", "epoch": 3, "elapsed_s": 900.0},
               {"event": "step", "epoch": 3, "elapsed_s": 950.0, "knn_top1": 99.0}]
    assert accuracy_curve.knn_points(records) == [(10.0, 2, 31.5)]


def test_curve_command_writes_a_png_and_names_its_monitor(tmp_path, capsys):
    run = run_with_monitor(tmp_path / "run")
    out = tmp_path / "results" / "knn_vs_time-x.png"
    assert training_main(["curve", "--run", str(run), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG and not (run / accuracy_curve.FILENAME).exists()
    assert training_main(["curve", "--run", str(run)]) == 0
    assert (run / accuracy_curve.FILENAME).read_bytes()[:8] == PNG


@pytest.mark.parametrize("case, message", [("no_run", "not a pretraining run"), ("no_points", "engine.knn_every")])
def test_curve_command_fails_clearly(case, message, tmp_path, capsys):
    run = tmp_path / "nope" if case == "no_run" else run_with_monitor(tmp_path / "run", knn=())
    assert training_main(["curve", "--run", str(run)]) == 2
    assert message in capsys.readouterr().err


def test_export_ships_the_curve_and_the_card_captions_it(tmp_path):
    run, folder = run_with_monitor(tmp_path / "run"), tmp_path / "weight"
    folder.mkdir()
    assert export._copy_figures(run, folder, [], "t") == ["curves.png", accuracy_curve.FILENAME]
    quiet, quiet_folder = run_with_monitor(tmp_path / "quiet", knn=()), tmp_path / "quiet_weight"
    quiet_folder.mkdir()
    assert export._copy_figures(quiet, quiet_folder, [], "t") == ["curves.png"]  # no monitor points: no curve
    from tests.training.release.test_cards import with_recipe

    cfg = dict(with_recipe("simclr_resnet18_cifar10", "simclr", 60.0, engine={"knn_train": 50000, "knn_test": 10000}),
               figures=[accuracy_curve.FILENAME])
    caption = next(line for line in cards.render_card(cfg).splitlines() if line.startswith("*knn_vs_time.png*"))
    assert "50,000 train / 10,000 test images" in caption and "wall-clock minutes" in caption
