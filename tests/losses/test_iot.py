"""IOT-CL (u1 / ua / uab) and its uniformity penalty."""
import numpy as np
import pytest
import torch

from otzoo.losses import create_loss

from . import reference as ref


def _z(b=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(b, d, dtype=torch.float64, generator=g)
    return z1, z1 + 0.7 * torch.randn(b, d, dtype=torch.float64, generator=g)


@pytest.mark.parametrize("constraint", ["u1", "ua", "uab"])
@pytest.mark.parametrize("eps,iters", [(0.5, 2), (0.2, 5)])
def test_iot_reference(constraint, eps, iters):
    z1, z2 = _z()
    loss = create_loss("iot", epsilon=eps, constraint=constraint, iters=iters)
    np.testing.assert_allclose(loss(z1, z2).item(),
                               ref.iot(z1.numpy(), z2.numpy(), eps, constraint, iters), rtol=1e-10)
    np.testing.assert_allclose(loss.plan(z1, z2).numpy(),
                               np.exp(ref.iot_log_plan(z1.numpy(), z2.numpy(), eps, constraint, iters)),
                               rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("constraint", ["u1", "ua", "uab"])
@pytest.mark.parametrize("lambda_p", [0.5, 2.0])
def test_iot_uni_reference(constraint, lambda_p):
    z1, z2 = _z()
    loss = create_loss("iot_uni", constraint=constraint, lambda_p=lambda_p)
    np.testing.assert_allclose(loss(z1, z2).item(),
                               ref.iot_uni(z1.numpy(), z2.numpy(), 0.5, constraint, 2, lambda_p),
                               rtol=1e-10)


def test_iot_closed_forms():
    z1, z2 = _z()
    torch.testing.assert_close(create_loss("iot", constraint="ua", epsilon=0.3)(z1, z2),
                               create_loss("simclr", tau=0.3)(z1, z2))
    for k in (1, 2, 5):
        torch.testing.assert_close(create_loss("iot", constraint="uab", iters=k)(z1, z2),
                                   create_loss("gca_ince", iters=k)(z1, z2))
    # lambda_p = 0 leaves the IOT loss; the penalty is >= 0 (a KL between equal-mass rows)
    for c in ("u1", "ua", "uab"):
        base = create_loss("iot", constraint=c)(z1, z2)
        torch.testing.assert_close(create_loss("iot_uni", constraint=c, lambda_p=0.0)(z1, z2), base)
        assert create_loss("iot_uni", constraint=c)(z1, z2) >= base


def test_iot_plans_have_the_constraint_marginals():
    z1, z2 = _z()
    n = 2 * z1.shape[0]
    p1 = create_loss("iot", constraint="u1").plan(z1, z2)
    torch.testing.assert_close(p1.sum(), torch.tensor(float(n), dtype=p1.dtype))
    pa = create_loss("iot", constraint="ua").plan(z1, z2)
    torch.testing.assert_close(pa.sum(1), torch.ones(n, dtype=pa.dtype))
    pab = create_loss("iot", constraint="uab", iters=500).plan(z1, z2)
    torch.testing.assert_close(pab.sum(0), torch.ones(n, dtype=pab.dtype))
    torch.testing.assert_close(pab.sum(1), torch.ones(n, dtype=pab.dtype))


@pytest.mark.parametrize("name,constraint", [("iot", "u1"), ("iot", "ua"), ("iot", "uab"),
                                             ("iot_uni", "u1"), ("iot_uni", "ua"), ("iot_uni", "uab")])
def test_gradcheck(name, constraint):
    z1, z2 = _z(3, 4)
    loss = create_loss(name, constraint=constraint)
    assert torch.autograd.gradcheck(loss, (z1.requires_grad_(), z2.requires_grad_()))
