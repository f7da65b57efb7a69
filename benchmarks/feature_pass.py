"""The evaluation's feature pass (``extract_features``, fp32) with channels_last batches against NCHW batches.

Every measurement protocol (export, measure, knn, linear) runs this pass over the whole train and test splits;
on a 2-core CPU it is most of a milestone's export. The two layouts run in turn, round after round, in one
process, on one released weight's test split through its own transform (decoded once, held in memory: the pass
alone is timed). Printed per layout: the median images/s over the rounds; then the ratio and the largest
difference between the two layouts' features. Target: ratio >= 1.1 on a CPU, features equal to fp32 rounding.
``--reuse-memory``: with the allocator setting the evaluation commands use (``reuse_freed_memory``, for the whole
process: run once with and once without to compare)::

    python benchmarks/feature_pass.py [--name gca_uot_resnet18_cifar10] [--images 5000] [--rounds 3] [--reuse-memory]
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import otzoo  # noqa: E402
from training.evaluate.features import extract_features  # noqa: E402
from training.run.device import reuse_freed_memory  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("OTZOO_DATA") or REPO.parent / "shared" / "data" / "cifar10")


def test_split(model, images: int) -> TensorDataset:
    """The first ``images`` of the weight's test split, through its own transform, as one in-memory dataset."""
    from torchvision.datasets import ImageFolder

    test = ImageFolder(str(DATA / "test"), transform=otzoo.create_transform(otzoo.resolve_data_config(model)))
    items = [test[i] for i in range(0, len(test), max(1, len(test) // images))][:images]
    return TensorDataset(torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items]))


def timed_pass(model, dataset, channels_last: bool) -> tuple:
    start = time.perf_counter()
    feats, _ = extract_features(model, dataset, channels_last=channels_last)
    return len(dataset) / (time.perf_counter() - start), feats


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="gca_uot_resnet18_cifar10", help="a released CIFAR-10 weight")
    p.add_argument("--images", type=int, default=5000, help="test images per pass (evenly spaced)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reuse-memory", action="store_true", help="keep freed batches for the next (as the evaluation "
                   "commands do)")
    args = p.parse_args(argv)
    if args.reuse_memory:
        reuse_freed_memory()
    model = otzoo.create_model(args.name, pretrained=True, num_classes=0)
    dataset = test_split(model, args.images)
    rates = {"nchw": [], "channels_last": []}
    for _ in range(args.rounds):
        for layout in rates:
            rate, feats = timed_pass(model, dataset, layout == "channels_last")
            rates[layout].append(rate)
            if layout == "nchw":
                reference = feats
    median = {layout: round(statistics.median(r), 1) for layout, r in rates.items()}
    print(json.dumps({"name": args.name, "images": len(dataset), "reuse_memory": args.reuse_memory,
                      "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "images_per_s": median,
                      "per_round": {k: [round(x, 1) for x in v] for k, v in rates.items()},
                      "ratio": round(median["channels_last"] / median["nchw"], 3),
                      "max_abs_feature_difference": (feats - reference).abs().max().item()}))


if __name__ == "__main__":
    main()
