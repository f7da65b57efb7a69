import colorsys

import pytest
import torch
import torchvision.transforms.v2.functional as F

from training.run.augment import POLICIES, TwoViewAugment, ViewAugment, _add_value, _adjust, _crop_resize, slice_params

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _images(n=16, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _unnormalize(x):
    return x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)


@pytest.mark.parametrize("policy", POLICIES)
def test_shapes_dtype_and_range(policy):
    aug = TwoViewAugment(policy=policy, size=24, mean=MEAN, std=STD)
    v1, v2 = aug(_images(8, 32), torch.Generator().manual_seed(0))
    for v in (v1, v2):
        assert v.shape == (8, 3, 24, 24) and v.dtype == torch.float32
        raw = _unnormalize(v)
        assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
    assert not torch.equal(v1, v2)


def test_each_image_draws_its_own_parameters():
    x = _images(1).expand(16, -1, -1, -1).contiguous()  # 16 copies of the same image
    view = ViewAugment(mean=MEAN, std=STD)
    g = torch.Generator().manual_seed(0)
    p = view.sample(16, 32, 32, g)
    assert len(torch.unique(p["box"], dim=0)) > 1
    assert len(torch.unique(p["factors"][:, 0])) == 16
    out = view.apply(x, p)
    flat = out.flatten(1)
    distinct = {tuple(r.tolist()) for r in flat.round(decimals=4)}
    assert len(distinct) == 16  # a batch-wide transform would give one output


def test_seed_reproduces_and_differs():
    x = _images()
    aug = TwoViewAugment(mean=MEAN, std=STD)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_slice_of_global_params_equals_slice_of_global_output():
    """A rank applying its slice of the global batch's parameters gets the global result."""
    x = _images(12)
    aug = TwoViewAugment(policy="large_erase", mean=MEAN, std=STD)
    params = aug.sample(12, 32, 32, torch.Generator().manual_seed(0))
    full = aug.apply(x, params)
    part = aug.apply(x[4:8], slice_params(params, 4, 8))
    torch.testing.assert_close(part[0], full[0][4:8])
    torch.testing.assert_close(part[1], full[1][4:8])


@pytest.mark.parametrize("op, fn, factor", [
    (0, F.adjust_brightness, 1.3), (0, F.adjust_brightness, 0.6),
    (1, F.adjust_contrast, 0.7), (1, F.adjust_contrast, 1.4),
    (2, F.adjust_saturation, 1.4), (2, F.adjust_saturation, 0.6),
    (3, F.adjust_hue, 0.08), (3, F.adjust_hue, -0.1),
])
def test_jitter_ops_match_torchvision(op, fn, factor):
    x = torch.rand(6, 3, 8, 8)
    ours = _adjust(x.clone(), op, torch.full((6,), factor))
    ref = torch.stack([fn(xi, factor) for xi in x])
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_crop_resize_matches_torchvision():
    x = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(_crop_resize(x, torch.tensor([[0, 0, 32, 32.]] * 4), 32), x)
    ours = _crop_resize(x, torch.tensor([[4, 6, 20, 22.]] * 4), 32)
    ref = F.resized_crop(x, 6, 4, 16, 16, [32, 32], antialias=True)
    # upsampling is bilinear as in torchvision; at the border roi_align reads the real neighbours
    torch.testing.assert_close(ours[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2], atol=1e-5, rtol=0)


def test_parameter_statistics_follow_the_recipe():
    view = ViewAugment(mean=MEAN, std=STD)
    p = view.sample(4000, 32, 32, torch.Generator().manual_seed(0))
    assert abs(p["flip"].float().mean() - 0.5) < 0.03
    assert abs(p["jitter"].float().mean() - 0.8) < 0.03
    assert abs(p["gray"].float().mean() - 0.2) < 0.03
    w = p["box"][:, 2] - p["box"][:, 0]
    h = p["box"][:, 3] - p["box"][:, 1]
    assert (p["box"][:, :2] >= 0).all() and (p["box"][:, 2] <= 32).all() and (p["box"][:, 3] <= 32).all()
    area = w * h / 1024
    assert area.min() >= 0.08 * 0.8 and area.max() <= 1.0  # rounding to pixels may shave a little
    assert (w / h).min() >= 0.75 * 0.8 and (w / h).max() <= 4 / 3 * 1.25
    f = p["factors"]
    assert f[:, 0].min() >= 0.6 and f[:, 0].max() <= 1.4 and f[:, 3].abs().max() <= 0.1
    assert sorted(p["order"][0].tolist()) == [0, 1, 2, 3]
    assert len(torch.unique(p["order"], dim=0)) == 24  # every order of the four ops occurs


def test_large_erase_blacks_out_a_large_rectangle():
    view = ViewAugment(policy="large_erase", jitter_p=0.0, gray_p=0.0, mean=(0, 0, 0), std=(1, 1, 1))
    x = torch.full((32, 3, 32, 32), 200, dtype=torch.uint8)
    out = view(x, torch.Generator().manual_seed(0))
    frac = (out == 0).all(1).flatten(1).float().mean(1)
    assert frac.min() >= 0.10 * 0.8 and frac.max() <= 0.33 * 1.2


