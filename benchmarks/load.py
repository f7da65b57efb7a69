"""Time otzoo.create_model(name, pretrained=True) from local files against the plain timm path.

Plain path: timm.create_model(arch) + safetensors.torch.load_file + load_state_dict on the same
file. otzoo adds name resolution, sha256 verification and key checks. Target: ratio <= 1.2.
When no released weight exists, a random-init one is written with save_pretrained to a temp dir.

    python benchmarks/load.py [--name gca_uot_resnet18_cifar10] [--repeats 10]
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import safetensors.torch
import timm
import torch

import otzoo
from otzoo.models import register_pretrained, resolve_weight_file, unregister_pretrained


def median_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=None, help="weight name (default: first released, else a temp one)")
    parser.add_argument("--arch", default="resnet18_cifar", help="architecture of the temp weight")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)

    tmp = None
    name = args.name or next(iter(otzoo.list_pretrained()), None)
    if name is None:
        tmp = tempfile.TemporaryDirectory()
        name = f"benchmark_{args.arch.removesuffix('_cifar')}_cifar10"
        model = otzoo.create_model(args.arch)
        register_pretrained(otzoo.save_pretrained(model, Path(tmp.name) / name, name=name))
        os.environ["OTZOO_WEIGHTS_DIR"] = tmp.name
        print(f"no released weight: wrote a random-init {args.arch} to {tmp.name}/{name}")
    cfg = otzoo.get_pretrained_cfg(name)
    file = resolve_weight_file(cfg)
    arch = cfg["architecture"]

    def with_otzoo():
        return otzoo.create_model(name, pretrained=True)

    def with_timm():
        model = timm.create_model(arch, num_classes=cfg["num_classes"])
        model.load_state_dict(safetensors.torch.load_file(str(file)))
        return model

    t_otzoo = median_time(with_otzoo, args.repeats)
    t_timm = median_time(with_timm, args.repeats)
    size_mb = file.stat().st_size / 2**20
    print(f"weight {name} ({arch}, {size_mb:.1f} MiB {file.name}), 1 thread, median of {args.repeats}")
    print(f"otzoo.create_model(pretrained=True):            {t_otzoo * 1e3:8.1f} ms")
    print(f"timm.create_model + load_file + load_state_dict: {t_timm * 1e3:8.1f} ms")
    print(f"ratio otzoo / timm: {t_otzoo / t_timm:.2f}x (target <= 1.2x)")
    if tmp is not None:
        unregister_pretrained(name)
        tmp.cleanup()


if __name__ == "__main__":
    main()
