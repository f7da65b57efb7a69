"""Generic checks run on every registered loss (parametrized over list_losses())."""
import math

import pytest
import torch

from otzoo.losses import NonFiniteInputError, create_loss, list_losses

from .common import NEEDS_CONVERGENCE, extras_for, make, swap_extras, temperature_names

ALL = list_losses()


def test_registry_names_and_aliases():
    assert set(ALL) == {"simclr", "gca_ince", "rince", "gca_rince", "gca_uot", "iot",
                        "iot_uni", "sinsim", "matching_gap", "otco", "byol"}
    assert "ince" in list_losses(include_aliases=True)
    z1, z2 = torch.randn(5, 4), torch.randn(5, 4)
    torch.testing.assert_close(create_loss("ince")(z1, z2), create_loss("simclr")(z1, z2))
    assert list_losses("gca_*") == ["gca_ince", "gca_rince", "gca_uot"]
    with pytest.raises(ValueError, match="Unknown loss"):
        create_loss("nope")
    with pytest.raises(ValueError, match="bad hyperparameters"):
        create_loss("simclr", epsilon=0.1)


@pytest.mark.parametrize("name,kw,match", [
    ("gca_ince", {"epsilon": 0}, "epsilon"), ("gca_uot", {"epsilon": -1.0}, "epsilon"),
    ("rince", {"q": 0}, "q"), ("gca_rince", {"q": 1.5}, r"\(0, 1\]"),
    ("gca_ince", {"iters": -1}, "iters"), ("iot", {"constraint": "u2"}, "constraint"),
    ("simclr", {"tau": float("nan")}, "tau"), ("gca_uot", {"rho1": 0}, "rho1"),
    ("gca_ince", {"domain": "fast"}, "domain"), ("sinsim", {"epsilon_h": 0}, "epsilon_h"),
])
def test_bad_hyperparameters(name, kw, match):
    with pytest.raises(ValueError, match=match):
        create_loss(name, **kw)


@pytest.mark.parametrize("name", ALL)
def test_bad_inputs_give_clear_errors(name):
    loss = make(name)
    b, d = 4, 6
    ex = extras_for(name, b)
    z = torch.randn(b, d)
    with pytest.raises(ValueError, match=rf"{name}: .*B >= 2"):
        loss(z[:1], z[:1], **extras_for(name, 1))
    with pytest.raises(ValueError, match=name):
        loss(z, torch.randn(b, d + 1), **ex)
    with pytest.raises(ValueError, match=name):
        loss(z, torch.randn(b + 1, d), **ex)
    with pytest.raises(NonFiniteInputError, match=rf"{name}: .*NaN or inf"):
        loss(z, torch.full((b, d), float("nan")), **ex)
    with pytest.raises(ValueError, match=rf"{name}: .*device"):
        loss(z, torch.randn(b, d, device="meta"), **ex)
    with pytest.raises(ValueError, match=rf"{name}: .*\(B, D\)"):
        loss(z[None], z[None], **ex)
    if ex:
        with pytest.raises(ValueError, match=rf"{name}: missing"):
            loss(z, z)
    else:
        with pytest.raises(ValueError, match=rf"{name}: unexpected"):
            loss(z, z, h1=z)


def _finite_loss_and_grads(name, z1, z2, ex, **kw):
    z1 = z1.clone().requires_grad_(True)
    z2 = z2.clone().requires_grad_(True)
    ex = {k: v.clone().requires_grad_(k.startswith("h")) for k, v in ex.items()}
    out = make(name, **kw)(z1, z2, **ex)
    out.backward()
    assert out.dim() == 0 and torch.isfinite(out), (name, kw, out)
    for t in (z1, z2, *ex.values()):
        if t.requires_grad:
            assert t.grad is not None and torch.isfinite(t.grad).all(), (name, kw)
    return out


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("case", ["random", "identical", "zeros", "b2", "one_zero_row"])
def test_finite_on_degenerate_inputs(name, case):
    b, d = (2 if case == "b2" else 6), 5
    z1, z2 = torch.randn(b, d), torch.randn(b, d)
    ex = extras_for(name, b, d=d)
    if case == "identical":
        z1 = z2 = torch.ones(b, d)
        ex = {k: torch.ones_like(v) for k, v in ex.items()}
    elif case == "zeros":
        z1, z2 = torch.zeros(b, d), torch.zeros(b, d)
        ex = extras_for(name, b, d=d, zero=True)
    elif case == "one_zero_row":
        z1[0] = 0
    _finite_loss_and_grads(name, z1, z2, ex)


