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
