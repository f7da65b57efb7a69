"""One format, one loader: save_pretrained -> create_model round trips, resolution order, sha256, errors."""
import json
import warnings

import pytest
import safetensors.torch
import torch

import otzoo
from otzoo.models import (
    ChecksumError, CorruptWeightsError, NoPretrainedWeightsError, StateDictMismatchError, UnsafeCheckpointError,
    WeightsNotFoundError, _weights, register_pretrained, unregister_pretrained,
)

from .fakes import FAKE_NAME, LABELS, METRICS, fill_hf_cache, write_fake_weight


def saved_tensors(folder):
    return safetensors.torch.load_file(str(folder / "model.safetensors"))


def assert_equals_saved(model, saved, skip=()):
    own = model.state_dict()
    for k, v in saved.items():
        if k in skip:
            continue
        got = own[k].to(v.dtype)
        assert torch.equal(got, v), k


def test_save_pretrained_layout(tmp_path):
    model = otzoo.create_model("resnet18_cifar")
    cfg = otzoo.save_pretrained(model, tmp_path / "w", name="x_resnet18_cifar10", method="x", dataset="cifar10")
    saved = saved_tensors(tmp_path / "w")
    assert saved["conv1.weight"].dtype == torch.float32 and cfg["dtype"] == "float32"  # the model's own
    assert saved["bn1.num_batches_tracked"].dtype == torch.int64
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())  # a user's model round-trips
    half = otzoo.save_pretrained(model, tmp_path / "half", dtype=torch.float16, name="x_resnet18_cifar10")
    assert saved_tensors(tmp_path / "half")["conv1.weight"].dtype == torch.float16 and half["dtype"] == "float16"
    assert saved_tensors(tmp_path / "half")["bn1.num_batches_tracked"].dtype == torch.int64
    hf = json.loads((tmp_path / "w" / "config.json").read_text())
    assert hf["architecture"] == "resnet18_cifar" and hf["num_classes"] == 10 and hf["num_features"] == 512
    assert hf["global_pool"] == "avg" and hf["pretrained_cfg"]["mean"] == list(cfg["mean"])
    assert hf["otzoo"] == cfg
    assert cfg["sha256"] == otzoo.models._weights.sha256_file(tmp_path / "w" / "model.safetensors")
    assert cfg["tag"] == "resnet18_cifar.x_cifar10" and cfg["hf_hub_id"] == "otzoo/x_resnet18_cifar10"
    assert cfg["input_size"] == [3, 32, 32] and cfg["crop_pct"] == 1.0 and cfg["filename"] == "model.safetensors"
    # more meta on an unchanged model: same file, same sha256, config rewritten
    again = otzoo.save_pretrained(model, tmp_path / "w", name="x_resnet18_cifar10", method="x", dataset="cifar10",
                                  metrics={"knn_top1": 1.5})
    assert again["sha256"] == cfg["sha256"]
    assert json.loads((tmp_path / "w" / "config.json").read_text())["otzoo"]["metrics"] == {"knn_top1": 1.5}


def test_round_trip_from_weights_dir(fake_weight, tmp_path):
    model = otzoo.create_model(FAKE_NAME, pretrained=True)
    assert_equals_saved(model, saved_tensors(tmp_path / "weights" / FAKE_NAME))
    assert model.num_classes == 10  # the published head
    assert model.pretrained_cfg["metrics"] == METRICS and model.pretrained_cfg["label_names"] == LABELS
    assert model.state_dict()["bn1.num_batches_tracked"].item() == 7


def test_pretrained_false_is_random_with_weight_cfg(fake_weight, tmp_path):
    model = otzoo.create_model(FAKE_NAME)
    saved = saved_tensors(tmp_path / "weights" / FAKE_NAME)
    assert not torch.equal(model.state_dict()["conv1.weight"].half(), saved["conv1.weight"])
    assert model.pretrained_cfg["sha256"] == fake_weight["sha256"]


