"""Speed and memory of every otzoo loss, measured side by side in one run.

    python benchmarks/losses.py [--sizes 512 1024 4096] [--dim 128] [--repeats 5] [--no-step]

Prints, for n = 2B stacked views of dimension d:
  1. forward+backward time of each loss (median of --repeats, after one warm-up) and its
     ratio to SimCLR/InfoNCE measured in the same run;
  2. each loss's time at batch 256 (n = 512) as a percentage of one resnet18_cifar training
     step at batch 256 (bf16 autocast + channels_last, SGD) on this machine;
  3. memory held for backward at the largest n: the bytes of the unique tensor storages
     autograd saves during forward (torch.autograd.graph.saved_tensors_hooks), for the
     default iteration count and twice it. This is the part of peak memory that depends on
     the loss's graph; transient buffers of single ops are not included.
Targets (spec): every OT loss <= 2x InfoNCE at n = 1024, and < 3% of the step.
Timings on a shared CPU are noisy: compare ratios from the same run, not across runs.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from otzoo.losses import create_loss, list_losses

DEFAULT_ITERS = {"gca_ince": 10, "gca_rince": 10, "gca_uot": 10, "iot": 2, "iot_uni": 2,
                 "sinsim": 10, "matching_gap": 50, "otco": 20}


def _inputs(name, n, d, requires_grad=True):
    b = n // 2
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(b, d, generator=g).requires_grad_(requires_grad)
    z2 = torch.randn(b, d, generator=g).requires_grad_(requires_grad)
    extras = {}
    if name == "sinsim":
        extras = {"h1": torch.randn(b, 512, generator=g).requires_grad_(requires_grad),
                  "h2": torch.randn(b, 512, generator=g).requires_grad_(requires_grad)}
    if name == "byol":
        extras = {"t1": torch.randn(b, d, generator=g), "t2": torch.randn(b, d, generator=g)}
    return z1, z2, extras


def time_losses(names, n, d, repeats):
    """Median forward+backward time per loss; the losses take turns in every round so
    that load from other processes hits them alike."""
    setups = {name: (create_loss(name), _inputs(name, n, d)) for name in names}
    times = {name: [] for name in names}
    for i in range(repeats + 1):
        for name, (loss_fn, (z1, z2, ex)) in setups.items():
            t0 = time.perf_counter()
            loss_fn(z1, z2, **ex).backward()
            if i:
                times[name].append(time.perf_counter() - t0)
            z1.grad = z2.grad = None
    return {name: statistics.median(t) for name, t in times.items()}


def saved_bytes(name, n, d, **kw):
    loss_fn = create_loss(name, **kw)
    z1, z2, ex = _inputs(name, n, d)
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = loss_fn(z1, z2, **ex)
    out.backward()
    return sum(storages.values())


def resnet18_step_time(repeats):
    import otzoo

    if hasattr(otzoo, "create_model"):
        model = otzoo.create_model("resnet18_cifar", num_classes=0)
        source = "otzoo.create_model('resnet18_cifar')"
    else:  # core not there yet: timm's resnet18 with the CIFAR stem
        import timm

        model = timm.create_model("resnet18", num_classes=0)
        model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = torch.nn.Identity()
        source = "timm resnet18 + CIFAR stem (patched)"
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(256, 3, 32, 32).to(memory_format=torch.channels_last)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            feats = model(x)
        feats.float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), source


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 4096])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-step", action="store_true", help="skip the ResNet-18 step")
    args = p.parse_args(argv)
    names = ["simclr"] + [n for n in list_losses() if n != "simclr"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, d = {args.dim}, "
          f"median of {args.repeats} forward+backward passes (ms); ratio = loss / simclr")
    table = {}
    for n in args.sizes:
        reps = max(2, args.repeats // 2) if n > 2048 else args.repeats
        table[n] = time_losses(names, n, args.dim, reps)
    head = f"{'loss':14s}" + "".join(f"{'n=' + str(n):>12s}{'ratio':>8s}" for n in args.sizes)
    print(head)
    print("-" * len(head))
    for name in names:
        row = f"{name:14s}"
        for n in args.sizes:
            t = table[n][name]
            row += f"{1e3 * t:12.2f}{t / table[n]['simclr']:8.2f}"
        print(row)
    if 1024 in table:
        slow = [n for n in names if n not in ("simclr", "byol", "rince")
                and table[1024][n] > 2 * table[1024]["simclr"]]
        print(f"target <= 2x InfoNCE at n=1024: {'met' if not slow else 'MISSED by ' + ', '.join(slow)}")
    if not args.no_step and 512 in table:
        step, source = resnet18_step_time(3)
        print(f"\none resnet18_cifar training step, batch 256, bf16 autocast + channels_last: "
              f"{1e3 * step:.0f} ms ({source})")
        print(f"{'loss':14s}{'ms (n=512)':>12s}{'% of step':>11s}")
        for name in names:
            print(f"{name:14s}{1e3 * table[512][name]:12.2f}{100 * table[512][name] / step:10.2f}%")
        slow = [n for n in names if table[512][n] >= 0.03 * step]
        print(f"target < 3% of the step: {'met' if not slow else 'MISSED by ' + ', '.join(slow)}")
    n = max(args.sizes)
    print(f"\nmemory saved for backward at n={n} (MiB): default iters | 2x iters")
    for name in names:
        base = saved_bytes(name, n, args.dim) / 2**20
        if name in DEFAULT_ITERS:
            more = saved_bytes(name, n, args.dim, iters=2 * DEFAULT_ITERS[name]) / 2**20
            print(f"{name:14s}{base:10.1f} | {more:8.1f}")
        else:
            print(f"{name:14s}{base:10.1f}")


if __name__ == "__main__":
    main()
