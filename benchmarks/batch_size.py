"""Training views/s against batch size, side by side in one run.

The backbone + projector forward + backward + SGD step (``raw`` in ``train_throughput.py``:
random tensors, the recipe's precision / memory format / compile) at each ``--batches`` size,
the sizes run in turn for ``--rounds`` rounds so that a shared CPU's load hits all alike.
Prints median views/s per size and its ratio to ``--reference`` (the recipe's batch): a
ratio near 1 means a smaller batch buys more optimizer steps per CPU-hour at no cost in views.
Example::

    python benchmarks/batch_size.py --batches 64 128 256 512
"""
import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.train_throughput import RECIPE, bench_raw, make_raw  # noqa: E402
from training.run.config import load_config  # noqa: E402
from training.run.device import resolve_precision  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet18_cifar")
    p.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256, 512], help="images per step (x2 views)")
    p.add_argument("--reference", type=int, default=None, help="batch the ratios refer to (default: the recipe's)")
    p.add_argument("--steps", type=int, default=3, help="measured steps per size and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", default="auto")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile backbone + projector (default: the recipe's engine.compile)")
    args = p.parse_args(argv)
    recipe = load_config(str(RECIPE))
    args.compile = recipe["engine"]["compile"] if args.compile is None else args.compile
    ref = args.reference or recipe["batch_size"]
    if ref not in args.batches:
        args.batches.append(ref)
    precision = resolve_precision(args.precision, torch.device("cpu"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision {precision}, "
          f"compile {args.compile}, {args.rounds} rounds x {args.steps} measured steps per batch size")
    states = {}
    for b in args.batches:
        states[b] = make_raw(argparse.Namespace(arch=args.arch, batch=b, compile=args.compile), precision)
        bench_raw(argparse.Namespace(batch=b), states[b], 2)  # warmup (and compile for this shape)
    runs = {b: [] for b in args.batches}
    for _ in range(args.rounds):
        for b in args.batches:
            runs[b] += bench_raw(argparse.Namespace(batch=b), states[b], args.steps)
    med = {b: statistics.median(v) for b, v in runs.items()}
    print(f"{'batch':>6}{'views/s (median)':>18}{'ratio to ' + str(ref):>14}   per-step")
    for b in sorted(runs):
        print(f"{b:>6}{med[b]:>18.1f}{med[b] / med[ref]:>14.3f}   {' '.join(f'{v:.0f}' for v in runs[b])}")


if __name__ == "__main__":
    main()
