"""The weight cfg schema: timm's PretrainedCfg fields + otzoo.models.OtzooMeta, checked where cfgs are made;
the registry's typed, frozen record of each weight (otzoo.models.WeightCfg)."""
import dataclasses
from pathlib import Path

import pytest
from timm.models import PretrainedCfg

import otzoo
from otzoo.models import OtzooMeta, WeightCfg, get_weight_cfg, register_pretrained, validate_weight_cfg


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


SHIPPED_CFG_FILES = sorted((Path(otzoo.__file__).parent / "pretrained").glob("*.json"))


@pytest.mark.parametrize("path", SHIPPED_CFG_FILES, ids=lambda p: p.stem)
def test_every_shipped_cfg_file_round_trips_through_its_record_byte_for_byte(path):
    record = WeightCfg.from_json(path)
    assert record.to_json() == path.read_text(encoding="utf-8")
    assert WeightCfg.from_dict(record.to_dict()) == record


@pytest.mark.parametrize("name", otzoo.list_pretrained())
def test_the_registry_holds_one_frozen_record_per_weight(name):
    record = get_weight_cfg(name)
    assert isinstance(record, WeightCfg) and record.name == name
    assert get_weight_cfg(record.tag) is record and get_weight_cfg(record.hf_hub_id) is record
    assert record.to_dict() == otzoo.get_pretrained_cfg(name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.sha256 = "0" * 64
    assert PretrainedCfg(**record.timm_kwargs()).input_size == tuple(record.input_size)


def test_a_record_is_validated_when_made_and_when_changed():
    record = get_weight_cfg(otzoo.list_pretrained()[0])
    with pytest.raises(ValueError, match="did you mean 'label_names'"):
        WeightCfg.from_dict(dict(record.to_dict(), lable_names=["a"]))
    with pytest.raises(ValueError, match="missing"):
        WeightCfg.from_dict(dict(record.to_dict(), sha256=""))
    with pytest.raises(ValueError, match="expects"):
        record.replace(crop_pct="0.9")
    assert record.replace(crop_pct=0.5).crop_pct == 0.5 and record.crop_pct != 0.5


def test_an_architecture_name_has_no_record():
    with pytest.raises(otzoo.models.UnknownModelError, match="architecture"):
        get_weight_cfg("resnet18_cifar")
