"""What makes a recipe: two weights share one when their recorded training configs agree up to the method.

:func:`recipe_key` is what the cards' same-recipe tables, the results CSVs' ``recipe`` column and the
archive of replaced releases (``results/superseded/<name>.<recipe_id>.json``) compare.
"""
import hashlib
import json
from typing import Optional

from training.run.config import with_defaults

RECIPE_FREE_KEYS = ("method", "output_dir", "run_name", "loss")
# where and how the files are read (a streamed run equals an in-memory one), not which data (``data.variant``)
DATA_ACCESS_KEYS = ("dir", "cache_dir", "stream", "workers")
MONITOR_KEYS = ("log_every", "checkpoint_minutes", "progress", "knn_every", "knn_train", "knn_test", "knn_k", "knn_t")
HOST_MEMORY_KEYS = ("reuse_memory",)  # how the host's allocator keeps freed memory: the same arithmetic


def recipe_key(cfg: "WeightCfg") -> Optional[tuple]:
    """What makes a recipe: architecture, dataset and the config up to the method, paths (the run's, the
    data's: ``--data-dir`` or ``$OTZOO_DATA``, the decode cache), how the images are read (``data.stream``,
    ``data.workers``), the engine's logging / checkpointing / kNN-monitor settings (they watch training, they do
    not change it) and its allocator setting; ``None`` for a weight that recorded no config."""
    conf = (cfg.recipe or {}).get("config")
    if not conf:
        return None
    conf = with_defaults(conf)  # keys added later take their defaults
    engine = {k: v for k, v in conf.get("engine", {}).items() if k not in MONITOR_KEYS + HOST_MEMORY_KEYS}
    conf = dict(conf, engine=engine,
                data={k: v for k, v in conf.get("data", {}).items() if k not in DATA_ACCESS_KEYS})
    return cfg.architecture, cfg.dataset, {k: v for k, v in conf.items() if k not in RECIPE_FREE_KEYS}


def same_recipe(a: dict, b: dict) -> bool:
    """True if two weights were pretrained with one recipe (:func:`recipe_key`; never without a config)."""
    key = recipe_key(a)
    return key is not None and key == recipe_key(b)


def recipe_id(cfg: "WeightCfg") -> str:
    """Short id of the weight's recipe (equal ids: :func:`same_recipe`), or of its file without a config."""
    key = recipe_key(cfg)
    if key is None:
        return "file-" + cfg.sha256[:8]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]


def budget_epochs(cfg: "WeightCfg") -> Optional[int]:
    """The epochs a weight trained (its budget's; a milestone's are fewer than its schedule's)."""
    return (cfg.budget or {}).get("epochs")


def other_milestone(a: "WeightCfg", b: "WeightCfg") -> bool:
    """True if ``a`` is another milestone of ``b``'s run: the same name and recipe, another number of epochs."""
    epochs = budget_epochs(a)
    return a.name == b.name and same_recipe(a, b) and bool(epochs) and epochs != budget_epochs(b)


def epochs_text(budget: dict) -> str:
    """A weight's epochs, and for a milestone its schedule's: ``"50 of 200"``; ``"n/a"`` when unrecorded."""
    schedule = budget.get("schedule")
    return f"{budget.get('epochs', 'n/a')}" + (f" of {schedule['epochs']}" if schedule else "")