def test_num_classes_handling(fake_weight, tmp_path):
    saved = saved_tensors(tmp_path / "weights" / FAKE_NAME)
    feats = otzoo.create_model(FAKE_NAME, pretrained=True, num_classes=0).eval()
    assert feats(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    assert_equals_saved(feats, saved, skip=("fc.weight", "fc.bias"))
    with pytest.warns(UserWarning, match="new, randomly initialised 5-class head"):
        tuned = otzoo.create_model(FAKE_NAME, pretrained=True, num_classes=5)
    assert tuned.get_classifier().out_features == 5
    head = tuned.get_classifier().weight
    assert torch.isfinite(head).all() and 0 < head.std() < 1  # initialised, not left empty
    assert_equals_saved(tuned, saved, skip=("fc.weight", "fc.bias"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the published head: no warning
        otzoo.create_model(FAKE_NAME, pretrained=True)


def test_features_only_pretrained(fake_weight, tmp_path):
    model = otzoo.create_model(FAKE_NAME, pretrained=True, features_only=True)
    assert model.feature_info.reduction() == [1, 1, 2, 4, 8]
    assert_equals_saved(model, saved_tensors(tmp_path / "weights" / FAKE_NAME), skip=("fc.weight", "fc.bias"))


def test_resolution_order(fake_weight, tmp_path, monkeypatch):
    # checkout weights/ is used when $OTZOO_WEIGHTS_DIR does not have the weight ...
    checkout = tmp_path / "checkout_weights"
    (checkout / FAKE_NAME).mkdir(parents=True)
    bad = checkout / FAKE_NAME / "model.safetensors"
    bad.write_bytes(b"not the weight")
    monkeypatch.setattr(_weights, "checkout_weights_dir", lambda: checkout)
    assert _weights.resolve_weight_file(fake_weight) == tmp_path / "weights" / FAKE_NAME / "model.safetensors"
    monkeypatch.delenv("OTZOO_WEIGHTS_DIR")
    assert _weights.resolve_weight_file(fake_weight) == bad
    with pytest.raises(ChecksumError, match="expected " + fake_weight["sha256"]):
        otzoo.create_model(FAKE_NAME, pretrained=True)  # ... and verified
    # an explicit checkpoint_path wins over everything
    model = otzoo.create_model(FAKE_NAME, pretrained=True, checkpoint_path=tmp_path / "weights" / FAKE_NAME)
    assert_equals_saved(model, saved_tensors(tmp_path / "weights" / FAKE_NAME))


def test_hub_cache_offline(hub_weight, no_local_weights, tmp_path):
    model = otzoo.create_model(FAKE_NAME, pretrained=True)
    assert_equals_saved(model, saved_tensors(tmp_path / "staging" / FAKE_NAME))
    path = _weights.resolve_weight_file(hub_weight)
    assert str(path).startswith(str(no_local_weights)) and "snapshots" in str(path)


def test_offline_not_cached_error(no_local_weights, tmp_path):
    cfg = register_pretrained(write_fake_weight(tmp_path))
    try:
        with pytest.raises(WeightsNotFoundError) as err:
            otzoo.create_model(FAKE_NAME, pretrained=True)
    finally:
        unregister_pretrained(cfg["name"])
    msg = str(err.value)
    for needle in ("HF_HUB_OFFLINE", "model.safetensors", f"otzoo/{FAKE_NAME}", "OTZOO_WEIGHTS_DIR"):
        assert needle in msg


def test_checksum_mismatch_in_hub_cache(tmp_path, no_local_weights):
    cfg = write_fake_weight(tmp_path / "staging")
    snapshot = fill_hf_cache(no_local_weights, tmp_path / "staging" / FAKE_NAME, cfg["hf_hub_id"])
    data = bytearray((snapshot / "model.safetensors").read_bytes())
    data[-1] ^= 1  # one flipped bit in the last tensor
    (snapshot / "model.safetensors").write_bytes(bytes(data))
    register_pretrained(cfg)
    try:
        with pytest.raises(ChecksumError, match="delete it"):
            otzoo.create_model(FAKE_NAME, pretrained=True)
    finally:
        unregister_pretrained(FAKE_NAME)


def test_checkpoint_path_file_and_folder(tmp_path):
    cfg = write_fake_weight(tmp_path)
    folder = tmp_path / FAKE_NAME
    saved = saved_tensors(folder)
    for path in (folder, folder / "model.safetensors"):
        model = otzoo.create_model("resnet18_cifar", checkpoint_path=path)
        assert_equals_saved(model, saved)
        assert model.pretrained_cfg["metrics"] == METRICS and model.pretrained_cfg["sha256"] == cfg["sha256"]
    # a lone file (no config.json): num_classes defaults to the file's head
    lone = tmp_path / "lone.safetensors"
    sd = {k: v for k, v in saved.items()}
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(3, 512, dtype=torch.float16), torch.zeros(3, dtype=torch.float16)
    safetensors.torch.save_file(sd, str(lone))
    assert otzoo.create_model("resnet18_cifar", checkpoint_path=lone).num_classes == 3


def test_checkpoint_sha_from_config_is_verified(tmp_path):
    write_fake_weight(tmp_path)
    cfg_path = tmp_path / FAKE_NAME / "config.json"
    hf = json.loads(cfg_path.read_text())
    hf["otzoo"]["sha256"] = "0" * 64
    cfg_path.write_text(json.dumps(hf))
    with pytest.raises(ChecksumError):
        otzoo.create_model("resnet18_cifar", checkpoint_path=tmp_path / FAKE_NAME)


def test_state_dict_mismatch_lists_keys(tmp_path):
    model = otzoo.create_model("resnet18_cifar")
    sd = {k: v for k, v in model.state_dict().items() if k != "layer1.0.conv1.weight"}
    sd["extra.weight"] = torch.zeros(1)
    sd["bn1.weight"] = torch.zeros(3)
    safetensors.torch.save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(StateDictMismatchError) as err:
        otzoo.create_model("resnet18_cifar", checkpoint_path=tmp_path / "bad.safetensors")
    msg = str(err.value)
    assert "layer1.0.conv1.weight" in msg and "extra.weight" in msg and "bn1.weight: file (3,) vs model (64,)" in msg


def test_wrong_architecture_checkpoint(tmp_path):
    write_fake_weight(tmp_path)
    with pytest.raises(ValueError, match="otzoo.create_model\\('resnet18_cifar'"):
        otzoo.create_model("resnet50_cifar", checkpoint_path=tmp_path / FAKE_NAME)


def test_pickle_checkpoints(tmp_path):
    model = otzoo.create_model("resnet18_cifar")
    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": model.state_dict()}, plain)  # tensors only: weights_only=True reads it
    loaded = otzoo.create_model("resnet18_cifar", checkpoint_path=plain)
    assert_equals_saved(loaded, model.state_dict())
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"state_dict": model.state_dict(), "obj": torch.nn.ReLU()}, unsafe)  # a module needs full unpickling
    with pytest.raises(UnsafeCheckpointError, match="weights_only=True"):
        otzoo.create_model("resnet18_cifar", checkpoint_path=unsafe)


def test_corrupt_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CorruptWeightsError, match="not a readable safetensors file"):
        otzoo.create_model("resnet18_cifar", checkpoint_path=path)


