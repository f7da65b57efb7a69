"""Every architecture in the registry: timm's interface, shapes, features_only, num_classes handling."""
import pytest
import torch
from PIL import Image

import otzoo
from otzoo.models import list_architectures

ARCHS = list_architectures()
# Expected pooled width and feature_info reductions (from the architectures' definitions).
NUM_FEATURES = {"resnet18_cifar": 512, "resnet50_cifar": 2048, "resnet18": 512, "resnet50": 2048,
                "vit_base_patch16_224": 768}
REDUCTIONS = {"resnet18_cifar": [1, 1, 2, 4, 8], "resnet50_cifar": [1, 1, 2, 4, 8],
              "resnet18": [2, 4, 8, 16, 32], "resnet50": [2, 4, 8, 16, 32],
              "vit_base_patch16_224": [16, 16, 16]}
_cache = {}


def model_for(name):
    """One eval-mode model per architecture for the whole session (ViT-B is slow to build on CPU)."""
    if name not in _cache:
        _cache[name] = otzoo.create_model(name).eval()
    return _cache[name]


def input_for(model, batch=None):
    size = model.pretrained_cfg["input_size"]
    batch = batch or (1 if size[-1] >= 224 else 2)
    return torch.randn(batch, *size)


def test_registry_lists_every_architecture():
    assert set(ARCHS) == set(NUM_FEATURES)


@pytest.mark.parametrize("name", ARCHS)
def test_forward_features_head(name):
    model = model_for(name)
    x = input_for(model)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        pooled = model.forward_head(feats, pre_logits=True)
        head = model.forward_head(feats)
    assert model.num_features == NUM_FEATURES[name]
    assert logits.shape == (x.shape[0], model.num_classes)
    assert pooled.shape == (x.shape[0], model.num_features)
    torch.testing.assert_close(head, logits)
    torch.testing.assert_close(model.get_classifier()(pooled), logits)
    assert model.pretrained_cfg["architecture"] == name


@pytest.mark.parametrize("name", [n for n in ARCHS if n.endswith("_cifar")])
def test_cifar_stem(name):
    model = model_for(name)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.padding == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model.num_classes == 10 and model.pretrained_cfg["input_size"] == (3, 32, 32)
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, 3, 32, 32)).shape[-2:] == (4, 4)


@pytest.mark.parametrize("name", [n for n in ARCHS if not n.startswith("vit")])
def test_features_only(name):
    model = otzoo.create_model(name, features_only=True).eval()
    x = input_for(model_for(name))
    assert model.feature_info.reduction() == REDUCTIONS[name]
    with torch.no_grad():
        outs = model(x)
    for out, red, chs in zip(outs, model.feature_info.reduction(), model.feature_info.channels()):
        assert out.shape == (x.shape[0], chs, x.shape[2] // red, x.shape[3] // red)
    # the same weights as the classifier model: the last map pools to the same features
    full = otzoo.create_model(name, num_classes=0).eval()
    full.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(outs[-1].mean((2, 3)), full(x))


def test_features_only_vit():
    model = otzoo.create_model("vit_base_patch16_224", features_only=True, out_indices=(11,)).eval()
    assert model.feature_info.reduction() == [16]
    with torch.no_grad():
        (out,) = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 768, 14, 14)


@pytest.mark.parametrize("name", ARCHS)
def test_num_classes_and_reset(name):
    model = model_for(name)
    x = input_for(model)
    torch.manual_seed(0)
    fresh = otzoo.create_model(name, num_classes=0) if name.startswith("resnet") else None
    if fresh is not None:
        with torch.no_grad():
            assert fresh.eval()(x).shape == (x.shape[0], fresh.num_features)
        fresh.reset_classifier(7)
        assert fresh.num_classes == 7 and fresh.get_classifier().out_features == 7
    classifier = model.pretrained_cfg["classifier"]
    assert model.get_classifier() is model.get_submodule(classifier)


def test_vit_num_classes_zero_gives_features():
    vit = model_for("vit_base_patch16_224")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        pooled = vit.forward_head(vit.forward_features(x), pre_logits=True)
    headless = otzoo.create_model("vit_base_patch16_224", num_classes=0).eval()
    headless.load_state_dict(vit.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(headless(x), pooled)


@pytest.mark.parametrize("name", ARCHS)
def test_data_config_and_transform(name):
    model = model_for(name)
    cfg = otzoo.resolve_data_config(model)
    assert set(cfg) == {"input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode"}
    assert tuple(cfg["input_size"]) == tuple(model.pretrained_cfg["input_size"])
    transform = otzoo.create_transform(cfg)
    img = Image.new("RGB", (cfg["input_size"][2] + 8, cfg["input_size"][1] + 8), color=(128, 64, 32))
    out = transform(img)
    assert out.shape == tuple(cfg["input_size"])
    expected = (torch.tensor([128, 64, 32]) / 255 - torch.tensor(cfg["mean"])) / torch.tensor(cfg["std"])
    torch.testing.assert_close(out[:, 0, 0], expected.float(), atol=1e-3, rtol=0)


@pytest.mark.parametrize("stages", [(), ("layer4",), ("layer3", "layer4")])
def test_cifar_resnet_runs_its_fp32_stages_and_head_in_fp32_under_autocast(stages):
    """Same keys and fp32 values as the plain model; under bf16 autocast the fp32 parts keep the output close to
    fp32 and the head's output is fp32; TorchScript and FX still take the model."""
    torch.manual_seed(0)
    plain = otzoo.create_model("resnet18_cifar").eval()
    model = otzoo.create_model("resnet18_cifar", fp32_stages=stages).eval()
    model.load_state_dict(plain.state_dict())
    assert list(model.state_dict()) == list(plain.state_dict())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = plain(x)
        torch.testing.assert_close(model(x), ref)
        torch.testing.assert_close(torch.jit.script(model)(x), ref)
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), ref)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, inner = model(x), model.forward_features(x)
    assert out.dtype == torch.float32
    assert inner.dtype == (torch.float32 if "layer4" in stages else torch.bfloat16)


@pytest.mark.parametrize("bad", ["layer4", ["layer5"], ["fc"]])
def test_fp32_stages_must_name_stages(bad):
    with pytest.raises(ValueError, match="fp32_stages must be a list of stage names"):
        otzoo.create_model("resnet18_cifar", fp32_stages=bad)


def test_a_weight_cfg_passes_its_model_args_and_the_caller_overrides_them():
    assert type(otzoo.create_model("sinsim_resnet18_cifar10").layer4).__name__ == "Fp32UnderAutocast"
    assert type(otzoo.create_model("sinsim_resnet18_cifar10", fp32_stages=()).layer4) is torch.nn.Sequential
    assert type(otzoo.create_model("simclr_resnet18_cifar10").layer4) is torch.nn.Sequential
    cfg = otzoo.get_weight_cfg("sinsim_resnet18_cifar10").to_dict()
    with pytest.raises(ValueError, match="model_args \\['features_only'\\] are not allowed"):
        otzoo.models.WeightCfg.from_dict({**cfg, "model_args": {"features_only": True}})
