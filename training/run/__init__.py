"""The pretraining run: a recipe (``config``) becomes a trained backbone.

``pretrain`` (the CLI) -> ``engine`` (the loop) over ``data`` / ``datasets`` (decoded images, epoch order),
``stream`` (the same images decoded step by step, for splits too large for memory),
``augment`` (batched views), ``methods`` (backbone + heads + loss), ``optim`` (optimizer, schedule),
``checkpoint``, ``device`` / ``distributed`` / ``hardware`` (where it runs, and how that is recorded),
``monitor`` (k-NN and RankMe while training) and ``metrics`` (``metrics.jsonl``, ``curves.png``);
``progress`` keeps a long run's record in git. Imports nothing from ``training.evaluate`` or ``training.release``.
"""
