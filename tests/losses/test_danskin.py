"""SinSim, matching gap and OTCO: references, POT plans, Danskin gradients."""

import numpy as np
import ot
import pytest
import torch

from otzoo.losses import create_loss

from . import reference as ref


def _z(b=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(b, d, dtype=torch.float64, generator=g)
    return z1, z1 + 0.7 * torch.randn(b, d, dtype=torch.float64, generator=g)


def test_sinsim_reference():
    z1, z2 = _z()
    h1, h2 = _z(5, 7, seed=3)
    for kw in (dict(), dict(tau=0.2, beta=2.0, epsilon_h=0.3, iters=4)):
        full = dict(tau=0.5, beta=0.5, epsilon_h=0.1, iters=10, **{})
        full.update(kw)
        out = create_loss("sinsim", **kw)(z1, z2, h1=h1, h2=h2)
        np.testing.assert_allclose(out.item(), ref.sinsim(z1.numpy(), z2.numpy(), h1.numpy(),
                                                          h2.numpy(), **full), rtol=1e-10)


@pytest.mark.parametrize("eps,iters", [(0.1, 50), (0.3, 5)])
def test_matching_gap_reference(eps, iters):
    z1, z2 = _z()
    out = create_loss("matching_gap", epsilon=eps, iters=iters)(z1, z2)
    np.testing.assert_allclose(out.item(), ref.matching_gap(z1.numpy(), z2.numpy(), eps, iters),
                               rtol=1e-9)


@pytest.mark.parametrize("eps,iters", [(0.1, 20), (0.4, 3)])
def test_otco_reference(eps, iters):
    z1, z2 = _z()
    out = create_loss("otco", epsilon=eps, iters=iters)(z1, z2)
    np.testing.assert_allclose(out.item(), ref.otco(z1.numpy(), z2.numpy(), 0.5, eps, iters),
                               rtol=1e-10)


def test_matching_gap_is_nonnegative_at_convergence_and_zero_when_views_match():
    z1, z2 = _z(6, 3)
    loss = create_loss("matching_gap", epsilon=0.3, iters=2000)
    assert loss(z1, z2).item() >= -1e-9
    # far-apart points with identical views: the identity is the optimal matching
    z = torch.eye(4, dtype=torch.float64)
    assert abs(create_loss("matching_gap", epsilon=0.01, iters=200)(z, z).item()) < 1e-6


def test_cross_view_plans_match_pot():
    z1, z2 = _z()
    c = ref.cross_cost(z1.numpy(), z2.numpy())
    a = np.full(5, 0.2)
    pot = ot.sinkhorn(a, a, c, 0.3, method="sinkhorn_log", numItermax=100000, stopThr=1e-14)
    ours = create_loss("matching_gap", epsilon=0.3, iters=3000).plan(z1, z2)
    np.testing.assert_allclose(ours.numpy(), pot, atol=1e-10)
    h1, h2 = z1, z2
    ours = create_loss("sinsim", epsilon_h=0.3, iters=3000).plan(z1, z2, h1=h1, h2=h2)
    np.testing.assert_allclose(ours.numpy(), pot, atol=1e-10)
    v, t = ref.normalize(z1.numpy()), ref.normalize(z2.numpy())
    pot = ot.sinkhorn(a, a, 1 - v @ t.T, 0.3, method="sinkhorn_log", numItermax=100000, stopThr=1e-14)
    ours = create_loss("otco", epsilon=0.3, iters=3000).plan(z1, z2)
    np.testing.assert_allclose(ours.numpy(), pot, atol=1e-10)


def _objective(name, loss, plan, z1, z2, ex):
    return loss.objective(z1, z2, plan, **ex)


@pytest.mark.parametrize("name", ["sinsim", "matching_gap", "otco"])
def test_gradcheck_of_the_objective_at_a_fixed_plan(name):
    z1, z2 = _z(3, 4)
    loss = create_loss(name)
    if name == "sinsim":
        h1, h2 = _z(3, 5, seed=2)
        plan = loss.plan(z1, z2, h1=h1, h2=h2)
        f = lambda a, b, c, d: loss.objective(a, b, plan, h1=c, h2=d)  # noqa: E731
        inputs = (z1, z2, h1, h2)
    else:
        plan = loss.plan(z1, z2)
        f = lambda a, b: loss.objective(a, b, plan)  # noqa: E731
        inputs = (z1, z2)
    assert torch.autograd.gradcheck(f, tuple(x.requires_grad_() for x in inputs))
    # and forward's gradient is exactly that of the objective at its own plan
    g_fwd = torch.autograd.grad(loss(*inputs[:2], **({"h1": inputs[2], "h2": inputs[3]} if name == "sinsim" else {})), inputs)
    g_obj = torch.autograd.grad(f(*inputs), inputs)
    for a, b in zip(g_fwd, g_obj):
        torch.testing.assert_close(a, b)


def test_danskin_gradient_equals_true_gradient_at_convergence():
    # with a converged plan, d MG / d z computed by finite differences of the value
    # (plan re-solved at each point) equals the surrogate gradient
    z1, z2 = _z(4, 3)
    loss = create_loss("matching_gap", epsilon=0.5, iters=3000)
    z1.requires_grad_(True)
    grad, = torch.autograd.grad(loss(z1, z2), z1)
    h = 1e-6
    num = torch.zeros_like(z1)
    for idx in np.ndindex(*z1.shape):
        e = torch.zeros_like(z1)
        e[idx] = h
        num[idx] = (loss(z1.detach() + e, z2) - loss(z1.detach() - e, z2)) / (2 * h)
    torch.testing.assert_close(grad, num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["sinsim", "matching_gap", "otco"])
def test_log_and_scaling_domains_agree(name):
    z1, z2 = (z.float() for z in _z(12, 6))
    ex = {"h1": z1 * 2 + 1, "h2": z2 - 1} if name == "sinsim" else {}
    vals = [create_loss(name, domain=d)(z1, z2, **ex) for d in ("log", "scaling")]
    torch.testing.assert_close(vals[0], vals[1], rtol=1e-5, atol=1e-6)
