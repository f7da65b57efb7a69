"""SimCLR/InfoNCE, RINCE and BYOL against loop references; gradcheck."""
import numpy as np
import pytest
import torch

from otzoo.losses import create_loss

from . import reference as ref


def _z(b=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, d, dtype=torch.float64, generator=g),
            torch.randn(b, d, dtype=torch.float64, generator=g))


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_simclr_reference(tau):
    z1, z2 = _z()
    np.testing.assert_allclose(create_loss("simclr", tau=tau)(z1, z2).item(),
                               ref.simclr(z1.numpy(), z2.numpy(), tau), rtol=1e-12)


@pytest.mark.parametrize("kw", [dict(tau=0.5, q=0.6, lam=0.01), dict(tau=0.2, q=1.0, lam=0.5)])
def test_rince_reference(kw):
    z1, z2 = _z()
    np.testing.assert_allclose(create_loss("rince", **kw)(z1, z2).item(),
                               ref.rince(z1.numpy(), z2.numpy(), **kw), rtol=1e-12)


def test_byol_reference_and_target_detached():
    p1, p2 = _z(seed=1)
    t1, t2 = _z(seed=2)
    t1.requires_grad_(True)
    p1.requires_grad_(True)
    out = create_loss("byol")(p1, p2, t1=t1, t2=t2)
    np.testing.assert_allclose(out.item(), ref.byol(p1.detach().numpy(), p2.numpy(), t1.detach().numpy(),
                                                    t2.numpy()), rtol=1e-12)
    assert out.grad_fn is not None
    out.backward()
    assert t1.grad is None and p1.grad is not None  # no gradient to the target branch


@pytest.mark.parametrize("name", ["simclr", "rince"])
def test_gradcheck(name):
    z1, z2 = _z(3, 4)
    loss = create_loss(name)
    assert torch.autograd.gradcheck(loss, (z1.requires_grad_(), z2.requires_grad_()))


def test_gradcheck_byol():
    p1, p2 = _z(3, 4)
    t1, t2 = _z(3, 4, seed=5)
    loss = create_loss("byol")
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, t1=t1, t2=t2),
                                    (p1.requires_grad_(), p2.requires_grad_()))