def test_brightness_policy_adds_to_hsv_value():
    x = torch.rand(2, 3, 4, 4) * 0.6
    out = _add_value(x, 0.3)
    for i in range(4):
        h, s, v = colorsys.rgb_to_hsv(*x[0, :, 0, i].tolist())
        torch.testing.assert_close(out[0, :, 0, i], torch.tensor(colorsys.hsv_to_rgb(h, s, min(1.0, v + 0.3))),
                                   atol=1e-5, rtol=0)


def test_strong_crop_zooms_in():
    """A 13-pixel crop of a 32-pixel view: neighbouring output pixels are much more alike."""
    x = _images(16)
    plain = ViewAugment(crop_scale=(1.0, 1.0), jitter_p=0, gray_p=0, hflip=0, mean=(0, 0, 0), std=(1, 1, 1))
    strong = ViewAugment(policy="strong_crop", crop_scale=(1.0, 1.0), jitter_p=0, gray_p=0, hflip=0,
                         mean=(0, 0, 0), std=(1, 1, 1))
    a, b = plain(x, torch.Generator().manual_seed(0)), strong(x, torch.Generator().manual_seed(0))
    tv = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()
    assert tv(b) < 0.6 * tv(a)


def test_rejects_non_uint8_input():
    with pytest.raises(ValueError, match="uint8"):
        ViewAugment()(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="policy"):
        ViewAugment(policy="nope")


# Per-image sums of view 1 (first 6 images) and |view 2| summed, from the released engine's
# augmentation (otzoo 0.1.0 as of the first two weights) on the same input and seed: the
# device-aware apply must give the same views.
RELEASED_VIEWS = {
    "simclr": ([491.8156, 1325.9233, 271.8337, 1648.0103, 292.4175, 1647.2769], 36200.797),
    "large_erase": ([-1563.4694, -795.9602, -1327.2552, 688.4609, -722.3079, 600.4885], 48204.758),
    "brightness": ([3309.376, 4546.7725, 2242.3972, 3868.9958, 3943.2461, 4760.5278], 57333.641),
    "strong_crop": ([869.3819, 1323.561, 310.6038, 1592.8737, 461.6316, 1166.9272], 32062.512),
}


@pytest.mark.parametrize("policy", POLICIES)
def test_views_equal_the_released_engines(policy):
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    v1, v2 = TwoViewAugment(policy=policy, mean=MEAN, std=STD)(x, torch.Generator().manual_seed(7))
    sums, total = RELEASED_VIEWS[policy]
    torch.testing.assert_close(v1.sum((1, 2, 3))[:6], torch.tensor(sums), rtol=1e-5, atol=2e-3)
    torch.testing.assert_close(v2.abs().sum(), torch.tensor(total), rtol=1e-5, atol=0.0)


@pytest.mark.cuda
@pytest.mark.parametrize("policy", POLICIES)
def test_views_on_cuda_equal_views_on_cpu(policy, cuda_device):
    x = _images(64)
    aug = TwoViewAugment(policy=policy, mean=MEAN, std=STD)
    params = aug.sample(64, 32, 32, torch.Generator().manual_seed(3))
    cpu = aug.apply(x, params)
    gpu = aug.apply(x.to(cuda_device), params)
    for a, b in zip(cpu, gpu):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [32, 128])
def test_blur_matches_torchvision_per_image(size):
    from torchvision.transforms.functional import gaussian_blur
    from training.run.augment import _gaussian_blur, blur_kernel_size

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, size, size, generator=g)
    sigma = torch.tensor([0.1, 0.9, 2.0])
    k = blur_kernel_size(size)
    assert k % 2 == 1 and k == {32: 3, 128: 13}[size]
    want = torch.stack([gaussian_blur(x[i], [k, k], [float(s), float(s)]) for i, s in enumerate(sigma)])
    torch.testing.assert_close(_gaussian_blur(x, sigma, k), want, atol=1e-5, rtol=1e-5)


def test_blur_policy_blurs_only_the_images_it_draws_and_draws_nothing_when_off():
    from training.run.augment import ViewAugment

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 40, 40), dtype=torch.uint8, generator=g)
    off, on = ViewAugment(size=32), ViewAugment(size=32, blur_p=0.5)
    p_off = off.sample(16, 40, 40, torch.Generator().manual_seed(1))
    assert "blur" not in p_off  # the CIFAR recipes' random stream is unchanged
    p_on = on.sample(16, 40, 40, torch.Generator().manual_seed(1))
    assert all(torch.equal(p_on[k], v) for k, v in p_off.items())  # blur is drawn after everything else
    a, b = off.apply(x, p_off), on.apply(x, p_on)
    same = (a == b).flatten(1).all(1)
    assert torch.equal(same, ~p_on["blur"]) and 0 < int(p_on["blur"].sum()) < 16
    assert b[p_on["blur"]].std() < a[p_on["blur"]].std()  # smoother
