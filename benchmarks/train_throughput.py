"""Pretraining throughput (views/s), side by side in one run, on a CPU or a CUDA GPU.

1. ``pretrain``: the real engine (``python -m training pretrain`` in a subprocess: decoded
   uint8 data on the device, batched per-image augmentation, method + loss, optimizer,
   logging) for simclr and gca_uot;
2. ``baseline`` (with ``--baseline REV``): the same command from git revision REV of this
   repository (extracted to a temp dir), e.g. the previous engine, to check it did not regress;
3. ``raw``: the same backbone + projector, forward + backward + SGD step on random tensors
   on the device with the same precision / memory format and a trivial loss (the ceiling);
4. ``plain``: a plain fp32 PyTorch loop: ImageFolder/torchvision dataset + PIL transforms
   per image (two views) in a DataLoader, contiguous fp32, simclr loss (CPU only);
5. ``lightly`` (with ``--lightly``): a SimCLR loop written with lightly (its transform, head and loss) on the
   same backbone, precision, memory format and compile as the engine: what a careful user writes.

Prints views/s, the ratios pretrain/raw (target >= 0.97), pretrain/baseline (target >= 0.95),
pretrain/lightly (target >= 1.2) and pretrain/plain (target >= 3.5), and the peak RSS. Examples::

    python benchmarks/train_throughput.py --data-dir ../shared/data/cifar10 --steps 5
    python benchmarks/train_throughput.py --data-dir DATA --baseline 72e7f4d --skip-plain
    python benchmarks/train_throughput.py --data-dir DATA --recipe training/configs/cifar10_long.yaml \
        --batch 512 --methods simclr --skip-plain --lightly    # the campaign's recipe beside lightly
    python benchmarks/train_throughput.py --device cuda --recipe training/configs/cifar10_gpu.yaml \\
        --batch 512 --steps 50 --log-every 50
"""
import argparse
import contextlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.run.config import load_config  # noqa: E402
from training.run.device import autocast, resolve_device, resolve_precision  # noqa: E402
from training.run.methods import build_method  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPE = "training/configs/cifar10_cpu.yaml"


