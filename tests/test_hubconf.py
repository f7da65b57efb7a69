"""torch.hub: hubconf.py lists exactly the registry's names and loads them, passing kwargs through."""
import importlib.util
from pathlib import Path

import torch

import otzoo

from tests.models.fakes import FAKE_NAME, fake_weight, no_local_weights  # noqa: F401  (fixtures)

REPO = str(Path(__file__).resolve().parents[1])


def hub_entrypoints():
    """What torch.hub.list shows (it only takes GitHub repos): public callables of a fresh hubconf import."""
    spec = importlib.util.spec_from_file_location("hubconf_under_test", Path(REPO) / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {f: getattr(module, f) for f in dir(module) if callable(getattr(module, f)) and not f.startswith("_")}, module


def test_list_is_the_registry():
    entrypoints, module = hub_entrypoints()
    assert sorted(entrypoints) == sorted(otzoo.list_models())
    assert module.dependencies == ["torch", "timm", "huggingface_hub", "safetensors"]


def test_load_architecture_with_kwargs():
    model = torch.hub.load(REPO, "resnet18_cifar", source="local", num_classes=7)
    assert model.num_classes == 7 and model.conv1.stride == (1, 1)
    assert "random-init" in hub_entrypoints()[0]["resnet18_cifar"].__doc__


def test_load_weight(fake_weight, tmp_path):
    doc = hub_entrypoints()[0][FAKE_NAME].__doc__
    assert "pretrained with fakessl on cifar10" in doc and "knn_top1: 12.34" in doc and "linear_top1: 23.45" in doc
    model = torch.hub.load(REPO, FAKE_NAME, source="local")  # pretrained by default
    ours = otzoo.create_model(FAKE_NAME, pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ours.state_dict().values()))
    feats = torch.hub.load(REPO, FAKE_NAME, source="local", num_classes=0)
    assert feats.num_classes == 0
    assert torch.equal(feats.state_dict()["conv1.weight"], ours.state_dict()["conv1.weight"])
