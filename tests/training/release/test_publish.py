import pytest

from otzoo.models import unregister_pretrained
from training.release import export, publish
from tests.training.evaluate.test_commands import make_image_tree, make_run_dir

NAME = "simclr_resnet18_publishtest"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("publish")
    data = make_image_tree(tmp / "data", n_train=4, n_test=2)
    run = make_run_dir(tmp / "run", method="simclr", data_dir=data)
    root = tmp / "root"
    export.export_run(run, NAME, root, data_dir=str(data), subset_size=4, max_iter=20, progress=False)
    yield root
    unregister_pretrained(NAME)


def test_dry_run_stages_exactly_the_weight_folder_and_card(root, tmp_path, capsys):
    out = tmp_path / "stage"
    assert publish.main(["--name", NAME, "--root", str(root), "--dry-run", "--out", str(out)]) == 0
    assert "dry run" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "curves.png", "model.safetensors"]
    assert (out / "README.md").read_text() == (root / "model_cards" / f"{NAME}.md").read_text()
    assert (out / "model.safetensors").read_bytes() == (root / "weights" / NAME / "model.safetensors").read_bytes()


def test_validation_catches_a_tampered_folder(root, tmp_path):
    cfg = publish.load_cfg(NAME, root)
    folder = publish.stage(NAME, root, tmp_path / "a")
    publish.validate(folder, cfg)
    bad = dict(cfg, sha256="0" * 64)
    with pytest.raises(publish.PublishError, match="sha256"):
        publish.validate(folder, bad)
    with pytest.raises(publish.PublishError, match="linear_top1"):
        publish.validate(folder, dict(cfg, metrics=dict(cfg["metrics"], linear_top1=-1.0)))
    (folder / "config.json").write_text("{not json")
    with pytest.raises(publish.PublishError, match="config.json"):
        publish.validate(folder, cfg)
    (folder / "README.md").write_text("no front matter")
    folder2 = publish.stage(NAME, root, tmp_path / "b")
    (folder2 / "README.md").write_text("no front matter")
    with pytest.raises(publish.PublishError, match="front matter"):
        publish.validate(folder2, cfg)


def test_repo_id_must_match_unless_forced(root, capsys):
    assert publish.main(["--name", NAME, "--root", str(root), "--dry-run", "--repo-id", "me/other"]) == 2
    assert "--force-repo-id" in capsys.readouterr().err
    s = publish.publish(NAME, "me/other", root, dry_run=True, force_repo_id=True)
    assert s["repo_id"] == "me/other" and not s["uploaded"]
    assert publish.main(["--name", "nope", "--root", str(root), "--dry-run"]) == 2
    assert "export" in capsys.readouterr().err


def test_upload_calls_the_hub_api(root, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, **kw):
            calls.append(("create_repo", kw))

        def upload_folder(self, **kw):
            from pathlib import Path
            calls.append(("upload_folder", dict(kw, files=sorted(p.name for p in Path(kw["folder_path"]).iterdir()))))
            return type("Commit", (), {"commit_url": "https://hf.co/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    s = publish.publish(NAME, root=root)
    assert s["uploaded"] and s["commit"] == "https://hf.co/commit/1"
    (c1, k1), (c2, k2) = calls
    assert c1 == "create_repo" and k1["repo_id"] == f"otzoo/{NAME}" and k1["exist_ok"] is True
    assert c2 == "upload_folder" and k2["repo_id"] == f"otzoo/{NAME}" and k2["repo_type"] == "model"
    assert k2["files"] == ["README.md", "config.json", "curves.png", "model.safetensors"]
