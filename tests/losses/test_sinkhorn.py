import math
import warnings

import numpy as np
import ot
import pytest
import torch

from otzoo.losses.sinkhorn import (choose_domain, entropic_log_plan, log_plan, masked_log_kernel,
                                   sinkhorn, uot_kappa)

from . import reference as ref


def _cost(n=8, d=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(n, d, dtype=dtype, generator=g), dim=1)
    return 1 - z @ z.T


@pytest.mark.parametrize("eps", [0.5, 0.1])
def test_balanced_plan_matches_pot_with_inf_diagonal(eps):
    c = _cost()
    n = c.shape[0]
    f, g = sinkhorn(masked_log_kernel(c, eps), 2000, domain="log")
    ours = log_plan(masked_log_kernel(c, eps), f, g).exp()
    m = c.numpy().copy()
    np.fill_diagonal(m, np.inf)
    pot = ot.sinkhorn(np.ones(n), np.ones(n), m, eps, method="sinkhorn_log", numItermax=100000,
                      stopThr=1e-13)
    np.testing.assert_allclose(ours.numpy(), pot, atol=1e-9)
    assert np.all(np.diag(pot) == 0) and torch.all(ours.diagonal() == 0)


@pytest.mark.parametrize("domain", ["log", "scaling"])
@pytest.mark.parametrize("rho", [(0.2, 0.2), (0.05, 1.0)])
def test_unbalanced_plan_matches_pot(domain, rho):
    c, eps, iters = _cost(), 0.5, 7
    n = c.shape[0]
    la = math.log(1 / n)
    f, g = sinkhorn(masked_log_kernel(c, eps), iters, log_a=la, log_b=la, f0=la, g0=la,
                    kappa=(uot_kappa(rho[0], eps), uot_kappa(rho[1], eps)), domain=domain)
    ours = log_plan(masked_log_kernel(c, eps), f, g).exp()
    m = c.numpy().copy()
    np.fill_diagonal(m, np.inf)
    a = np.full(n, 1 / n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT warns that reg_type="entropy" ignores c
        pot = ot.unbalanced.sinkhorn_unbalanced(a, a, m, eps, reg_m=rho, reg_type="entropy",
                                                warmstart=(np.log(a), np.log(a)),
                                                numItermax=iters, stopThr=-1)
    np.testing.assert_allclose(ours.numpy(), pot, rtol=1e-10, atol=1e-14)


def test_half_steps_match_loop_reference():
    c = _cost(6)
    lk = masked_log_kernel(c, 0.3)
    for hs in (0, 1, 2, 5):
        f, g = sinkhorn(lk, 0, half_steps=hs)
        rf, rg = ref.sinkhorn(lk.numpy(), hs)
        np.testing.assert_allclose(f.numpy(), rf, atol=1e-12)
        np.testing.assert_allclose(g.numpy(), rg, atol=1e-12)


@pytest.mark.parametrize("kappa", [(1.0, 1.0), (0.3, 0.8)])
def test_log_and_scaling_domains_agree_in_value_and_gradient(kappa):
    g0 = torch.Generator().manual_seed(3)
    z = torch.randn(10, 5, dtype=torch.float64, generator=g0, requires_grad=True)
    w = torch.randn(10, 10, dtype=torch.float64, generator=g0)
    outs = []
    for domain in ("log", "scaling"):
        zn = torch.nn.functional.normalize(z, dim=1)
        lk = masked_log_kernel(1 - zn @ zn.T, 0.5)
        f, g = sinkhorn(lk, 10, kappa=kappa, log_a=-2.0, log_b=-2.0, domain=domain)
        val = (log_plan(lk, f, g).exp() * w).sum() + f.sum() - 2 * g.sum()
        grad, = torch.autograd.grad(val, z)
        outs.append((val, grad))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-10, atol=1e-12)


def test_auto_domain_picks_scaling_only_when_safe():
    c = _cost(dtype=torch.float32)
    assert choose_domain(masked_log_kernel(c, 0.5)) == "scaling"
    assert choose_domain(masked_log_kernel(c, 0.01)) == "log"   # exp(-200) underflows in fp32
    lk = masked_log_kernel(c, 0.045).requires_grad_(True)       # span ~44: fine without grad only
    assert choose_domain(lk) == "log"
    with torch.no_grad():
        assert choose_domain(lk) == "scaling"


def test_tolerance_stops_early_at_the_same_plan():
    lk = masked_log_kernel(_cost(), 0.5)
    f1, g1 = sinkhorn(lk, 1000, tol=1e-12)
    f2, g2 = sinkhorn(lk, 1000)
    torch.testing.assert_close(log_plan(lk, f1, g1), log_plan(lk, f2, g2))
    # a loose tol stops early: its potentials are those of some exact count < 39
    f3, g3 = sinkhorn(lk, 1000, tol=1e-3)
    diffs = [float((sinkhorn(lk, k)[0] - f3).abs().max()) for k in range(1, 40)]
    assert min(diffs) == 0.0 and diffs.index(0.0) < 39


def test_danskin_mode_is_detached_and_batched_solves_are_independent():
    c = torch.stack([_cost(seed=0), _cost(seed=1)]).requires_grad_(True)
    lk = -c / 0.5
    f, g = sinkhorn(lk, 5, danskin=True)
    assert not f.requires_grad and not g.requires_grad
    for k in range(2):
        fk, gk = sinkhorn(lk[k], 5)
        torch.testing.assert_close(f[k], fk.detach())
        torch.testing.assert_close(g[k], gk.detach())


def test_entropic_plan_matches_pot_cross_view():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, dtype=torch.float64, generator=g), torch.randn(5, 3, dtype=torch.float64, generator=g)
    c = torch.cdist(x, y) ** 2
    p = entropic_log_plan(c, 0.5, 3000).exp()
    a = np.full(5, 0.2)
    pot = ot.sinkhorn(a, a, c.numpy(), 0.5, method="sinkhorn_log", numItermax=100000, stopThr=1e-14)
    np.testing.assert_allclose(p.numpy(), pot, atol=1e-10)


@pytest.mark.parametrize("half_steps,kappa,tol", [(20, (1.0, 1.0), None), (7, (0.3, 0.8), None),
                                                  (400, (1.0, 1.0), 1e-6)])
def test_fast_scaling_backward_equals_autograd_through_the_loop(half_steps, kappa, tol):
    from otzoo.losses.sinkhorn import _ScalingSinkhorn, _sinkhorn_scaling_unrolled

    g0 = torch.Generator().manual_seed(5)
    K = torch.rand(7, 7, dtype=torch.float64, generator=g0).fill_diagonal_(0).requires_grad_(True)
    w1, w2 = torch.randn(7, dtype=torch.float64, generator=g0), torch.randn(7, dtype=torch.float64, generator=g0)
    la, z = torch.tensor(-1.0, dtype=torch.float64), torch.zeros(7, dtype=torch.float64)
    outs = []
    for fn in (_ScalingSinkhorn.apply, _sinkhorn_scaling_unrolled):
        f, g = fn(K, half_steps, la, la, kappa[0], kappa[1], z, z, tol)
        outs.append((f, g) + torch.autograd.grad((f * w1).sum() + (g * w2).sum(), K))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