@pytest.mark.parametrize("name", [n for n in ALL if temperature_names(n)])
@pytest.mark.parametrize("eps", [0.01, 0.05, 0.2, 1.0])
def test_finite_over_epsilon_range(name, eps):
    b, d = 8, 5
    kw = {p: eps for p in temperature_names(name)}
    _finite_loss_and_grads(name, torch.randn(b, d), torch.randn(b, d), extras_for(name, b, d=d), **kw)
    _finite_loss_and_grads(name, torch.ones(b, d), torch.ones(b, d),
                           {k: torch.ones_like(v) for k, v in extras_for(name, b, d=d).items()}, **kw)


@pytest.mark.parametrize("name", ALL)
def test_dtype_fp32_under_bf16_autocast_and_float64_kept(name):
    b, d = 6, 8
    lin = torch.nn.Linear(d, d)
    x1, x2 = torch.randn(b, d), torch.randn(b, d)
    ex = extras_for(name, b, d=d)
    loss = make(name)
    ref = loss(lin(x1), lin(x2), **ex)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z1, z2 = lin(x1), lin(x2)
        assert z1.dtype == torch.bfloat16
        out = loss(z1, z2, **{k: v.bfloat16() for k, v in ex.items()})
    assert out.dtype == torch.float32
    out.backward()
    assert all(torch.isfinite(p.grad).all() for p in lin.parameters())
    torch.testing.assert_close(out, ref, rtol=0.05, atol=0.05)  # bf16 inputs, fp32 loss
    ex64 = {k: v.double() for k, v in ex.items()}
    assert loss(x1.double(), x2.double(), **ex64).dtype == torch.float64


def _inputs64(name, b=6, d=5):
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(b, d, dtype=torch.float64, generator=g)
    z2 = z1 + 0.5 * torch.randn(b, d, dtype=torch.float64, generator=g)
    return z1, z2, extras_for(name, b, torch.float64, d, generator=g)


@pytest.mark.parametrize("name", ALL)
def test_invariant_to_batch_permutation_and_scale(name):
    z1, z2, ex = _inputs64(name)
    loss = make(name)
    ref = loss(z1, z2, **ex)
    perm = torch.randperm(z1.shape[0])
    torch.testing.assert_close(loss(z1[perm], z2[perm], **{k: v[perm] for k, v in ex.items()}), ref)
    torch.testing.assert_close(loss(3.7 * z1, 0.2 * z2, **{k: 5 * v for k, v in ex.items()}), ref)
    # the plan is permuted along with the batch
    p, pp = loss.plan(z1, z2, **ex), loss.plan(z1[perm], z2[perm], **{k: v[perm] for k, v in ex.items()})
    idx = perm if p.shape[0] == z1.shape[0] else torch.cat([perm, perm + z1.shape[0]])
    torch.testing.assert_close(pp, p[idx][:, idx])


@pytest.mark.parametrize("name", ALL)
def test_invariant_to_swapping_views(name):
    z1, z2, ex = _inputs64(name)
    loss = make(name, **NEEDS_CONVERGENCE.get(name, {}))
    torch.testing.assert_close(loss(z2, z1, **swap_extras(name, ex)), loss(z1, z2, **ex),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ALL)
def test_plan_is_a_detached_coupling(name):
    z1, z2, ex = _inputs64(name)
    z1.requires_grad_(True)
    loss = make(name)
    p = loss.plan(z1, z2, **ex)
    assert loss.plan_layout == ("cross_view" if name in ("sinsim", "matching_gap", "otco", "byol") else "stacked")
    n = z1.shape[0] if loss.plan_layout == "cross_view" else 2 * z1.shape[0]
    assert p.shape == (n, n) and not p.requires_grad
    assert (p >= 0).all() and torch.isfinite(p).all()
    if n == 2 * z1.shape[0]:
        assert (p.diagonal() == 0).all()  # a view is never matched with itself


@pytest.mark.parametrize("name", ALL)
def test_loss_depends_on_the_pairing(name):
    # a loss that ignores which rows are positives would pass many checks above
    z1, z2, ex = _inputs64(name)
    loss = make(name)
    shift = torch.roll(torch.arange(z1.shape[0]), 1)
    assert not math.isclose(loss(z1, z2, **ex).item(),
                            loss(z1, z2[shift], **{k: (v[shift] if k in ("h2", "t2") else v)
                                                   for k, v in ex.items()}).item(), rel_tol=1e-6)
