"""torch.hub entrypoints: one per otzoo architecture and per pretrained weight (generated from the registry).

    model = torch.hub.load("<owner>/otzoo", "gca_uot_resnet18_cifar10")          # published weights + head
    model = torch.hub.load("<owner>/otzoo", "resnet18_cifar", num_classes=100)  # random init
"""
import otzoo as _otzoo

dependencies = ["torch", "timm", "huggingface_hub", "safetensors"]


def _fmt_metrics(metrics):
    if not metrics:
        return "  (no metrics recorded)"
    lines = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def _doc(name):
    cfg = _otzoo.get_pretrained_cfg(name)
    if not _otzoo.models.is_pretrained(name):
        return (f"{name}: random-init {name} (input {tuple(cfg['input_size'])}, {cfg.get('num_classes')} classes "
                f"by default).\n\nKeyword args go to otzoo.create_model({name!r}, ...): num_classes, features_only, "
                f"checkpoint_path, drop_path_rate...")
    what = f"{cfg['architecture']} pretrained with {cfg.get('method', '?')} on {cfg.get('dataset', '?')}"
    extra = "; ".join(f"{k}: {cfg[k]}" for k in ("recipe", "budget", "paper") if cfg.get(k))
    return (f"{name}: {what}{' (' + extra + ')' if extra else ''}.\n\n"
            f"Head: the published {cfg.get('num_classes')}-class linear probe on frozen features "
            f"(num_classes=0: pooled features; num_classes=K: new head). Input {tuple(cfg['input_size'])}, "
            f"mean {tuple(cfg['mean'])}, std {tuple(cfg['std'])}. License {cfg.get('license')}.\n"
            f"Measured metrics (percent, on the exported weight):\n{_fmt_metrics(cfg.get('metrics'))}\n\n"
            f"pretrained=True (default) loads the sha256-verified weight; keyword args go to otzoo.create_model.")


def _entrypoint(name):
    is_weight = _otzoo.models.is_pretrained(name)

    def entrypoint(pretrained=is_weight, **kwargs):
        return _otzoo.create_model(name, pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = _doc(name)
    return entrypoint


for _name in _otzoo.list_models():
    globals()[_name] = _entrypoint(_name)
del _name
