"""Hostile and careless inputs, one place: a tampered weight file fails its sha256 on every loading path the
README and the cards show, a folder cannot vouch for itself under a weight's name, names cannot leave their
folder. (The training commands' hostile inputs are tested where each lives: tests/training/release/test_guard.py,
tests/training/run/test_config.py, tests/training/run/test_pretrain.py.)"""
from pathlib import Path

import pytest
import timm
import torch

import otzoo
from otzoo.models import ChecksumError, register_pretrained, unregister_pretrained

from tests.models.fakes import FAKE_NAME, fill_hf_cache, no_local_weights, write_fake_weight  # noqa: F401

REPO = str(Path(__file__).resolve().parents[1])
BUILTIN = "fakessl_resnet18_imagenette"  # a weight of timm's own resnet18: no timm tag, loaded through the overlay


def tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one flipped bit in the last tensor: still a readable safetensors file
    path.write_bytes(bytes(data))


LOADERS = {
    "otzoo.create_model": lambda name: otzoo.create_model(name, pretrained=True),
    "torch.hub (local)": lambda name: torch.hub.load(REPO, name, source="local"),
    "timm tag": lambda name: timm.create_model(otzoo.get_pretrained_cfg(name)["tag"], pretrained=True),
    "timm hf-hub:": lambda name: timm.create_model(f"hf-hub:{otzoo.get_pretrained_cfg(name)['hf_hub_id']}",
                                                   pretrained=True),
    "timm overlay": lambda name: timm.create_model(otzoo.get_pretrained_cfg(name)["architecture"], pretrained=True,
                                                   pretrained_cfg_overlay=otzoo.models.timm_overlay(name)),
}
# which loaders the cards show for a weight of an otzoo architecture / of timm's own (cards._timm_usage)
SHOWN = {FAKE_NAME: sorted(LOADERS), BUILTIN: ["otzoo.create_model", "torch.hub (local)", "timm overlay"]}


@pytest.fixture(params=["weights dir", "hub cache"])
def registered(request, tmp_path, no_local_weights, monkeypatch):  # noqa: F811
    """Both fake weights registered, their files in $OTZOO_WEIGHTS_DIR or only in the offline HF cache."""
    staging = tmp_path / "staging"
    cfgs = [write_fake_weight(staging), write_fake_weight(staging, name=BUILTIN, arch="resnet18",
                                                           dataset="imagenette", input_size=(3, 128, 128))]
    files = {}
    for cfg in cfgs:
        register_pretrained(cfg)
        if request.param == "hub cache":
            files[cfg["name"]] = fill_hf_cache(no_local_weights, staging / cfg["name"], cfg["hf_hub_id"])
    if request.param == "weights dir":
        monkeypatch.setenv("OTZOO_WEIGHTS_DIR", str(staging))
        files = {cfg["name"]: staging / cfg["name"] for cfg in cfgs}
    yield files
    for cfg in cfgs:
        unregister_pretrained(cfg["name"])


@pytest.mark.parametrize("name, loader", [(n, loader) for n, shown in SHOWN.items() for loader in shown])
def test_every_shown_loading_path_refuses_a_tampered_file(registered, name, loader, request):
    if loader == "timm hf-hub:" and "hub cache" not in request.node.callspec.id:
        pytest.skip("timm reads an hf-hub: name's config.json from the Hub (its cache) itself")
    LOADERS[loader](name)  # the untouched file loads
    tamper(registered[name] / "model.safetensors")
    with pytest.raises(ChecksumError):
        LOADERS[loader](name)

