"""GCA-INCE, GCA-RINCE, GCA-UOT: references, closed forms, POT, domains, gradcheck."""
import warnings

import numpy as np
import ot
import pytest
import torch

from otzoo.losses import create_loss
from otzoo.losses.functional import stacked_log_kernel
from otzoo.losses.sinkhorn import sinkhorn

from . import reference as ref


def _z(b=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(b, d, dtype=torch.float64, generator=g)
    return z1, z1 + 0.7 * torch.randn(b, d, dtype=torch.float64, generator=g)


@pytest.mark.parametrize("eps,iters", [(0.5, 10), (0.2, 3), (0.5, 0)])
def test_gca_ince_reference(eps, iters):
    z1, z2 = _z()
    np.testing.assert_allclose(create_loss("gca_ince", epsilon=eps, iters=iters)(z1, z2).item(),
                               ref.gca_ince(z1.numpy(), z2.numpy(), eps, iters), rtol=1e-10)


@pytest.mark.parametrize("eps,iters,q,lam", [(0.5, 10, 0.6, 0.01), (0.3, 2, 1.0, 0.2)])
def test_gca_rince_reference(eps, iters, q, lam):
    z1, z2 = _z()
    loss = create_loss("gca_rince", epsilon=eps, iters=iters, q=q, lam=lam)
    np.testing.assert_allclose(loss(z1, z2).item(),
                               ref.gca_rince(z1.numpy(), z2.numpy(), eps, iters, q, lam), rtol=1e-10)


@pytest.mark.parametrize("kw", [dict(), dict(epsilon=0.3, iters=4, rho1=0.05, rho2=1.0, q=0.9,
                                              lam=0.1, r1=0.5, r2=1.0)])
def test_gca_uot_reference(kw):
    z1, z2 = _z()
    full = dict(epsilon=0.5, iters=10, rho1=0.2, rho2=0.2, q=0.6, lam=0.01, r1=1.0, r2=0.2)
    full.update(kw)
    np.testing.assert_allclose(create_loss("gca_uot", **kw)(z1, z2).item(),
                               ref.gca_uot(z1.numpy(), z2.numpy(), full["epsilon"], full["iters"],
                                           full["rho1"], full["rho2"], full["q"], full["lam"],
                                           full["r1"], full["r2"]), rtol=1e-10)


@pytest.mark.parametrize("eps", [0.1, 0.5])
def test_gca_ince_after_one_row_step_is_infonce(eps):
    z1, z2 = _z()
    lk = stacked_log_kernel(z1, z2, eps)
    n = lk.shape[0]
    f, g = sinkhorn(lk, 0, half_steps=1)
    t = (torch.arange(n) + n // 2) % n
    one_row_step = -(lk[torch.arange(n), t] + f + g[t]).mean()
    torch.testing.assert_close(one_row_step, create_loss("simclr", tau=eps)(z1, z2))


def test_gca_ince_never_increases_with_half_steps_and_is_below_infonce():
    z1, z2 = _z(8, 3, seed=4)
    lk = stacked_log_kernel(z1, z2, 0.3)
    n = lk.shape[0]
    t = (torch.arange(n) + n // 2) % n
    values = []
    for hs in range(1, 16):
        f, g = sinkhorn(lk, 0, half_steps=hs)
        values.append(-(lk[torch.arange(n), t] + f + g[t]).mean().item())
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:])), values
    assert values[-1] < values[0] - 1e-6
    assert create_loss("gca_ince", epsilon=0.3)(z1, z2) <= create_loss("simclr", tau=0.3)(z1, z2)


@pytest.mark.parametrize("eps", [0.3, 0.5])
def test_gca_rince_zero_iters_is_rince(eps):
    z1, z2 = _z()
    torch.testing.assert_close(create_loss("gca_rince", epsilon=eps, iters=0)(z1, z2),
                               create_loss("rince", tau=eps)(z1, z2))


def test_gca_uot_huge_rho_is_balanced_plan_over_n():
    z1, z2 = _z()
    n = 2 * z1.shape[0]
    for iters in (1, 4, 10):
        uot = create_loss("gca_uot", rho1=1e8, rho2=1e8, iters=iters).plan(z1, z2)
        bal = create_loss("gca_ince", iters=iters).plan(z1, z2)
        torch.testing.assert_close(uot, bal / n, rtol=1e-6, atol=1e-12)


def test_gca_ince_converged_plan_matches_pot():
    z1, z2 = _z()
    plan = create_loss("gca_ince", iters=3000, epsilon=0.2).plan(z1, z2)
    c = (1 - ref.stacked_S(z1.numpy(), z2.numpy()))
    np.fill_diagonal(c, np.inf)
    n = len(c)
    pot = ot.sinkhorn(np.ones(n), np.ones(n), c, 0.2, method="sinkhorn_log", numItermax=100000,
                      stopThr=1e-13)
    np.testing.assert_allclose(plan.numpy(), pot, atol=1e-9)


def test_gca_uot_plan_matches_pot():
    z1, z2 = _z()
    plan = create_loss("gca_uot").plan(z1, z2)  # defaults: eps 0.5, 10 iters, rho 0.2
    c = (1 - ref.stacked_S(z1.numpy(), z2.numpy()))
    np.fill_diagonal(c, np.inf)
    a = np.full(len(c), 1 / len(c))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pot = ot.unbalanced.sinkhorn_unbalanced(a, a, c, 0.5, reg_m=(0.2, 0.2), reg_type="entropy",
                                                warmstart=(np.log(a), np.log(a)), numItermax=10,
                                                stopThr=-1)
    np.testing.assert_allclose(plan.numpy(), pot, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("name", ["gca_ince", "gca_rince", "gca_uot"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_and_scaling_domains_agree(name, dtype):
    z1, z2 = (z.to(dtype) for z in _z(16, 8))
    res = []
    for domain in ("log", "scaling"):
        a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
        out = create_loss(name, domain=domain)(a, b)
        out.backward()
        res.append((out, a.grad, b.grad))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-11, atol=1e-13)
    for x, y in zip(*res):
        torch.testing.assert_close(x, y, **tol)


@pytest.mark.parametrize("name,kw", [("gca_ince", {}), ("gca_rince", {}), ("gca_uot", {}),
                                     ("gca_ince", {"domain": "log", "iters": 3}),
                                     ("gca_uot", {"domain": "log", "iters": 3})])
def test_gradcheck_through_the_iterations(name, kw):
    z1, z2 = _z(3, 4)
    loss = create_loss(name, **kw)
    assert torch.autograd.gradcheck(loss, (z1.requires_grad_(), z2.requires_grad_()))