def test_missing_checkpoint_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        otzoo.create_model("resnet18_cifar", checkpoint_path=tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="No model.safetensors"):
        otzoo.create_model("resnet18_cifar", checkpoint_path=tmp_path)


def test_architecture_without_weights():
    with pytest.raises(NoPretrainedWeightsError, match="is an architecture"):
        otzoo.create_model("resnet50", pretrained=True)


def test_architecture_error_lists_its_weights(fake_weight):
    with pytest.raises(NoPretrainedWeightsError, match=FAKE_NAME):
        otzoo.create_model("resnet18_cifar", pretrained=True)


@pytest.mark.parametrize("folder_sha", ["", "0" * 64, "matching"], ids=["hash off", "wrong hash", "own hash"])
def test_a_registered_name_loads_only_its_registered_file(fake_weight, tmp_path, folder_sha):
    """A folder's config.json cannot replace (or switch off) the registered sha256 of a weight name."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "tampered"
    folder.mkdir()
    source = tmp_path / "weights" / FAKE_NAME
    tensors = saved_tensors(source)
    tensors = {k: (v + 1 if v.is_floating_point() else v) for k, v in tensors.items()}
    save_file(tensors, str(folder / "model.safetensors"))
    hf = json.loads((source / "config.json").read_text())
    hf["otzoo"]["sha256"] = (otzoo.models.sha256_file(folder / "model.safetensors") if folder_sha == "matching"
                             else folder_sha)
    hf["otzoo"].setdefault("metrics", {})["linear_top1"] = 99.9
    (folder / "config.json").write_text(json.dumps(hf))
    with pytest.raises(ChecksumError, match="create_model\\('resnet18_cifar', checkpoint_path"):
        otzoo.create_model(FAKE_NAME, checkpoint_path=folder)
    own = otzoo.create_model("resnet18_cifar", checkpoint_path=folder) if folder_sha != "0" * 64 else None
    if own is not None:  # under the architecture name it is the user's own file, with its own cfg
        assert torch.equal(own.state_dict()["conv1.weight"], tensors["conv1.weight"].float())


@pytest.mark.parametrize("edit, message", [
    (lambda hf: hf["otzoo"].update(input_size=[3, 1000000, 1000000]), "input_size must be"),
    (lambda hf: hf["otzoo"].update(label_names="cat"), "label_names"),
    (lambda hf: hf["otzoo"].update(lable_names=["a"]), "did you mean 'label_names'"),
    (lambda hf: hf["otzoo"].update(filename="../elsewhere.safetensors"), "is not allowed"),
    (lambda hf: hf.update(otzoo=["not", "a", "mapping"]), "not a usable weight config"),
])
def test_a_folders_config_json_is_validated_on_load(tmp_path, edit, message):
    write_fake_weight(tmp_path)
    cfg_path = tmp_path / FAKE_NAME / "config.json"
    hf = json.loads(cfg_path.read_text())
    edit(hf)
    cfg_path.write_text(json.dumps(hf))
    with pytest.raises(ValueError, match=message):
        otzoo.create_model("resnet18_cifar", checkpoint_path=tmp_path / FAKE_NAME)


def test_a_config_json_that_is_not_json_says_which_file(tmp_path):
    write_fake_weight(tmp_path)
    (tmp_path / FAKE_NAME / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not a usable weight config"):
        otzoo.create_model("resnet18_cifar", checkpoint_path=tmp_path / FAKE_NAME)


def test_a_weight_name_without_its_file_carries_no_measured_metrics(fake_weight):
    random = otzoo.create_model(FAKE_NAME)  # pretrained=False: random init
    assert "metrics" not in random.pretrained_cfg and random.pretrained_cfg["name"] == FAKE_NAME
    assert random.pretrained_cfg["input_size"] == fake_weight["input_size"]  # what to feed it stays
    assert otzoo.create_model(FAKE_NAME, pretrained=True).pretrained_cfg["metrics"] == fake_weight["metrics"]
