"""otzoo models: registry, constructors, weight loading and saving (timm underneath)."""
from ._builder import create_model, load_weights, timm_overlay
from ._cfg import OtzooMeta, WeightCfg, validate_weight_cfg
from ._hub import read_config, save_pretrained
from ._weights import (
    ChecksumError, CorruptWeightsError, NoPretrainedWeightsError, StateDictMismatchError, UnsafeCheckpointError,
    WeightsNotFoundError, read_state_dict, resolve_weight_file, sha256_file,
)
from ._registry import (
    UnknownModelError, get_pretrained_cfg, get_weight_cfg, has_timm_tags, is_model, is_pretrained, list_architectures, list_models,
    list_pretrained, register_model, register_pretrained, unregister_pretrained, weight_identity,
)
from ._transforms import create_transform, resolve_data_config
from .resnet_cifar import CifarResNet
from . import resnet_cifar, timm_models
from ._registry import _load_package_cfgs

_load_package_cfgs()  # every otzoo/pretrained/<name>.json
del _load_package_cfgs
