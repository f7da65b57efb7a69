"""Names: listing, lookup, unknown-name errors, registering weights (also in timm's registry)."""
import json
from importlib import resources

import pytest
import timm

import otzoo
from otzoo.models import UnknownModelError, register_pretrained, unregister_pretrained

from .fakes import FAKE_NAME, FAKE_TAG

ARCHS = ["resnet18", "resnet18_cifar", "resnet50", "resnet50_cifar", "vit_base_patch16_224"]


def test_list_models():
    assert otzoo.models.list_architectures() == ARCHS
    assert otzoo.list_models()[:5] == ARCHS
    assert otzoo.list_models("*cifar*")[:2] == ["resnet18_cifar", "resnet50_cifar"]
    assert otzoo.list_models(pretrained=True) == otzoo.list_pretrained()
    assert all(otzoo.is_model(n) for n in otzoo.list_models())
    assert not otzoo.is_model("resnet18_cifar.nope") and not otzoo.is_model("resnet34")


def test_every_shipped_cfg_is_registered():
    folder = resources.files("otzoo") / "pretrained"
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            cfg = json.loads(entry.read_text())
            assert entry.name == cfg["name"] + ".json"
            registered = otzoo.get_pretrained_cfg(cfg["name"])
            assert all(registered[k] == v for k, v in cfg.items())
            if timm.models.model_entrypoint(cfg["architecture"]).__module__.startswith("otzoo"):
                assert cfg["tag"] in timm.list_pretrained(cfg["architecture"] + "*")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError, match="Did you mean 'resnet18_cifar'"):
        otzoo.create_model("resnet18cifar")
    with pytest.raises(UnknownModelError, match="list_models"):
        otzoo.get_pretrained_cfg("definitely_not_a_model")


def test_register_pretrained_everywhere(fake_weight):
    assert FAKE_NAME in otzoo.list_pretrained() and FAKE_NAME in otzoo.list_models()
    cfg = otzoo.get_pretrained_cfg(FAKE_NAME)
    assert cfg["tag"] == FAKE_TAG and cfg["hf_hub_id"] == f"otzoo/{FAKE_NAME}"
    assert cfg["classifier"] == "fc" and cfg["first_conv"] == "conv1"
    assert FAKE_TAG in timm.list_pretrained("resnet18_cifar*")
    assert timm.models.get_pretrained_cfg(FAKE_TAG).hf_hub_id == f"otzoo/{FAKE_NAME}"
    assert timm.models.get_pretrained_cfg("resnet18_cifar").hf_hub_id is None  # a bare arch stays random-init
    with pytest.raises(RuntimeError, match="No pretrained weights"):  # never silently one of the weights
        timm.create_model("resnet18_cifar", pretrained=True)
    assert otzoo.create_model(FAKE_TAG).pretrained_cfg["name"] == FAKE_NAME  # the timm tag is an alias
    cfg["metrics"] = {"changed": 1.0}
    assert otzoo.get_pretrained_cfg(FAKE_NAME)["metrics"] != cfg["metrics"]  # a copy


def test_unregister_cleans_timm(fake_weight):
    unregister_pretrained(FAKE_NAME)
    assert FAKE_NAME not in otzoo.list_models()
    assert FAKE_TAG not in timm.list_pretrained("resnet18_cifar*")
    assert timm.models.get_pretrained_cfg("resnet18_cifar").hf_hub_id is None
    register_pretrained(fake_weight)  # the fixture unregisters it again


def test_register_pretrained_validates():
    with pytest.raises(ValueError, match="missing"):
        register_pretrained({"name": "x_resnet18_cifar10", "architecture": "resnet18_cifar"})
    with pytest.raises(ValueError, match="unknown architecture"):
        register_pretrained({"name": "x_foo_cifar10", "architecture": "foo", "sha256": "0" * 64})
    with pytest.raises(ValueError, match="clashes"):
        register_pretrained({"name": "resnet18", "architecture": "resnet18", "sha256": "0" * 64})


def test_timm_builtins_untouched():
    import timm.models.resnet as timm_resnet
    import timm.models.vision_transformer as timm_vit

    assert timm.models.model_entrypoint("resnet18") is timm_resnet.resnet18
    assert timm.models.model_entrypoint("resnet50") is timm_resnet.resnet50
    assert timm.models.model_entrypoint("vit_base_patch16_224") is timm_vit.vit_base_patch16_224
    assert timm.models.get_pretrained_cfg("resnet18").hf_hub_id.startswith("timm/")
    assert timm.models.model_entrypoint("resnet18_cifar") is otzoo.models.resnet_cifar.resnet18_cifar


def test_weight_identity_is_derived_in_one_place(tmp_path):
    from otzoo.models import weight_identity

    ident = weight_identity("gca_uot_resnet18_cifar10", "resnet18_cifar", "gca_uot", "cifar10")
    assert ident == {"tag": "resnet18_cifar.gca_uot_cifar10", "hf_hub_id": "otzoo/gca_uot_resnet18_cifar10",
                     "filename": "model.safetensors", "license": "apache-2.0"}
    assert weight_identity("mine", "resnet18_cifar")["tag"] == "resnet18_cifar.mine"
    model = otzoo.create_model("resnet18_cifar")
    saved = otzoo.save_pretrained(model, tmp_path / "w", name="mine")  # save_pretrained derives the same
    assert {k: saved[k] for k in ident} == weight_identity("mine", "resnet18_cifar")
    for name in otzoo.list_pretrained():  # and so does every registered weight
        cfg = otzoo.get_pretrained_cfg(name)
        assert {k: cfg[k] for k in ident} == weight_identity(name, cfg["architecture"], cfg["method"], cfg["dataset"])
