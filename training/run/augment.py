"""Batched two-view augmentation on uint8 image tensors, each image with its own random parameters.

``torchvision.transforms.v2`` applied to a batch draws one set of parameters for the whole
batch; here every image draws its own, and the work is vectorised over the batch:

- RandomResizedCrop(size, scale, ratio) via ``torchvision.ops.roi_align`` (bilinear, with
  area averaging when a crop is larger than the output), same sampling rule as torchvision
  (10 attempts, then a center crop with the ratio clamped);
- horizontal flip;
- ColorJitter(brightness, contrast, saturation, hue) applied with probability ``jitter_p``,
  the four operations in an independent random order per image (as torchvision does per
  call), same formulas as ``torchvision.transforms.functional``;
- grayscale with probability ``gray_p``;
- Gaussian blur with probability ``blur_p`` (SimCLR's ImageNet pipeline: kernel 10% of the
  size, made odd, sigma uniform in ``blur_sigma``, reflect padding; the formula of
  ``torchvision.transforms.functional.gaussian_blur``); then normalisation with mean/std.
  With ``blur_p=0`` (the CIFAR recipes) no blur parameters are drawn at all.

Extreme policies of the GCA paper (noisy views), applied after the standard pipeline. The
paper's Appendix D.2 is not in our copy; these follow the policy names and the authors'
public code, at its severity 5:

- ``large_erase``: one random rectangle per image set to black, area 10-33% of the image,
  aspect ratio in (0.3, 3.3) (torchvision RandomErasing(p=1, scale=(0.10, 0.33)));
- ``brightness``: HSV value + 0.3 (clipped), hue and saturation kept (ImageNet-C style);
- ``strong_crop``: a random ``int(size * 96 / 224)``-pixel square crop resized back to ``size``.

Usage::

    aug = TwoViewAugment.from_config(cfg["aug"], mean, std)
    params = aug.sample(len(x), generator)        # per-view, per-image parameters (cheap, on the host)
    v1, v2 = aug.apply(x_uint8, params)            # (B, 3, size, size) float32, normalised, on x's device

Sampling is separate from application so that a distributed rank can draw the parameters of
the whole global batch and apply its own slice (:func:`slice_params`): results then do not
depend on the number of processes.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

__all__ = ["TwoViewAugment", "ViewAugment", "slice_params", "POLICIES", "normalize", "blur_kernel_size"]

POLICIES = ("simclr", "large_erase", "brightness", "strong_crop")
_GRAY = (0.299, 0.587, 0.114)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def _sample_boxes(n, height, width, scale, ratio, g, attempts=10):
    """torchvision RandomResizedCrop.get_params for n images at once -> (n, 4) x1, y1, x2, y2."""
    area = height * width
    target = area * _uniform(n * attempts, scale[0], scale[1], g).view(n, attempts)
    log_r = _uniform(n * attempts, math.log(ratio[0]), math.log(ratio[1]), g).view(n, attempts)
    aspect = torch.exp(log_r)
    w = torch.sqrt(target * aspect).round()
    h = torch.sqrt(target / aspect).round()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    idx = first.clamp(min=0)
    w = w.gather(1, idx[:, None]).squeeze(1)
    h = h.gather(1, idx[:, None]).squeeze(1)
    # fallback: whole-image center crop with the ratio clamped to the range
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fw, fh = round(height * max(ratio)), height
    else:
        fw, fh = width, height
    bad = first < 0
    w = torch.where(bad, torch.full_like(w, fw), w)
    h = torch.where(bad, torch.full_like(h, fh), h)
    u = torch.rand(n, 2, generator=g)
    y = torch.floor(u[:, 0] * (height - h + 1))
    x = torch.floor(u[:, 1] * (width - w + 1))
    y = torch.where(bad, torch.full_like(y, (height - fh) // 2), y)
    x = torch.where(bad, torch.full_like(x, (width - fw) // 2), x)
    return torch.stack([x, y, x + w, y + h], 1)


def _crop_resize(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Per-image crop (boxes in pixel edges, (n, 4)) resized to size x size; float in, float out."""
    index = torch.arange(len(x), dtype=x.dtype, device=x.device)[:, None]
    rois = torch.cat([index, boxes.to(x.device, x.dtype, non_blocking=True)], 1)
    return roi_align(x, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def blur_kernel_size(size: int) -> int:
    """SimCLR's blur kernel: 10% of the image side, made odd (23 at 224 px, 13 at 128 px)."""
    return int(0.1 * size) // 2 * 2 + 1


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Separable Gaussian blur of each image of ``x`` (m, C, H, W) with its own ``sigma`` (m,)."""
    half = (k - 1) / 2
    t = torch.linspace(-half, half, k, device=x.device, dtype=x.dtype)
    w = torch.exp(-0.5 * (t[None] / sigma.to(x.device, x.dtype)[:, None]) ** 2)
    w = (w / w.sum(1, keepdim=True)).repeat_interleave(x.shape[1], 0)  # (m * C, k)
    m, c, h, wd = x.shape
    y = F.pad(x.reshape(1, m * c, h, wd), (k // 2, k // 2, k // 2, k // 2), mode="reflect")
    y = F.conv2d(y, w[:, None, None, :], groups=m * c)
    return F.conv2d(y, w[:, None, :, None], groups=m * c).reshape(m, c, h, wd)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_div, (maxc - g) / cr_div, (maxc - b) / cr_div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack([h, s, maxc], 1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    table = torch.stack([  # (6 sectors, 3 channels, ...)
        torch.stack([v, q, p, p, t, v], 0),
        torch.stack([t, v, v, q, p, p], 0),
        torch.stack([p, p, t, v, v, q], 0),
    ], 1)
    return table.gather(0, i[None, None].expand(1, 3, *i.shape)).squeeze(0).permute(1, 0, 2, 3)


def _adjust(x, op: int, f: torch.Tensor) -> torch.Tensor:
    """Apply jitter op (0 brightness, 1 contrast, 2 saturation, 3 hue) with per-image factor f."""
    f4 = f.view(-1, 1, 1, 1)
    if op == 0:
        return (x * f4).clamp(0.0, 1.0)
    if op == 1:
        mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
        return (f4 * x + (1.0 - f4) * mean).clamp(0.0, 1.0)
    if op == 2:
        return (f4 * x + (1.0 - f4) * _grayscale(x)).clamp(0.0, 1.0)
    hsv = _rgb_to_hsv(x)
    hsv[:, 0] = torch.remainder(hsv[:, 0] + f.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(hsv)


def _add_value(x: torch.Tensor, c: float) -> torch.Tensor:
    """HSV value + c, clipped to [0, 1]; hue and saturation unchanged (exact for RGB)."""
    v, _ = x.max(1, keepdim=True)
    v_new = (v + c).clamp(0.0, 1.0)
    scaled = x * (v_new / v.clamp(min=1e-12))
    return torch.where(v > 0, scaled, v_new.expand_as(x))


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1).to(x.device, non_blocking=True)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1).to(x.device, non_blocking=True)
    return (x - m) / s


def slice_params(params, start: int, end: int):
    """The parameters of images start:end (works on one view's dict or a tuple of them)."""
    if isinstance(params, (tuple, list)):
        return type(params)(slice_params(p, start, end) for p in params)
    return {k: v[start:end] for k, v in params.items()}


class ViewAugment:
    """One view's random augmentation of a uint8 batch (B, 3, H, W) -> float (B, 3, size, size)."""

    def __init__(self, size: int = 32, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3),
                 hflip: float = 0.5, jitter=(0.4, 0.4, 0.4, 0.1), jitter_p: float = 0.8,
                 gray_p: float = 0.2, policy: str = "simclr",
                 mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                 blur_p: float = 0.0, blur_sigma=(0.1, 2.0)):
        if policy not in POLICIES:
            raise ValueError(f"unknown augmentation policy {policy!r}; choose one of {POLICIES}")
        if not 0.0 <= jitter[3] <= 0.5:
            raise ValueError(f"hue jitter must be in [0, 0.5], got {jitter[3]}")
        self.size, self.crop_scale, self.crop_ratio = int(size), tuple(crop_scale), tuple(crop_ratio)
        self.hflip, self.jitter, self.jitter_p, self.gray_p = hflip, tuple(jitter), jitter_p, gray_p
        self.policy, self.mean, self.std = policy, tuple(mean), tuple(std)
        self.blur_p, self.blur_sigma = blur_p, tuple(blur_sigma)

    def sample(self, n: int, height: int, width: int, g: torch.Generator) -> Dict[str, torch.Tensor]:
        """Draw the parameters of n images (all small tensors with leading dim n)."""
        b, c, s, h = self.jitter
        p = {
            "box": _sample_boxes(n, height, width, self.crop_scale, self.crop_ratio, g),
            "flip": torch.rand(n, generator=g) < self.hflip,
            "jitter": torch.rand(n, generator=g) < self.jitter_p,
            "factors": torch.stack([
                _uniform(n, max(0.0, 1 - b), 1 + b, g), _uniform(n, max(0.0, 1 - c), 1 + c, g),
                _uniform(n, max(0.0, 1 - s), 1 + s, g), _uniform(n, -h, h, g)], 1),
            "order": torch.argsort(torch.rand(n, 4, generator=g), dim=1),
            "gray": torch.rand(n, generator=g) < self.gray_p,
        }
        if self.blur_p > 0:
            p["blur"] = torch.rand(n, generator=g) < self.blur_p
            p["sigma"] = _uniform(n, *self.blur_sigma, g)
        if self.policy == "large_erase":
            p["erase"] = _sample_boxes(n, self.size, self.size, (0.10, 0.33), (0.3, 3.3), g)
        elif self.policy == "strong_crop":
            side = int(self.size * 96 / 224)
            xy = torch.floor(torch.rand(n, 2, generator=g) * (self.size - side + 1))
            p["strong_box"] = torch.cat([xy, xy + side], 1)
        return p

    def apply(self, x: torch.Tensor, p: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Augment ``x`` (uint8, on any device) with parameters ``p`` from :meth:`sample`.

        ``p`` stays on the host: which images each jitter op and the grayscale touch is
        decided there, and only index and factor tensors travel to ``x.device``, so a CUDA
        batch is augmented without reading anything back from the device."""
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a uint8 batch (B, 3, H, W), got {tuple(x.shape)} {x.dtype}")
        if len(x) != len(p["box"]):
            raise ValueError(f"{len(x)} images but parameters for {len(p['box'])}")
        dev = x.device

        def to_dev(t):
            return t.to(dev, non_blocking=True)

        out = _crop_resize(x.float().div_(255.0), p["box"], self.size)
        out = torch.where(to_dev(p["flip"]).view(-1, 1, 1, 1), out.flip(-1), out)
        for pos in range(4):  # the jitter ops in each image's own order, each on the images it selects
            for op in range(4):
                sel = (p["jitter"] & (p["order"][:, pos] == op)).nonzero().squeeze(1)
                if len(sel):  # a host-side shape: no sync
                    sel_dev = to_dev(sel)
                    out[sel_dev] = _adjust(out[sel_dev], op, to_dev(p["factors"][sel, op]))
        gray = p["gray"].nonzero().squeeze(1)
        if len(gray):
            gray_dev = to_dev(gray)
            out[gray_dev] = _grayscale(out[gray_dev]).expand(-1, 3, -1, -1)
        blur = p["blur"].nonzero().squeeze(1) if "blur" in p else []
        if len(blur):
            blur_dev = to_dev(blur)
            out[blur_dev] = _gaussian_blur(out[blur_dev], p["sigma"][blur], blur_kernel_size(self.size))
        if self.policy == "large_erase":
            ar = torch.arange(self.size, dtype=out.dtype, device=dev)
            e = to_dev(p["erase"]).to(out.dtype)
            rows = (ar[None] >= e[:, 1:2]) & (ar[None] < e[:, 3:4])
            cols = (ar[None] >= e[:, 0:1]) & (ar[None] < e[:, 2:3])
            out = out.masked_fill((rows[:, :, None] & cols[:, None, :])[:, None], 0.0)
        elif self.policy == "brightness":
            out = _add_value(out, 0.3)
        elif self.policy == "strong_crop":
            out = _crop_resize(out, p["strong_box"], self.size)
        return normalize(out, self.mean, self.std)

    def __call__(self, x: torch.Tensor, g: Optional[torch.Generator] = None) -> torch.Tensor:
        return self.apply(x, self.sample(len(x), x.shape[-2], x.shape[-1], g or torch.default_generator))


class TwoViewAugment:
    """Two independent views per image: ``aug(x, g) -> (v1, v2)``; see the module docstring."""

    def __init__(self, **kwargs):
        self.view = ViewAugment(**kwargs)

    @classmethod
    def from_config(cls, aug_cfg: dict, mean, std) -> "TwoViewAugment":
        return cls(size=aug_cfg["size"], crop_scale=aug_cfg["crop_scale"], crop_ratio=aug_cfg["crop_ratio"],
                   hflip=aug_cfg["hflip"], jitter=aug_cfg["jitter"], jitter_p=aug_cfg["jitter_p"],
                   gray_p=aug_cfg["gray_p"], policy=aug_cfg["policy"], mean=mean, std=std,
                   blur_p=aug_cfg.get("blur_p", 0.0), blur_sigma=aug_cfg.get("blur_sigma", (0.1, 2.0)))

    def sample(self, n: int, height: int, width: int, g: torch.Generator) -> Tuple[dict, dict]:
        return self.view.sample(n, height, width, g), self.view.sample(n, height, width, g)

    def apply(self, x: torch.Tensor, params: Tuple[dict, dict]) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.view.apply(x, params[0]), self.view.apply(x, params[1])

    def __call__(self, x: torch.Tensor, g: Optional[torch.Generator] = None):
        return self.apply(x, self.sample(len(x), x.shape[-2], x.shape[-1], g or torch.default_generator))
