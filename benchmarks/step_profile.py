"""Where a pretraining step's time goes, and which engine settings make it faster: measured side by side.

Builds the real :class:`training.run.engine.Trainer` of a recipe (default ``cifar10_long.yaml``, the
campaign's) once per setting, then runs the settings' steps in turn (``--rounds``), so that a shared CPU's
load hits all alike. For each setting: the engine's own ``train_step`` (views/s), and an instrumented copy of
it that times each phase (batch indices + augmentation parameters, augmentation, backbone / projector / loss
forward, backward, optimizer), so the phases' sum can be checked against the real step. A contrastive method
(backbone -> projector -> loss) only. ``--profile``: torch.profiler's top operators of the first setting.

Settings are ``name:key=value,key=value`` (config overrides, e.g. ``nchw:engine.channels_last=false``); the
first is the reference the others' ratios are taken against. Examples::

    python benchmarks/step_profile.py --data-dir ../shared/data/cifar10 --profile
    python benchmarks/step_profile.py --setting base: --setting nchw:engine.channels_last=false --rounds 4
    python benchmarks/step_profile.py --setting b512: --setting b256:batch_size=256 --method simclr

What it found, and what was tried: ``benchmarks/RESULTS.md``.

Pause a training run first (its steps take the same cores): the numbers are only as quiet as the CPU.
"""
import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.run.config import load_config  # noqa: E402
from training.run.engine import Trainer  # noqa: E402

RECIPE = "training/configs/cifar10_long.yaml"
PHASES = ("batch + params", "augment", "backbone fwd", "projector fwd", "loss fwd", "backward", "optimizer")


class Clock:
    """Wall time per phase (the CPU runs synchronously; on CUDA each phase ends with a synchronize)."""

    def __init__(self, device: torch.device):
        self.device, self.times = device, defaultdict(list)

    @contextlib.contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times[name].append(time.perf_counter() - t)


def instrumented_step(tr: Trainer, clock: Clock) -> None:
    """:meth:`Trainer.train_step` for a contrastive method, one phase at a time."""
    from training.run.augment import slice_params
    from training.run.engine import _step_generator

    m = tr.method
    with clock("batch + params"):
        idx = tr.shuffler.next_batch()
        params = tr.aug.sample(tr.global_batch, tr.height, tr.width, _step_generator(tr.seed, tr.step))
    with clock("augment"):
        x = tr.images[idx.to(tr.device)]
        views = tr.aug.apply(x, slice_params(params, 0, len(idx)))
        v1, v2 = (v.contiguous(memory_format=tr.memory_format) for v in views)
    with tr.autocast():
        with clock("backbone fwd"):
            h = m.backbone(torch.cat([v1, v2]))
        with clock("projector fwd"):
            z1, z2 = m.projector(h).float().chunk(2)
        with clock("loss fwd"):
            loss = m.loss_fn(z1, z2)
    with clock("backward"):
        tr.optimizer.zero_grad(set_to_none=True)
        loss.backward()
    with clock("optimizer"):
        tr.optimizer.step()
        tr.scheduler.step()
    tr.step += 1


def build(args, overrides: list, out: Path) -> Trainer:
    cfg = load_config(str(args.recipe), [f"method={args.method}", *overrides, "engine.knn_every=0",
                                         "engine.progress=false", "engine.checkpoint_minutes=100000",
                                         *([f"data.dir={args.data_dir}", f"data.cache_dir={out.parent / 'cache'}"]
                                           if args.data_dir else ["dataset=synthetic"])])
    n = int(cfg["batch_size"]) * (args.warmup + 2 * args.steps * args.rounds + 1)
    cfg["data"]["subset"] = n
    tr = Trainer(cfg, out)
    for _ in range(args.warmup):  # compile, allocator, oneDNN primitive caches
        tr.train_step()
    return tr


def views_per_s(tr: Trainer, seconds: list) -> float:
    return 2 * tr.global_batch / statistics.median(seconds)


def run_setting(tr: Trainer, clock: Clock, steps: int, whole: list) -> None:
    for _ in range(steps):
        t = time.perf_counter()
        tr.train_step()
        if tr.device.type == "cuda":
            torch.cuda.synchronize(tr.device)
        whole.append(time.perf_counter() - t)
    for _ in range(steps):
        instrumented_step(tr, clock)


def report(settings: dict) -> None:
    ref_name, (ref_tr, _, ref_whole) = next(iter(settings.items()))
    ref = views_per_s(ref_tr, ref_whole)
    print(f"\n{'setting':<16}{'views/s':>9}{'x ' + ref_name:>12}   per-phase median ms (instrumented step)")
    print(" " * 40 + "  ".join(f"{p[:12]:>12}" for p in (*PHASES, "sum")))
    for name, (tr, clock, whole) in settings.items():
        v = views_per_s(tr, whole)
        med = [statistics.median(clock.times[p]) * 1000 for p in PHASES]
        print(f"{name:<16}{v:>9.1f}{v / ref:>12.3f}" + " " * 3 + "  ".join(f"{x:>12.1f}" for x in (*med, sum(med))))
        whole_ms = statistics.median(whole) * 1000
        print(f"{'':<16}engine step {whole_ms:.0f} ms; phase shares: "
              + ", ".join(f"{p} {x / sum(med):.0%}" for p, x in zip(PHASES, med)))


def profile(tr: Trainer, steps: int) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            tr.train_step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="CIFAR-10 ImageFolder root (default: synthetic images)")
    p.add_argument("--recipe", default=RECIPE)
    p.add_argument("--method", default="gca_uot", help="a contrastive method (backbone -> projector -> loss)")
    p.add_argument("--setting", action="append", metavar="NAME:K=V,K=V",
                   help="a setting (config overrides); repeat; the first is the reference (default: base:)")
    p.add_argument("--steps", type=int, default=3, help="steps per setting, round and kind (engine / instrumented)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--profile", action="store_true", help="torch.profiler's top operators of the first setting")
    args = p.parse_args(argv)
    args.setting = args.setting or ["base:"]
    return args


def main(argv=None):
    args = parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, recipe {args.recipe}, "
          f"method {args.method}, {args.rounds} rounds x {args.steps} steps per setting and kind")
    settings = {}
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.setting:
            name, _, rest = s.partition(":")
            tr = build(args, [kv for kv in rest.split(",") if kv], Path(tmp) / name)
            settings[name] = (tr, Clock(tr.device), [])
            print(f"built {name}: {tr.hardware}", flush=True)
        for _ in range(args.rounds):
            for tr, clock, whole in settings.values():
                run_setting(tr, clock, args.steps, whole)
        report(settings)
        if args.profile:
            profile(next(iter(settings.values()))[0], args.steps)


if __name__ == "__main__":
    main()
