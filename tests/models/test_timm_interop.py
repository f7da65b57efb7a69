"""After `import otzoo`, timm loads otzoo weights by tag and by hf-hub id: the same verified tensors."""
import pytest
import timm
import torch

import otzoo
from otzoo.models import ChecksumError

from .fakes import FAKE_NAME, FAKE_TAG


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_timm_tag_loads_same_weights(fake_weight):
    ours = otzoo.create_model(FAKE_NAME, pretrained=True)
    theirs = timm.create_model(FAKE_TAG, pretrained=True)
    assert same_state(ours, theirs) and theirs.num_classes == 10
    assert theirs.pretrained_cfg["tag"] == FAKE_TAG.split(".", 1)[1]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))


def test_timm_tag_num_classes_and_features(fake_weight):
    with pytest.warns(UserWarning, match="new, randomly initialised 4-class head"):
        model = timm.create_model(FAKE_TAG, pretrained=True, num_classes=4)
    assert model.num_classes == 4
    feats = timm.create_model(FAKE_TAG, pretrained=True, features_only=True)
    assert feats.feature_info.reduction() == [1, 1, 2, 4, 8]
    ours = otzoo.create_model(FAKE_NAME, pretrained=True)
    assert torch.equal(feats.state_dict()["layer4.1.conv2.weight"], ours.state_dict()["layer4.1.conv2.weight"])


def test_timm_tag_verifies_sha256(fake_weight, tmp_path):
    path = tmp_path / "weights" / FAKE_NAME / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        timm.create_model(FAKE_TAG, pretrained=True)


def test_timm_hf_hub_id(hub_weight):
    ours = otzoo.create_model(FAKE_NAME, pretrained=True)
    theirs = timm.create_model(f"hf-hub:otzoo/{FAKE_NAME}", pretrained=True)
    assert same_state(ours, theirs)
    assert list(theirs.pretrained_cfg["label_names"]) == hub_weight["label_names"]
    assert tuple(theirs.pretrained_cfg["mean"]) == tuple(hub_weight["mean"])
    # otzoo also accepts the hub id / tag
    assert same_state(otzoo.create_model(f"hf-hub:otzoo/{FAKE_NAME}", pretrained=True), ours)


def test_timm_local_dir(fake_weight, tmp_path):
    ours = otzoo.create_model(FAKE_NAME, pretrained=True)
    theirs = timm.create_model(f"local-dir:{tmp_path / 'weights' / FAKE_NAME}", pretrained=True)
    assert same_state(ours, theirs)


def test_an_unregistered_otzoo_weight_is_never_loaded_unchecked():
    """Even if timm still knew a tag (older timm keeps stale ones), otzoo refuses to load it unverified."""
    from otzoo.models import NoPretrainedWeightsError
    from otzoo.models._builder import build_model
    from otzoo.models.resnet_cifar import CifarResNet

    stale = {"hf_hub_id": "otzoo/unregistered_resnet18_cifar10", "architecture": "resnet18_cifar"}
    with pytest.raises(NoPretrainedWeightsError, match="sha256 cannot be checked"):
        build_model(CifarResNet, "resnet18_cifar", pretrained=True, pretrained_cfg=stale)


def test_import_registers_each_architecture_in_timm_once_with_every_shipped_tag():
    import subprocess
    import sys

    code = ("import timm.models\ncalls = []\norig = timm.models.register_model\n"
            "timm.models.register_model = lambda fn: (calls.append(fn.__name__), orig(fn))[1]\n"
            "import otzoo, timm\nprint(sorted(calls))\nprint(sorted(timm.list_pretrained('*_cifar.*')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    archs = [a for a in otzoo.list_architectures() if otzoo.models.has_timm_tags(a)]  # timm's built-ins stay timm's
    assert archs == ["resnet18_cifar", "resnet50_cifar"]
    assert out[0] == str(archs)  # once each, after the shipped weights are registered
    cfgs = [otzoo.get_pretrained_cfg(n) for n in otzoo.list_pretrained()]
    tags = sorted(c["tag"] for c in cfgs if c["architecture"] in archs)
    assert out[1] == str(tags)


@pytest.mark.parametrize("name", otzoo.list_pretrained())
def test_has_timm_tags_says_whether_timm_lists_the_weights_tag(name):
    cfg = otzoo.get_pretrained_cfg(name)
    assert otzoo.models.has_timm_tags(cfg["architecture"]) == (cfg["tag"] in timm.list_pretrained(cfg["tag"]))


def test_a_weight_registered_then_removed_at_runtime_leaves_no_timm_tag(fake_weight):
    assert FAKE_TAG in timm.list_pretrained("resnet18_cifar*")
    otzoo.models.unregister_pretrained(FAKE_NAME)
    assert FAKE_TAG not in timm.list_pretrained("resnet18_cifar*")
    with pytest.raises(RuntimeError):
        timm.create_model(FAKE_TAG, pretrained=True)


@pytest.fixture
def builtin_arch_weight(tmp_path, no_local_weights, monkeypatch):
    """A weight of timm's own resnet18 (no timm tag: timm's built-ins stay timm's), trained at 128 px."""
    from otzoo.models import register_pretrained, unregister_pretrained
    from .fakes import write_fake_weight

    cfg = write_fake_weight(tmp_path / "weights", name="fakessl_resnet18_imagenette", arch="resnet18",
                            dataset="imagenette", input_size=(3, 128, 128))
    cfg = register_pretrained(cfg)
    monkeypatch.setenv("OTZOO_WEIGHTS_DIR", str(tmp_path / "weights"))
    yield cfg
    unregister_pretrained(cfg["name"])


def test_timm_builtin_architecture_loads_an_otzoo_weight_through_the_overlay(builtin_arch_weight, tmp_path):
    name = builtin_arch_weight["name"]
    assert builtin_arch_weight["tag"] not in timm.list_pretrained("resnet18*")  # timm's resnet18 untouched
    assert builtin_arch_weight["pool_size"] == (4, 4)  # 7x7 at 224 px -> 4x4 at 128 px
    theirs = timm.create_model("resnet18", pretrained=True, pretrained_cfg_overlay=otzoo.models.timm_overlay(name))
    ours = otzoo.create_model(name, pretrained=True)
    assert same_state(ours, theirs) and theirs.num_classes == ours.num_classes
    assert theirs.pretrained_cfg["input_size"] == (3, 128, 128)
    assert tuple(ours.forward_features(torch.randn(1, 3, 128, 128)).shape[2:]) == tuple(ours.pretrained_cfg["pool_size"])
    path = tmp_path / "weights" / name / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        otzoo.models.timm_overlay(name)


def test_timm_builtin_architecture_loads_an_otzoo_weight_from_the_hub(builtin_arch_weight, no_local_weights,
                                                                      tmp_path):
    from .fakes import fill_hf_cache

    name, repo_id = builtin_arch_weight["name"], builtin_arch_weight["hf_hub_id"]
    fill_hf_cache(no_local_weights, tmp_path / "weights" / name, repo_id)
    theirs = timm.create_model(f"hf-hub:{repo_id}", pretrained=True)
    assert same_state(otzoo.create_model(name, pretrained=True), theirs)
    assert theirs.pretrained_cfg["input_size"] == (3, 128, 128)
