"""What one fine-tuning run of ``RECIPE_10PCT`` costs here, per architecture and input size.

Times training steps of ``training.evaluate.finetune`` (batch 128, SGD, channels_last, the
recipe's precision fp32) and a test forward, side by side in one process, then prints images/s
and the minutes of a 10%-label run of ``--epochs`` epochs for each (dataset, size):

    python benchmarks/finetune_cost.py [--steps 5] [--device cpu]
"""
import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import otzoo  # noqa: E402
from training.run.device import resolve_device  # noqa: E402
from training.evaluate.finetune import RECIPE_10PCT, finetune_optimizer  # noqa: E402

CASES = [  # (architecture, input size, dataset, train images, test images)
    ("resnet18_cifar", 32, "CIFAR-10", 50_000, 10_000),
    ("resnet18", 128, "Imagenette", 9_469, 3_925),
]


def images_per_s(arch: str, size: int, steps: int, device) -> tuple:
    model = otzoo.create_model(arch, num_classes=10).to(device, memory_format=torch.channels_last)
    x = torch.randn(RECIPE_10PCT.batch_size, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (len(x),), device=device)
    opt, sched = finetune_optimizer(model, RECIPE_10PCT, steps_per_epoch=steps)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    model.eval()
    with torch.inference_mode():
        start = time.perf_counter()
        model(x)
        test = len(x) / (time.perf_counter() - start)
    return len(x) / (sum(times) / len(times)), test


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = resolve_device(args.device)
    epochs, fraction = RECIPE_10PCT.epochs, RECIPE_10PCT.label_fraction
    print(f"device {device}, {torch.get_num_threads()} threads; {RECIPE_10PCT.describe()}")
    print("| Architecture | Input | Dataset | Train img/s | Test img/s | 10%-label run (train + test) |")
    print("|---|---:|---|---:|---:|---:|")
    for arch, size, dataset, n_train, n_test in CASES:
        train, test = images_per_s(arch, size, args.steps, device)
        labelled = int(fraction * n_train) // RECIPE_10PCT.batch_size * RECIPE_10PCT.batch_size
        minutes = (epochs * labelled / train + n_test / test) / 60
        print(f"| {arch} | {size} | {dataset} | {train:.1f} | {test:.1f} | {minutes:.1f} min |")


if __name__ == "__main__":
    main()
