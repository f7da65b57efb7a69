"""The plan plot of a trained run: the run's own loss plan on a class-sorted test batch."""
import json
from pathlib import Path

import pytest
import torch

import training.run.methods
from otzoo.losses import get_loss_class
from otzoo.viz import plan_mass
from tests.training.run.test_pretrain import TinyNet
from training.__main__ import main as training_main
from training.evaluate.plot_plan import compute_plan
from training.run.pretrain import main as pretrain

SMOKE = str(Path(__file__).resolve().parents[3] / "training" / "configs" / "smoke.yaml")
TINY = ["dataset=synthetic", "data.subset=32", "data.decode_size=16", "aug.size=16", "batch_size=16", "epochs=1",
        "model.proj_hidden=32", "model.proj_dim=8", "model.byol_proj_hidden=32", "model.byol_proj_dim=8",
        "model.byol_pred_hidden=32", "engine.progress=false"]


def _run(tmp_path, monkeypatch, method, *extra):
    monkeypatch.setattr(training.run.methods, "create_backbone", lambda arch: TinyNet())
    out = tmp_path / method
    assert pretrain(["--config", SMOKE, f"method={method}", *TINY, *extra,
                     "--output-dir", str(out)]) == 0
    return out


def test_balanced_plan_of_a_trained_run_has_unit_marginals(tmp_path, monkeypatch):
    run = _run(tmp_path, monkeypatch, "gca_ince", "loss.iters=200")
    plan, cfg, labels = compute_plan(run, batch=12)
    assert plan.shape == (24, 24) and cfg["method"] == "gca_ince"
    torch.testing.assert_close(plan.sum(0), torch.ones(24), atol=1e-3, rtol=0)
    torch.testing.assert_close(plan.sum(1), torch.ones(24), atol=1e-3, rtol=0)
    assert torch.all(plan.diagonal() == 0)
    again, _, _ = compute_plan(run, batch=12)
    assert labels.tolist() == sorted(labels.tolist()) and len(labels) == 12
    assert torch.equal(plan, again)  # fixed seed: the same views
    assert not torch.equal(plan, compute_plan(run, batch=12, seed=1)[0])


@pytest.mark.parametrize("method", ["gca_uot", "byol"])
def test_plan_command_writes_a_png(method, tmp_path, monkeypatch):
    run = _run(tmp_path, monkeypatch, method)
    assert training_main(["plan", "--run", str(run), "--batch", "8"]) == 0
    assert (run / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plan, _, labels = compute_plan(run, batch=8)
    layout = get_loss_class(method).plan_layout
    assert json.loads((run / "plan.json").read_text()) == dict(batch=8, seed=0, **plan_mass(plan, layout, labels))


def test_plan_command_without_a_run_fails_clearly(tmp_path, capsys):
    assert training_main(["plan", "--run", str(tmp_path / "nope")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_export_draws_the_plan_of_a_run_that_has_none(tmp_path, monkeypatch):
    from training.release.export import _plan_figure

    run = _run(tmp_path, monkeypatch, "otco")
    assert not (run / "plan.png").exists()
    mass = _plan_figure(run, None, "cpu")
    first = (run / "plan.png").read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert mass == json.loads((run / "plan.json").read_text()) and mass["batch"] == 64
    (run / "plan.png").write_bytes(b"kept")  # one the user drew (e.g. another --batch) is kept
    assert _plan_figure(run, None, "cpu") == mass
    assert (run / "plan.png").read_bytes() == b"kept"
    (run / "plan.png").unlink()
    (run / "checkpoint.pt").unlink()  # no checkpoint: nothing to draw from, nothing drawn
    assert _plan_figure(run, None, "cpu") is None  # a plan.json without its figure is not reported
    assert not (run / "plan.png").exists()
