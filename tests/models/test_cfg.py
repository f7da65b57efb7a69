"""The weight cfg schema: timm's PretrainedCfg fields + otzoo.models.OtzooMeta, checked where cfgs are made."""
import pytest

import otzoo
from otzoo.models import OtzooMeta, register_pretrained, validate_weight_cfg


@pytest.mark.parametrize("name", otzoo.list_pretrained())
def test_every_shipped_cfg_fits_the_schema(name):
    assert validate_weight_cfg(otzoo.get_pretrained_cfg(name))


@pytest.mark.parametrize("key,value,message", [
    ("lable_names", ["a"], "did you mean 'label_names'"),
    ("crop_pct", "0.9", "expects"),
    ("metrics", [1], "expects"),
    ("sha256", "", "missing"),
])
def test_a_misspelt_mistyped_or_missing_field_is_refused_by_name(key, value, message):
    cfg = otzoo.get_pretrained_cfg(otzoo.list_pretrained()[0])
    cfg[key] = value
    with pytest.raises(ValueError, match=message):
        validate_weight_cfg(cfg)
    with pytest.raises(ValueError, match=message):
        register_pretrained(dict(cfg, name="schema_test_resnet18_cifar10"))
    assert "schema_test_resnet18_cifar10" not in otzoo.list_pretrained()


def test_save_pretrained_refuses_bad_meta_before_writing_anything(tmp_path):
    model = otzoo.create_model("resnet18_cifar")
    with pytest.raises(ValueError, match="did you mean 'label_names'"):
        otzoo.save_pretrained(model, tmp_path / "w", name="x", lable_names=["a"] * 10)
    assert not (tmp_path / "w").exists()


def test_otzoo_meta_names_the_required_fields():
    with pytest.raises(TypeError):
        OtzooMeta()  # name, architecture and sha256 have no default
    assert OtzooMeta("n", "resnet18_cifar", "ab").filename == "model.safetensors"
