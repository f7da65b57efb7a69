from pathlib import Path

import pytest

from training.run.config import DEFAULTS, ConfigError, apply_overrides, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "training" / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_recipe_validates(path):
    cfg = load_config(str(path))
    assert set(cfg) == set(DEFAULTS)
    assert cfg["batch_size"] >= 2 and cfg["epochs"] >= 1


def test_overrides_are_typed():
    cfg = load_config(None, ["epochs=3", "optim.weight_decay=1e-6", "optim.lr=1", "engine.compile=true",
                             "aug.jitter=[0.1, 0.2, 0.3, 0.05]", "data.dir=null", "loss.eps=0.25",
                             "method=gca_uot"])
    assert cfg["epochs"] == 3 and isinstance(cfg["epochs"], int)
    assert cfg["optim"]["weight_decay"] == 1e-6 and isinstance(cfg["optim"]["weight_decay"], float)
    assert cfg["optim"]["lr"] == 1.0 and isinstance(cfg["optim"]["lr"], float)
    assert cfg["engine"]["compile"] is True
    assert cfg["aug"]["jitter"] == [0.1, 0.2, 0.3, 0.05]
    assert cfg["data"]["dir"] is None
    assert cfg["loss"] == {"eps": 0.25}  # free-form: passed to create_loss
    assert cfg["method"] == "gca_uot"


def test_yaml_file_merges_over_defaults(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("epochs: 7\noptim:\n  lr: 0.5\n")
    cfg = load_config(str(p), ["optim.momentum=0.8"])
    assert (cfg["epochs"], cfg["optim"]["lr"], cfg["optim"]["momentum"]) == (7, 0.5, 0.8)
    assert cfg["optim"]["name"] == DEFAULTS["optim"]["name"]  # untouched keys keep defaults


@pytest.mark.parametrize("override, words", [
    ("epochz=2", ["epochz", "did you mean 'epochs'"]),
    ("optim.wd=0.1", ["optim.wd", "weight_decay"]),
    ("epochs=many", ["epochs", "int"]),
    ("aug.jitter=[0.4]", ["aug.jitter", "list of 4"]),
    ("aug.policy=blur", ["aug.policy", "large_erase"]),
    ("batch_size=1", ["batch_size"]),
    ("noequals", ["key=value"]),
])
def test_bad_overrides_say_what_is_wrong(override, words):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    for w in words:
        assert w in str(err.value)


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*optim.learning_rate"):
        load_config(str(p))
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))


def test_apply_overrides_does_not_mutate():
    base = load_config(None)
    apply_overrides(base, ["epochs=5"])
    assert base["epochs"] == DEFAULTS["epochs"]


@pytest.mark.parametrize("override, key", [
    ("optim.lr=-0.1", "optim.lr"), ("optim.lr=0", "optim.lr"), ("optim.weight_decay=-5e-4", "optim.weight_decay"),
    ("optim.momentum=1.5", "optim.momentum"), ("aug.hflip=7", "aug.hflip"), ("aug.gray_p=-0.1", "aug.gray_p"),
    ("aug.crop_scale=[1.0, 0.08]", "aug.crop_scale"), ("aug.crop_scale=[0.0, 1.0]", "aug.crop_scale"),
    ("aug.crop_scale=[0.2, 1.5]", "aug.crop_scale"), ("aug.jitter=[0.4, 0.4, 0.4, 0.9]", "aug.jitter"),
    ("engine.log_every=0", "engine.log_every"), ("engine.threads=-2", "engine.threads"),
    ("engine.checkpoint_minutes=-1", "engine.checkpoint_minutes"), ("data.subset=-5", "data.subset"),
    ("data.std=[0.2, 0.0, 0.2]", "data.std"), ("engine.knn_t=0", "engine.knn_t"), ("seed=-1", "seed"),
    ("method=simclrr", "did you mean 'simclr'"),
])
def test_values_the_recipe_cannot_mean_are_refused_with_what_is_allowed(override, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
        load_config(None, [override])


@pytest.mark.parametrize("ok", ["optim.weight_decay=0", "aug.hflip=1", "aug.crop_scale=[1.0, 1.0]",
                                "engine.knn_every=0", "engine.threads=null", "method=ince", "method=byol"])
def test_the_edges_of_each_range_are_allowed(ok):
    load_config(None, [ok])


def test_malformed_yaml_and_bad_values_exit_2_before_any_run_folder(tmp_path, capsys):
    from training.run.pretrain import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\nmethod: simclr\n")
    assert main(["--config", str(bad), "--output-dir", str(tmp_path / "r1")]) == 2
    assert "is not valid YAML" in capsys.readouterr().err
    smoke = str(CONFIGS[0].parent / "smoke.yaml")
    assert main(["--config", smoke, "engine.log_every=0", "--output-dir", str(tmp_path / "r2")]) == 2
    assert "engine.log_every must be >= 1, got 0" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert main(["--config", smoke, "engine.device=cuda", "--output-dir", str(tmp_path / "r3")]) == 2
        assert "torch sees no CUDA GPU" in capsys.readouterr().err
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3"))
