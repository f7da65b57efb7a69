import json

import pytest

import otzoo
from training.release import smoke
from training.run.datasets import DataNotFoundError, build_dataset
from training.release.export import forward_top1
from training.evaluate.loading import first_n


@pytest.mark.slow
@pytest.mark.data
def test_smoke_end_to_end(cifar10_dir, tmp_path, capsys):
    keep = tmp_path / "smoke"
    assert smoke.main(["--data-dir", str(cifar10_dir), "--keep", str(keep)]) == 0
    out = capsys.readouterr().out
    assert "[OK]" in out and "meaningless as accuracy" in out
    name = "simclr_resnet18_cifar10"
    folder = keep / "weights" / name
    cfg = json.loads((keep / "otzoo" / "pretrained" / f"{name}.json").read_text())
    assert (keep / "model_cards" / f"{name}.md").is_file() and (folder / "curves.png").is_file()
    assert cfg["metrics"]["subsampled"] is True and cfg["budget"]["epochs"] == 2
    # the shipped subset number is exactly reproducible from the exported folder
    model = otzoo.create_model(cfg["architecture"], checkpoint_path=str(folder))
    tf = otzoo.create_transform(otzoo.resolve_data_config(model))
    top1, _ = forward_top1(model, first_n(build_dataset("cifar10", "test", data_dir=str(cifar10_dir), transform=tf),
                                          cfg["metrics"]["subset_size"]))
    assert round(top1, 2) == cfg["metrics"]["subset_top1"]
    registered = name in otzoo.list_pretrained()
    assert registered == (smoke.REPO_ROOT / "otzoo" / "pretrained" / f"{name}.json").exists()  # registry restored


def test_smoke_without_data_names_otzoo_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OTZOO_DATA", str(tmp_path / "missing"))
    assert smoke.main([]) == 2
    err = capsys.readouterr().err
    assert "$OTZOO_DATA" in err and "missing" in err
    with pytest.raises(DataNotFoundError):
        smoke.run_smoke(keep=tmp_path / "k")
    assert not (tmp_path / "k").exists()  # failed before writing anything


def test_smoke_offline_without_any_data_dir(tmp_path, monkeypatch, capsys):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")

    monkeypatch.delenv("OTZOO_DATA", raising=False)
    monkeypatch.setattr(tvd, "CIFAR10", offline)
    assert smoke.main([]) == 2
    assert "OTZOO_DATA" in capsys.readouterr().err


@pytest.mark.parametrize("released", [False, True], ids=["repository", "over a release"])
def test_smoke_keep_refuses_a_repository_or_a_release_before_any_work(tmp_path, capsys, monkeypatch, released):
    from tests.training.release.test_guard import repository

    root = tmp_path / "keep"
    if released:
        (root / "weights" / "simclr_resnet18_cifar10").mkdir(parents=True)
    else:
        repository(root)
    monkeypatch.setattr(smoke, "_pretrain", lambda *a: pytest.fail("pretrained before the release check"))
    monkeypatch.setenv("OTZOO_DATA", str(tmp_path / "no-data"))  # the check comes before the data's
    assert smoke.main(["--keep", str(root)]) == 2
    assert ("never go into a repository" if not released else "already released") in capsys.readouterr().err
