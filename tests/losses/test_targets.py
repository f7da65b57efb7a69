"""Target plans (GCA section 3.4) and domain_target."""
import numpy as np
import pytest
import torch

from otzoo.losses import create_loss, domain_target

from . import reference as ref


def _z(b=4, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(b, d, dtype=torch.float64, generator=g)
    return z1, z1 + 0.7 * torch.randn(b, d, dtype=torch.float64, generator=g)


def test_domain_target_values_by_hand():
    # B = 3 images, domains [a, a, b]; n = 6, t(i) = i + 3 mod 6
    p = domain_target(["a", "a", "b"], alpha=0.5, beta=0.25, dtype=torch.float64)
    row0 = np.array([0, 0.5, 0.25, 1, 0.5, 0.25])  # self 0, same-domain 0.5, other 0.25, positive 1
    row2 = np.array([0.25, 0.25, 0, 0.25, 0.25, 1])  # image 2's only same-domain view is its positive
    np.testing.assert_allclose(p[0].numpy(), row0 / row0.sum())
    np.testing.assert_allclose(p[2].numpy(), row2 / row2.sum())
    np.testing.assert_allclose(p.sum(1).numpy(), np.ones(6))
    assert (p.diagonal() == 0).all()


def test_domain_target_zero_weights_is_the_identity_target():
    p = domain_target(torch.tensor([0, 1, 0, 2]), 0.0, 0.0)
    n = 8
    expected = torch.zeros(n, n)
    expected[torch.arange(n), (torch.arange(n) + 4) % n] = 1
    torch.testing.assert_close(p, expected)


@pytest.mark.parametrize("name", ["gca_ince", "gca_uot"])
def test_zero_weight_target_gives_back_the_default(name):
    z1, z2 = _z()
    tgt = domain_target([0, 1, 1, 0], 0.0, 0.0, dtype=torch.float64)
    torch.testing.assert_close(create_loss(name, target=tgt)(z1, z2), create_loss(name)(z1, z2))


def test_target_losses_match_references():
    z1, z2 = _z()
    tgt = domain_target([0, 1, 1, 0], 0.3, 0.1, dtype=torch.float64)
    np.testing.assert_allclose(create_loss("gca_ince", target=tgt)(z1, z2).item(),
                               ref.gca_ince(z1.numpy(), z2.numpy(), 0.5, 10, target=tgt.numpy()),
                               rtol=1e-10)
    np.testing.assert_allclose(create_loss("gca_uot", target=tgt)(z1, z2).item(),
                               ref.gca_uot(z1.numpy(), z2.numpy(), 0.5, 10, 0.2, 0.2, 0.6, 0.01, 1.0,
                                           0.2, target=tgt.numpy()), rtol=1e-10)
    # the domain prior changes the loss, and user targets are row-normalised
    assert create_loss("gca_ince", target=tgt)(z1, z2) != create_loss("gca_ince")(z1, z2)
    torch.testing.assert_close(create_loss("gca_ince", target=3 * tgt)(z1, z2),
                               create_loss("gca_ince", target=tgt)(z1, z2))


def test_target_gradcheck_and_errors():
    z1, z2 = _z(3, 3)
    tgt = domain_target([0, 1, 1], 0.3, 0.1, dtype=torch.float64)
    loss = create_loss("gca_uot", target=tgt)
    assert torch.autograd.gradcheck(loss, (z1.requires_grad_(), z2.requires_grad_()))
    with pytest.raises(ValueError, match="gca_ince: target is"):
        create_loss("gca_ince", target=tgt)(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="zero diagonal"):
        create_loss("gca_ince", target=torch.ones(6, 6))
    with pytest.raises(ValueError, match="non-negative"):
        create_loss("gca_uot", target=-tgt)
    with pytest.raises(ValueError, match="alpha"):
        domain_target([0, 1], -1.0, 0.0)
