"""Released weights' top-1 in fp32 and under bf16 / fp16 autocast, on the full test split (or every Nth image).

Each weight is loaded as a user loads it (``otzoo.create_model(name, pretrained=True)``: its cfg's ``model_args``
included, e.g. sinsim's fp32 layer4) and classified with its shipped head on the images of
``otzoo.create_transform`` (the data config of the weight), once per precision. Prints per weight the top-1 of
each precision, its difference from fp32 and the share of predictions that change. The README's sentence on
bf16 inference cites this script's output::

    python benchmarks/inference_precision.py                    # every released weight, full test splits
    python benchmarks/inference_precision.py --names sinsim_resnet18_cifar10 --every 5 --precisions bf16 fp16
"""
import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import otzoo  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = {"cifar10": (Path(os.environ.get("OTZOO_DATA") or REPO.parent / "shared" / "data" / "cifar10"), "test"),
        "imagenette": (REPO.parent / "shared" / "data" / "imagenette", "val")}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def test_images(model, every: int, cache: dict):
    """The weight's test split through its own transform, as (images, labels) tensors (decoded once per config)."""
    from torchvision.datasets import ImageFolder

    dataset, data_cfg = model.pretrained_cfg["dataset"], otzoo.resolve_data_config(model)
    key = (dataset, json.dumps(data_cfg, sort_keys=True, default=str))
    if key not in cache:
        root, split = DATA[dataset]
        test = ImageFolder(str(root / split), transform=otzoo.create_transform(data_cfg))
        items = [test[i] for i in range(0, len(test), every)]
        cache[key] = torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])
    return cache[key]


@torch.inference_mode()
def predictions(model, images: torch.Tensor, precision: str, batch: int = 250) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        if precision == "fp32":
            out.append(model(x).argmax(1))
        else:
            with torch.autocast("cpu", dtype=DTYPES[precision]):
                out.append(model(x).argmax(1))
    return torch.cat(out)


def measure(name: str, precisions, every: int, cache: dict) -> dict:
    model = otzoo.create_model(name, pretrained=True).eval()
    images, labels = test_images(model, every, cache)
    fp32 = predictions(model, images, "fp32")
    row = {"name": name, "images": len(labels), "fp32": round(100.0 * (fp32 == labels).float().mean().item(), 2)}
    for p in precisions:
        pred = predictions(model, images, p)
        row[p] = round(100.0 * (pred == labels).float().mean().item(), 2)
        row[f"{p}_minus_fp32"] = round(row[p] - row["fp32"], 2)
        row[f"{p}_changed_pct"] = round(100.0 * (pred != fp32).float().mean().item(), 2)
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--names", nargs="+", help="weights to measure (default: every released one)")
    p.add_argument("--precisions", nargs="+", default=["bf16"], choices=sorted(DTYPES))
    p.add_argument("--every", type=int, default=1, help="every Nth test image (1: the full split)")
    args = p.parse_args(argv)
    names = args.names or otzoo.list_pretrained()
    cache, rows = {}, []
    for name in names:
        rows.append(measure(name, args.precisions, args.every, cache))
        print(json.dumps(rows[-1]), flush=True)
    worst = {q: max(abs(r[f"{q}_minus_fp32"]) for r in rows) for q in args.precisions}
    print(json.dumps({"weights": len(rows), "torch": torch.__version__, "largest_abs_difference": worst}))


if __name__ == "__main__":
    main()