def extract_revision(rev: str, dest: Path) -> Path:
    """The tree of git revision ``rev`` of this repository, written under ``dest``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def bench_pretrain(src: Path, method, args, n_images, cache_dir, device_override=True, extra_env=()):
    """(views/s of the log records, peak RSS in MiB) of ``python -m training pretrain`` run from checkout
    ``src``."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"method={method}", f"arch={args.arch}", f"batch_size={args.batch}", "epochs=1",
                     f"data.subset={n_images}", f"engine.log_every={args.log_every}", "engine.progress=false",
                     f"data.cache_dir={cache_dir}", "engine.knn_every=0", f"engine.compile={args.compile}",
                     "engine.checkpoint_minutes=1000", f"engine.precision={args.precision}"]
        if device_override:
            overrides.append(f"engine.device={args.device}")
        overrides.append(f"data.dir={args.data_dir}" if args.data_dir else "dataset=synthetic")
        cmd = [sys.executable, "-m", "training", "pretrain", "--config", args.recipe, *overrides,
               "--output-dir", str(Path(tmp) / "run")]
        env = {**os.environ, "PYTHONPATH": str(src), **dict(kv.split("=", 1) for kv in extra_env)}
        proc = subprocess.Popen(cmd, cwd=src, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        if os.waitstatus_to_exitcode(status):
            sys.exit(f"{shlex.join(cmd)} (in {src}) failed:\n{stderr.decode()[-2000:]}")
        recs = [json.loads(l) for l in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    rates = [r["views_per_s"] for r in recs if r.get("event") == "step"][1:]  # first record: warmup
    return rates, usage.ru_maxrss / 1024


def make_raw(args, precision, device):
    cfg = load_config(None, [f"arch={args.arch}", "method=simclr"])
    model = build_method(cfg).to(device, memory_format=torch.channels_last)
    if args.compile:
        model.backbone.compile()
        model.projector.compile()
    net = torch.nn.Sequential(model.backbone, model.projector)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(2 * args.batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    return net, opt, x, precision, device


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_raw(args, state, steps):
    """views/s per block of ``log_every`` steps (the pretrain records' granularity)."""
    net, opt, x, precision, device = state
    rates = []
    for _ in range(max(1, steps // args.log_every)):
        _sync(device)
        t = time.perf_counter()
        for _ in range(args.log_every):
            with autocast(device, precision):
                z = net(x)
            loss = z.float().pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        rates.append(2 * args.batch * args.log_every / (time.perf_counter() - t))
    return rates


def _pil_images(args, n_images):
    """``n_images`` training images decoded once into memory (PIL), as torchvision's CIFAR10 dataset holds them."""
    if args.data_dir:
        from training.run.datasets import build_dataset

        ds = build_dataset("cifar10", "train", data_dir=args.data_dir)
        step = max(1, len(ds) // n_images)
        return [ds[i][0].convert("RGB") for i in range(0, len(ds), step)][:n_images]
    from PIL import Image

    return [Image.fromarray(torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy()) for _ in range(n_images)]


def _loader_loop(loader, model, loss_fn, opt, step_context) -> list:
    """views/s of each step of a DataLoader-fed two-view loop (the first step dropped: warmup + worker start)."""
    times, t = [], time.perf_counter()
    for (v1, v2), _ in loader:
        with step_context():
            z1, z2 = model(torch.cat([v1, v2])).float().chunk(2)
            loss = loss_fn(z1, z2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        now = time.perf_counter()
        times.append(now - t)
        t = now
    return [2 * len(v1) / x for x in times[1:]]


class _TwoViews:
    def __init__(self, transform):
        self.transform = transform

    def __call__(self, img):
        return self.transform(img), self.transform(img)


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, images, two_views):
        self.images, self.two_views = images, two_views

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.two_views(self.images[i]), 0


def bench_plain(args, n_images):
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    from otzoo.losses import create_loss

    tf = T.Compose([T.RandomResizedCrop(32, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
                    T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2),
                    T.ToTensor(), T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    ds = _Pairs(_pil_images(args, n_images), _TwoViews(tf))
    loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.plain_workers, drop_last=True)
    model = build_method(load_config(None, [f"arch={args.arch}", "method=simclr"]))
    net = torch.nn.Sequential(model.backbone, model.projector)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    return _loader_loop(loader, net, create_loss("simclr"), opt, contextlib.nullcontext)


def bench_lightly(args, n_images, precision, device):
    """A SimCLR loop as a careful user writes it with lightly: its CIFAR-10 transform (``SimCLRTransform(
    input_size=32, gaussian_blur=0.0)``), ``SimCLRProjectionHead(512, 2048, 128)`` and ``NTXentLoss(0.5)``, on
    the same backbone with the same bf16 autocast, channels_last and torch.compile as otzoo's engine; images
    in memory (no decoding), the DataLoader with ``--plain-workers`` workers."""
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform
    from torch.utils.data import DataLoader

    import otzoo

    tf = SimCLRTransform(input_size=32, gaussian_blur=0.0)  # returns [view1, view2]
    ds = _Pairs(_pil_images(args, n_images), lambda im: tuple(tf(im)))
    loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.plain_workers, drop_last=True)
    backbone = otzoo.create_model(args.arch, num_classes=0)
    net = torch.nn.Sequential(backbone, SimCLRProjectionHead(backbone.num_features, 2048, 128))
    net = net.to(device, memory_format=torch.channels_last)
    if args.compile:
        net.compile()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def to_device(loader):
        for (v1, v2), y in loader:
            yield tuple(v.to(device).contiguous(memory_format=torch.channels_last) for v in (v1, v2)), y
    return _loader_loop(to_device(loader), net, NTXentLoss(temperature=0.5), opt, lambda: autocast(device, precision))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="CIFAR-10 ImageFolder root (default: synthetic images)")
    p.add_argument("--recipe", default=RECIPE, help=f"pretrain config, relative to the repo (default {RECIPE}; "
                                                    "on a GPU: training/configs/cifar10_gpu.yaml)")
    p.add_argument("--arch", default="resnet18_cifar")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=2, help="measured steps per setting and round")
    p.add_argument("--rounds", type=int, default=3,
                   help="the settings run in turn, this many times, so that a shared CPU's load hits all alike")
    p.add_argument("--methods", nargs="+", default=["simclr", "gca_uot"])
    p.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")
    p.add_argument("--log-every", type=int, default=1,
                   help="steps per views/s record (on a GPU use --steps: a record reads the loss back)")
    p.add_argument("--baseline", metavar="REV",
                   help="also run the pretrain engine of git revision REV side by side (e.g. the previous one)")
    p.add_argument("--precision", default="auto")
    p.add_argument("--plain-workers", type=int, default=0,
                   help="DataLoader workers of the plain loop (0: on 2 cores workers only steal compute)")
    p.add_argument("--skip-plain", action="store_true")
    p.add_argument("--pretrain-env", action="append", default=[], metavar="K=V",
                   help="also run pretrain with these environment variables (e.g. OMP_PROC_BIND=close); repeatable")
    p.add_argument("--lightly", action="store_true",
                   help="also a lightly SimCLR loop (needs `pip install lightly`, a benchmark-only dependency)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile backbone + projector in pretrain and raw (default: the recipe's engine.compile)")
    args = p.parse_args(argv)
    if args.compile is None:
        args.compile = load_config(str(REPO / args.recipe))["engine"]["compile"]
    if args.data_dir:
        args.data_dir = str(Path(args.data_dir).resolve())  # the baseline runs from its own folder
    return args


def measure(args, device, precision) -> tuple:
    """``({setting: [views/s per record]}, {pretrain setting: peak RSS in MiB})``, the settings run in turn for
    ``args.rounds`` rounds."""
    n_images = args.batch * (args.steps + args.log_every)
    runs = {"raw": []}
    runs.update({f"pretrain[{m}]": [] for m in args.methods})
    if args.baseline:
        runs.update({f"baseline[{m}]": [] for m in args.methods})
    if args.pretrain_env:
        runs.update({f"pretrain[{m}] +env": [] for m in args.methods})
    if not args.skip_plain:
        runs["plain fp32 + PIL"] = []
    if args.lightly:
        runs["lightly simclr"] = []
    peaks = {}
    raw_state = make_raw(args, precision, device)
    bench_raw(args, raw_state, args.log_every)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        base = extract_revision(args.baseline, Path(tmp) / "baseline") if args.baseline else None
        has_device = base is not None and any("device" in f.read_text() for f in base.glob("training/**/config.py"))
        for _ in range(args.rounds):
            runs["raw"] += bench_raw(args, raw_state, args.steps)
            for m in args.methods:
                _add(runs, peaks, f"pretrain[{m}]", bench_pretrain(REPO, m, args, n_images, cache))
                if args.pretrain_env:
                    _add(runs, peaks, f"pretrain[{m}] +env", bench_pretrain(REPO, m, args, n_images, cache,
                                                                            extra_env=args.pretrain_env))
                if base is not None:
                    _add(runs, peaks, f"baseline[{m}]", bench_pretrain(base, m, args, n_images, cache, has_device))
            if not args.skip_plain:
                runs["plain fp32 + PIL"] += bench_plain(args, n_images)
            if args.lightly:
                runs["lightly simclr"] += bench_lightly(args, n_images, precision, device)
    return runs, peaks


def _add(runs: dict, peaks: dict, setting: str, measured: tuple) -> None:
    rates, peak = measured
    runs[setting] += rates
    peaks[setting] = max(peaks.get(setting, 0.0), peak)


def report(args, runs: dict, peaks: dict) -> None:
    results = {k: (statistics.median(v), v) for k, v in runs.items()}
    if args.pretrain_env:
        print(f"+env: {' '.join(args.pretrain_env)}")
    print(f"{'setting':<24}{'views/s (median)':>18}   per-step")
    for k, (med, per) in results.items():
        print(f"{k:<24}{med:>18.1f}   {' '.join(f'{v:.0f}' for v in per)}")
    raw = results["raw"][0]
    for m in args.methods:
        v = results[f"pretrain[{m}]"][0]
        line = f"pretrain[{m}] / raw = {v / raw:.3f} (target >= 0.97)"
        if args.baseline:
            line += f";  / baseline {args.baseline} = {v / results[f'baseline[{m}]'][0]:.3f} (target >= 0.95)"
        if "lightly simclr" in results:
            line += f";  / lightly = {v / results['lightly simclr'][0]:.2f}x (target >= 1.2x)"
        if "plain fp32 + PIL" in results:
            line += f";  / plain = {v / results['plain fp32 + PIL'][0]:.2f}x (target >= 3.5x)"
        print(line)
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (this process: raw, plain, "
          "lightly, with the allocator's defaults); " + ", ".join(f"{k} {v:.0f} MiB" for k, v in peaks.items()))


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    if device.type == "cuda":
        args.skip_plain = True
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, precision {precision}, "
          f"compile {args.compile}, recipe {args.recipe}, batch {args.batch} ({2 * args.batch} views/step), "
          f"{args.rounds} rounds x {args.steps} measured steps per setting (+1 warmup step per pretrain/plain "
          "block, 1 raw warmup step)")
    report(args, *measure(args, device, precision))


if __name__ == "__main__":
    main()
