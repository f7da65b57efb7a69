"""Pretraining throughput (views/s), side by side in one run.

1. ``pretrain``: the real engine (``training.engine.train``: decoded uint8 data, batched
   per-image augmentation, method + loss, optimizer, logging) for simclr and gca_uot;
2. ``raw``: the same backbone + projector, forward + backward + SGD step on random tensors
   with the same precision / memory format and a trivial loss (the ceiling);
3. ``plain``: a plain fp32 PyTorch loop: ImageFolder/torchvision dataset + PIL transforms
   per image (two views) in a DataLoader, contiguous fp32, simclr loss.

Prints views/s, the ratios pretrain/raw (target >= 0.90) and pretrain/plain (target >= 3.5)
and the peak RSS. Example::

    python benchmarks/train_throughput.py --data-dir ../shared/data/cifar10 --steps 5
"""
import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.config import load_config  # noqa: E402
from training.engine import resolve_precision, train  # noqa: E402
from training.methods import build_method  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "training" / "configs" / "cifar10_cpu.yaml"


def bench_pretrain(method, args, n_images, cache_dir):
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"method={method}", f"arch={args.arch}", f"batch_size={args.batch}", "epochs=1",
                     f"data.subset={n_images}", "engine.log_every=1", "engine.progress=false",
                     f"data.cache_dir={cache_dir}", "engine.knn_every=0", f"engine.compile={args.compile}",
                     "engine.checkpoint_minutes=1000", f"engine.precision={args.precision}"]
        if args.data_dir:
            overrides.append(f"data.dir={args.data_dir}")
        else:
            overrides.append("dataset=synthetic")
        cfg = load_config(str(RECIPE), overrides)
        train(cfg, Path(tmp) / "run", command="benchmark")
        recs = [json.loads(l) for l in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    return [r["views_per_s"] for r in recs if r.get("event") == "step"][1:]  # first step: warmup


def make_raw(args, precision):
    cfg = load_config(None, [f"arch={args.arch}", "method=simclr"])
    model = build_method(cfg).to(memory_format=torch.channels_last)
    if args.compile:
        model.backbone.compile()
        model.projector.compile()
    net = torch.nn.Sequential(model.backbone, model.projector)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(2 * args.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if precision == "bf16" else None
    return net, opt, x, dtype


def bench_raw(args, state, steps):
    net, opt, x, dtype = state
    times = []
    for i in range(steps):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            z = net(x)
        loss = z.float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return [2 * args.batch / t for t in times]


def bench_plain(args, n_images):
    import torchvision.transforms as T
    from torch.utils.data import DataLoader, Subset

    from otzoo.losses import create_loss

    tf = T.Compose([T.RandomResizedCrop(32, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
                    T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2),
                    T.ToTensor(), T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])

    class TwoViews:
        def __call__(self, img):
            return tf(img), tf(img)

    if args.data_dir:
        from training.datasets import build_dataset

        ds = build_dataset("cifar10", "train", data_dir=args.data_dir, transform=TwoViews())
        ds = Subset(ds, list(range(0, len(ds), max(1, len(ds) // n_images)))[:n_images])
    else:
        from PIL import Image

        imgs = [Image.fromarray(torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy()) for _ in range(n_images)]
        ds = [(TwoViews()(im), 0) for im in imgs]  # pre-augmented: optimistic for the plain loop
    loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.plain_workers, drop_last=True)
    cfg = load_config(None, [f"arch={args.arch}", "method=simclr"])
    model = build_method(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = create_loss("simclr")
    times, t = [], time.perf_counter()
    for (v1, v2), _ in loader:
        z = model.projector(model.backbone(torch.cat([v1, v2])))
        z1, z2 = z.chunk(2)
        loss = loss_fn(z1, z2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        now = time.perf_counter()
        times.append(now - t)
        t = now
    return [2 * args.batch / x for x in times[1:]]  # first step: warmup + worker start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="CIFAR-10 ImageFolder root (default: synthetic images)")
    p.add_argument("--arch", default="resnet18_cifar")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=2, help="measured steps per setting and round")
    p.add_argument("--rounds", type=int, default=3,
                   help="the settings run in turn, this many times, so that a shared CPU's load hits all alike")
    p.add_argument("--methods", nargs="+", default=["simclr", "gca_uot"])
    p.add_argument("--precision", default="auto")
    p.add_argument("--plain-workers", type=int, default=0,
                   help="DataLoader workers of the plain loop (0: on 2 cores workers only steal compute)")
    p.add_argument("--skip-plain", action="store_true")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile backbone + projector in pretrain and raw (default: the recipe's engine.compile)")
    args = p.parse_args(argv)
    if args.compile is None:
        args.compile = load_config(str(RECIPE))["engine"]["compile"]
    precision = resolve_precision(args.precision, torch.device("cpu"))
    n_images = args.batch * (args.steps + 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision {precision}, compile {args.compile}, "
          f"batch {args.batch} ({2 * args.batch} views/step), {args.rounds} rounds x {args.steps} measured steps "
          f"per setting (+1 warmup step per pretrain/plain block, 1 raw warmup step)")
    runs = {"raw": []}
    runs.update({f"pretrain[{m}]": [] for m in args.methods})
    if not args.skip_plain:
        runs["plain fp32 + PIL"] = []
    raw_state = make_raw(args, precision)
    bench_raw(args, raw_state, 1)
    with tempfile.TemporaryDirectory() as cache:
        for r in range(args.rounds):
            runs["raw"] += bench_raw(args, raw_state, args.steps)
            for m in args.methods:
                runs[f"pretrain[{m}]"] += bench_pretrain(m, args, n_images, cache)
            if not args.skip_plain:
                runs["plain fp32 + PIL"] += bench_plain(args, n_images)
    results = {k: (statistics.median(v), v) for k, v in runs.items()}
    print(f"{'setting':<22}{'views/s (median)':>18}   per-step")
    for k, (med, per) in results.items():
        print(f"{k:<22}{med:>18.1f}   {' '.join(f'{v:.0f}' for v in per)}")
    raw = results["raw"][0]
    for m in args.methods:
        v = results[f"pretrain[{m}]"][0]
        line = f"pretrain[{m}] / raw = {v / raw:.3f} (target >= 0.90)"
        if "plain fp32 + PIL" in results:
            line += f";  / plain = {v / results['plain fp32 + PIL'][0]:.2f}x (target >= 3.5x)"
        print(line)
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
