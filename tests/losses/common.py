"""Inputs shared by the loss tests."""
import inspect

import torch

from otzoo.losses import create_loss, get_loss_class

# Danskin losses: the plan is computed without gradient
DANSKIN = {"sinsim", "matching_gap", "otco"}
# losses whose swap invariance holds only once Sinkhorn has converged (cross-view plans)
# (ε = 0.1 converges too slowly on near-permutation plans to test it exactly)
NEEDS_CONVERGENCE = {"sinsim": {"iters": 300, "epsilon_h": 0.5},
                     "matching_gap": {"iters": 300, "epsilon": 0.5},
                     "otco": {"iters": 300, "epsilon": 0.5}}


def extras_for(name, b, dtype=torch.float32, d=6, generator=None, zero=False):
    def rnd(*shape):
        return torch.zeros(shape, dtype=dtype) if zero else torch.randn(*shape, dtype=dtype, generator=generator)
    if name == "sinsim":
        return {"h1": rnd(b, d + 3), "h2": rnd(b, d + 3)}
    if name == "byol":
        return {"t1": rnd(b, d), "t2": rnd(b, d)}
    return {}


def swap_extras(name, ex):
    if name == "sinsim":
        return {"h1": ex["h2"], "h2": ex["h1"]}
    if name == "byol":
        return {"t1": ex["t2"], "t2": ex["t1"]}
    return ex


def temperature_names(name):
    """The hyperparameters that play the role of a temperature / ε for this loss."""
    params = inspect.signature(get_loss_class(name)).parameters
    return [p for p in ("epsilon", "tau", "epsilon_h") if p in params]


def make(name, **kw):
    return create_loss(name, **kw)
