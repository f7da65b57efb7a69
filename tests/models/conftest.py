from .fakes import fake_weight, hub_weight, no_local_weights  # noqa: F401  (fixtures)
