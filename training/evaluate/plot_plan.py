"""``python -m training plan``: the transport plan of a trained run on one test batch, as a PNG.

Loads the run's ``checkpoint.pt`` (backbone + projector, as trained), takes ``--batch``
evenly spaced test images (class-sorted, so same-class blocks line up), draws two views with
the run's augmentation and a fixed seed, and plots ``loss.plan(z1, z2)`` with
:func:`otzoo.viz.plot_plan` in the loss's ``plan_layout`` (the stacked ``2B x 2B`` coupling for
GCA / IOT / InfoNCE / RINCE, the cross-view ``B x B`` one for OTCO / matching gap / SinSim / BYOL).
Beside the PNG, ``plan.json``: the batch, the seed and :func:`otzoo.viz.plan_mass` of that plan
(its mass on the positives and inside the class blocks, and the uniform plan's), which ``export``
puts in the card.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

from ..run.augment import TwoViewAugment
from ..run.checkpoint import load_checkpoint
from ..run.data import load_images
from ..run.device import resolve_device
from ..run.methods import build_method

__all__ = ["compute_plan", "run_plan", "main", "PLAN_PROTOCOL"]

PLAN_PROTOCOL = ("the training loss's plan (the run's last checkpoint: backbone + projector, eval mode) on {batch} "
                 "evenly spaced, class-sorted test images x 2 augmented views (seed {seed}): the share of its mass "
                 "on the positives and inside the class blocks, beside a uniform plan's on the same support "
                 "(otzoo.viz.plan_mass; plan.png shows the plan)")


@torch.no_grad()
def compute_plan(run_dir, data_dir=None, batch: int = 64, seed: int = 0, device="cpu"):
    """``(plan, cfg, labels)``: the run's loss plan on ``batch`` class-sorted test images (two
    views), on ``device``, with the sorted labels of those images."""
    run_dir = Path(run_dir)
    device = resolve_device(device)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    cfg = state["config"]
    method = build_method(cfg)
    method.load_state_dict(state["model"])
    method.eval().to(device)
    d = cfg["data"]
    test = load_images(cfg["dataset"], "test", data_dir or d["dir"], batch, d["decode_size"], d["cache_dir"])
    order = torch.argsort(test.labels, stable=True)
    aug = TwoViewAugment.from_config(cfg["aug"], d["mean"], d["std"])
    v1, v2 = aug(test.images[order].to(device), torch.Generator().manual_seed(seed))
    return method.plan(v1, v2).cpu(), cfg, test.labels[order]


def run_plan(run_dir, out=None, data_dir=None, batch: int = 64, seed: int = 0, log: bool = True,
             device="cpu") -> Path:
    """Write the plan plot of ``run_dir`` (default ``<run_dir>/plan.png``) and its ``plan_mass``
    (the same path with ``.json``); returns the PNG's path."""
    run_dir = Path(run_dir)
    plan, cfg, labels = compute_plan(run_dir, data_dir, batch, seed, device)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from otzoo.losses import get_loss_class
    from otzoo.viz import plan_mass, plot_plan

    layout = get_loss_class(cfg["method"]).plan_layout
    out = Path(out) if out else run_dir / "plan.png"
    mass = dict(batch=batch, seed=seed, **plan_mass(plan, layout, labels))
    out.with_suffix(".json").write_text(json.dumps(mass, indent=1) + "\n")
    fig, ax = plt.subplots(figsize=(6, 5.5))
    plot_plan(plan, ax=ax, log=log, labels=labels.numpy(), layout=layout,
              title=f"{run_dir.name}: {cfg['method']} plan\n{batch} class-sorted test images x 2 views"
                    f"{' (log10)' if log else ''}\ndotted: positives; thin lines: class blocks")
    ax.title.set_fontsize(10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv=None, prog: str = "python -m training plan", command: str = "plan") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="pretraining run directory (holds checkpoint.pt)")
    p.add_argument("--out", help="PNG path (default <run>/plan.png, which export ships with the weight)")
    p.add_argument("--data-dir", help="ImageFolder root with test/ (default: the run's data.dir, $OTZOO_DATA)")
    p.add_argument("--batch", type=int, default=64, help="test images in the batch (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the two views' augmentation (default 0)")
    p.add_argument("--linear", action="store_true", help="plot plan entries, not log10 of them")
    p.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")
    args = p.parse_args(argv)
    try:
        out = run_plan(args.run, args.out, args.data_dir, args.batch, args.seed, log=not args.linear,
                       device=args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0
