"""otzoo: backbones pretrained with optimal-transport contrastive learning, and their losses."""
from .version import __version__
from .models import (
    create_model, create_transform, get_pretrained_cfg, get_weight_cfg, is_model, list_architectures, list_models,
    list_pretrained, resolve_data_config, save_pretrained,
)

__all__ = [
    "__version__", "create_model", "create_transform", "get_pretrained_cfg", "get_weight_cfg", "is_model",
    "list_architectures", "list_models", "list_pretrained", "resolve_data_config", "save_pretrained",
]
# otzoo.losses is imported on first use: `import otzoo.losses` or `otzoo.losses.create_loss(...)`.


def __getattr__(name):
    if name == "losses":
        import importlib

        return importlib.import_module(".losses", __name__)
    raise AttributeError(f"module 'otzoo' has no attribute {name!r}")
