"""Load a released weight the way a user does and check it against the numbers its card reports.

``python -m training verify [NAME] [--data-dir DIR] [--subset-only]``

1. ``otzoo.create_model(NAME, pretrained=True)`` (sha256-verified) and
   ``torch.hub.load(<this checkout>, NAME, source="local")`` must give identical tensors;
2. classifies a few test images and prints label, prediction and confidence;
3. measures top-1 of the full forward (fp32, eval mode, the weight's own transform) on the
   first ``subset_size`` test images (must equal ``subset_top1`` exactly) and on the whole
   test split (compared with ``linear_top1``, measured by export on precomputed features:
   the same computation batched differently, so it may move by a few images).

Exit status: 0 all checks pass, 1 a number does not reproduce or the file fails its sha256 / is
corrupt, 2 unknown name, weights not found (offline, not cached) or missing data.
Checks are only enforced on the dataset copy the weight was measured on (``dataset_variant``).
"""
import argparse
import sys
import time
from pathlib import Path

import torch

import otzoo
from training.run.datasets import DataNotFoundError, build_dataset, evenly_spaced_subset
from training.evaluate.loading import PAPER_DATASET_NAMES, dataset_variant, first_n
from training.evaluate.features import eval_transform
from training.release.export import forward_top1

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NAME = "gca_uot_resnet18_cifar10"
FULL_TOLERANCE = 0.05  # percentage points = 5 of 10,000 test images


def verify(name: str = DEFAULT_NAME, data_dir=None, subset_only: bool = False, n_show: int = 8,
           say=print) -> dict:
    """Run the checks above; returns ``{"ok": bool, "checks": [(what, measured, expected, ok)], ...}``."""
    cfg = otzoo.get_pretrained_cfg(name)  # raises UnknownModelError with close names
    m = cfg.get("metrics") or {}
    t0 = time.time()
    model = otzoo.create_model(name, pretrained=True).eval()
    hub = torch.hub.load(str(REPO_ROOT), name, source="local", trust_repo=True).eval()
    same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), hub.state_dict().values()))
    say(f"[verify] {name}: sha256 {cfg['sha256'][:12]}... verified; torch.hub (local) "
        f"{'gives the same tensors' if same else 'DIFFERS'} ({time.time() - t0:.1f} s)")
    checks = [("torch.hub == create_model", same, True, same)]

    test_set = build_dataset(cfg["dataset"], "test", data_dir=data_dir, transform=eval_transform(model))
    check_same_classes(name, cfg, test_set.classes)
    variant = dataset_variant(cfg["dataset"], data_dir)
    comparable = variant == m.get("dataset_variant")
    names = cfg.get("label_names") or test_set.classes
    shown = []
    with torch.inference_mode():
        for x, y in evenly_spaced_subset(test_set, n_show):
            p = model(x.unsqueeze(0)).softmax(1)[0]
            shown.append((names[y], names[int(p.argmax())], float(p.max())))
    say("[verify] " + ", ".join(f"{t} -> {p} ({c:.0%})" for t, p, c in shown))

    n_sub = m.get("subset_size", 500)
    t = time.time()
    sub, _ = forward_top1(model, first_n(test_set, n_sub))
    checks.append((f"top-1 on the first {n_sub} test images", sub, m.get("subset_top1"),
                   m.get("subset_top1") is not None and round(sub, 2) == m["subset_top1"]))
    say(f"[verify] first {n_sub} test images: {sub:.2f}% (card {m.get('subset_top1')}) in {time.time() - t:.0f} s")
    if not subset_only:
        t = time.time()
        full, _ = forward_top1(model, test_set)
        checks.append((f"top-1 on all {len(test_set)} test images", full, m.get("linear_top1"),
                       m.get("linear_top1") is not None and abs(full - m["linear_top1"]) <= FULL_TOLERANCE))
        say(f"[verify] all {len(test_set)} test images: {full:.2f}% (card linear_top1 {m.get('linear_top1')}) "
            f"in {time.time() - t:.0f} s")
    if not comparable:
        say(f"[verify] note: measured on {variant}, the card's numbers are on {m.get('dataset_variant')}; "
            "accuracy checks are reported, not enforced")
        checks = [c if i == 0 else (*c[:3], None) for i, c in enumerate(checks)]
    compared = sum(c[3] is not None for c in checks[1:])  # the accuracy checks actually enforced
    ok = compared > 0 and all(c[3] is not False for c in checks)
    return {"ok": ok, "compared": compared, "checks": checks, "shown": shown, "variant": variant,
            "seconds": time.time() - t0}


def check_same_classes(name: str, cfg: dict, classes) -> None:
    """Refuse a test split whose classes are not the weight's (e.g. $OTZOO_DATA still set to CIFAR-10)."""
    want, pretty = cfg.get("label_names"), PAPER_DATASET_NAMES.get(cfg["dataset"], cfg["dataset"])
    if want and list(classes) != list(want):
        raise DataNotFoundError(
            f"the test split found has classes {_short(classes)}, but {name} was trained on {pretty} with classes "
            f"{_short(want)}: pass --data-dir with the {pretty} ImageFolder root (train/ + test/ or val/), "
            "or unset OTZOO_DATA to use torchvision's download.")


def _short(names) -> str:
    names = list(names)
    return str(names[:4])[:-1] + (f", ... ({len(names)} in all)]" if len(names) > 4 else "]")


def main(argv=None, prog: str = "python -m training verify", command: str = "verify") -> int:
    p = argparse.ArgumentParser(prog=prog, description="Load a released weight by name (otzoo and torch.hub), "
                                "classify test images and reproduce the accuracy its model card reports.")
    p.add_argument("name", nargs="?", default=DEFAULT_NAME, help=f"weight name (default {DEFAULT_NAME}); "
                   "see otzoo.list_pretrained()")
    p.add_argument("--data-dir", help="ImageFolder root with test/ (default $OTZOO_DATA, else torchvision download)")
    p.add_argument("--subset-only", action="store_true", help="only the first-500 check (seconds, not minutes)")
    args = p.parse_args(argv)
    if not otzoo.list_pretrained():
        print("error: no weights are released in this checkout yet (otzoo.list_pretrained() is empty); "
              "`python -m training smoke` runs the training chain instead", file=sys.stderr)
        return 2
    try:
        res = verify(args.name, args.data_dir, args.subset_only)
    except (otzoo.models.UnknownModelError, otzoo.models.WeightsNotFoundError, DataNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (otzoo.models.ChecksumError, otzoo.models.CorruptWeightsError, otzoo.models.StateDictMismatchError) as err:
        print(f"NOT verified: {args.name}: {err}", file=sys.stderr)
        return 1
    for what, got, want, ok in res["checks"]:
        status = {True: "OK", False: "FAIL", None: "n/a"}[ok]
        shown = f"{got:.2f}" if isinstance(got, float) else got
        print(f"  [{status:>4}] {what}: {shown} (expected {want})")
    why = "" if res["compared"] else (" (no accuracy of its card was compared: measure on the data its card names, "
                                      "--data-dir)")
    print(f"{'verified' if res['ok'] else 'NOT verified'}: {args.name} in {res['seconds']:.0f} s{why}")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
