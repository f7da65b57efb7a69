"""Fake released weights for tests: random-init models written through otzoo.save_pretrained."""
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hf_constants

import otzoo
from otzoo.models import _weights, register_pretrained, unregister_pretrained

FAKE_NAME = "fakessl_resnet18_cifar10"  # <method>_<arch>_<dataset> with a method no release will use
FAKE_TAG = "resnet18_cifar.fakessl_cifar10"
FAKE_REV = "0123456789abcdef0123456789abcdef01234567"
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
METRICS = {"knn_top1": 12.34, "linear_top1": 23.45, "protocol": "test fixture, not a measurement"}


def write_fake_weight(folder: Path, name: str = FAKE_NAME, arch: str = "resnet18_cifar", **meta) -> dict:
    """Random-init ``arch`` saved with save_pretrained into ``folder/name``; returns its cfg (not registered)."""
    torch.manual_seed(1)
    model = otzoo.create_model(arch)
    with torch.no_grad():  # non-trivial BN statistics, so a failed load is visible
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.num_batches_tracked.fill_(7)
    meta = {"method": "fakessl", "dataset": "cifar10", "label_names": LABELS, "metrics": METRICS, **meta}
    return otzoo.save_pretrained(model, Path(folder) / name, name=name, **meta)


@pytest.fixture
def no_local_weights(monkeypatch, tmp_path):
    """No $OTZOO_WEIGHTS_DIR, no checkout weights/, an empty offline HF cache."""
    monkeypatch.delenv("OTZOO_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(_weights, "checkout_weights_dir", lambda: None)
    cache = tmp_path / "hf_home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))  # read at import by huggingface_hub
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def fake_weight(tmp_path, no_local_weights, monkeypatch):
    """FAKE_NAME registered and stored in $OTZOO_WEIGHTS_DIR (a tmp dir); unregistered afterwards."""
    weights_dir = tmp_path / "weights"
    cfg = register_pretrained(write_fake_weight(weights_dir))
    monkeypatch.setenv("OTZOO_WEIGHTS_DIR", str(weights_dir))
    yield cfg
    unregister_pretrained(cfg["name"])


def fill_hf_cache(cache: Path, folder: Path, repo_id: str, revision: str = FAKE_REV) -> Path:
    """Copy a weight folder into the real HF cache layout: models--<org>--<name>/snapshots/<rev>/ + refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture
def hub_weight(tmp_path, no_local_weights):
    """FAKE_NAME registered, present only in the (offline) Hugging Face cache; unregistered afterwards."""
    staging = tmp_path / "staging"
    cfg = register_pretrained(write_fake_weight(staging))
    fill_hf_cache(no_local_weights, staging / cfg["name"], cfg["hf_hub_id"])
    yield cfg
    unregister_pretrained(cfg["name"])
