"""timm's model contract, for every otzoo architecture and every registered weight.

Parametrized over the registry's lists, so a new architecture or weight is tested by being
added: cfg fields, forward_features / forward_head shapes, reset_classifier, pretrained
loading with a new head and other input channels (timm's first-conv adaptation),
features_only, TorchScript and torch.fx.
"""
import warnings

import pytest
import timm
import torch
from timm.models import adapt_input_conv
from timm.models._features_fx import create_feature_extractor, get_graph_node_names

import otzoo
from otzoo.models._registry import TIMM_CFG_FIELDS

ARCHS = otzoo.list_architectures()
WEIGHTS = otzoo.list_pretrained()


def _build(name, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # new-head / in_chans warnings are tested below
        return otzoo.create_model(name, pretrained=name in WEIGHTS, **kwargs).eval()


def _x(model, batch=2, in_chans=3):
    size = model.pretrained_cfg["input_size"][1:]
    return torch.randn(batch, in_chans, *size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", WEIGHTS)
def test_weight_cfg_keeps_every_timm_field_of_its_architecture(name):
    cfg = otzoo.get_pretrained_cfg(name)
    base = otzoo.get_pretrained_cfg(cfg["architecture"])
    missing = [k for k in base if k in TIMM_CFG_FIELDS and k not in cfg]
    assert not missing, f"{name} lost {missing} of {cfg['architecture']}'s cfg"
    if otzoo.models.has_timm_tags(cfg["architecture"]):
        tag_cfg = timm.create_model(cfg["tag"]).pretrained_cfg
    else:  # timm's own architecture: the weight reaches timm through timm_overlay
        tag_cfg = timm.create_model(cfg["architecture"], pretrained_cfg_overlay=otzoo.models.timm_overlay(name)
                                    ).pretrained_cfg
    for key in ("pool_size", "first_conv", "classifier", "crop_pct", "interpolation", "input_size", "mean", "std"):
        if base.get(key) is not None:
            assert tag_cfg.get(key) is not None, f"timm's cfg of {cfg['tag']} has no {key}"


@pytest.mark.parametrize("name", ARCHS + WEIGHTS)
def test_features_head_and_reset_classifier(name):
    model = _build(name)
    cfg, x = model.pretrained_cfg, _x(model)
    with torch.no_grad():
        feats = model.forward_features(x)
        if cfg.get("pool_size"):  # NCHW maps: (B, num_features, *pool_size)
            assert tuple(feats.shape) == (2, model.num_features, *cfg["pool_size"])
        pre = model.forward_head(feats, pre_logits=True)
        assert tuple(pre.shape) == (2, getattr(model, "head_hidden_size", model.num_features))
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pre)


def _adaptations() -> list:
    """``(in_chans, num_classes, weight)``: every combination for the first weight of each architecture (the
    first-conv and head adaptation is the architecture's), the hardest one (4 channels, a new head) for the rest."""
    first = {otzoo.get_pretrained_cfg(w)["architecture"]: w for w in reversed(WEIGHTS)}
    every = [(c, n, w) for w in first.values() for c in (1, 3, 4) for n in (0, 5)]
    return every + [(4, 5, w) for w in WEIGHTS if w not in first.values()]


@pytest.mark.parametrize("in_chans, num_classes, name", _adaptations())
def test_pretrained_with_new_head_and_input_channels(name, num_classes, in_chans):
    reference = _build(name)
    first = f"{reference.pretrained_cfg['first_conv']}.weight"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = otzoo.create_model(name, pretrained=True, num_classes=num_classes, in_chans=in_chans).eval()
    stored = getattr(torch, reference.pretrained_cfg.get("dtype", "float32"))  # adapted in the file's dtype
    expected = adapt_input_conv(in_chans, reference.state_dict()[first].to(stored)).float()
    torch.testing.assert_close(model.state_dict()[first], expected)
    assert any(f"in_chans={in_chans}" in str(w.message) for w in caught) == (in_chans != 3)
    with torch.no_grad():
        out = model(_x(model, in_chans=in_chans))
    assert tuple(out.shape) == (2, num_classes or model.num_features)
    tag, overlay = reference.pretrained_cfg["tag"], None
    if not otzoo.models.has_timm_tags(reference.pretrained_cfg["architecture"]):  # timm's built-in: the overlay
        tag, overlay = reference.pretrained_cfg["architecture"], otzoo.models.timm_overlay(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        via_timm = timm.create_model(tag, pretrained=True, num_classes=num_classes, in_chans=in_chans,
                                     pretrained_cfg_overlay=overlay)
    torch.testing.assert_close(via_timm.state_dict()[first], expected)


@pytest.mark.parametrize("name", WEIGHTS)
def test_features_only_with_pretrained_weights(name):
    model = _build(name, features_only=True)
    maps = model(_x(model))
    assert [m.shape[1] for m in maps] == model.feature_info.channels()
    full = _build(name)
    first = f"{full.pretrained_cfg['first_conv']}.weight"
    assert torch.equal(model.state_dict()[first], full.state_dict()[first])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", ARCHS)
def test_torchscript(name):
    model = _build(name)
    x = _x(model)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


@pytest.mark.parametrize("name", ARCHS)
def test_fx_tracing(name):
    model = _build(name)
    x = _x(model)
    _, eval_nodes = get_graph_node_names(model)
    traced = create_feature_extractor(model, return_nodes={eval_nodes[-1]: "out"})
    with torch.no_grad():
        torch.testing.assert_close(traced(x)["out"], model(x))
