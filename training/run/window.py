"""``python -m training window-plan ITEM``: one GPU window's call, prepared here before the machine starts.

The device tool sends this checkout's working tree (tracked files and untracked files git does not ignore, as
they are on disk) and the ignored paths named in ``carry``: 64 MiB in all, with a command of at most 2,000
characters. The released weights alone are far over that (weights/ holds ~22 MB a ResNet-18), so a window's calls
are made with weights/ hidden by git's sparse checkout (the files leave the working tree; the index and the
history keep them, nothing to commit) and brought back after the last call:

    git sparse-checkout set --no-cone '/*' '!/weights/'     # before the window's first call
    git sparse-checkout disable                              # after its last call

Items of the queue (issue 39), each a prepared call of ``training/gpu_window.sh``:

- ``vit``: ViT-B/16 on Imagenette, gca_uot and simclr side by side (``imagenette_vit_gpu.yaml``);
- ``campaign``: the CIFAR-10 campaign (issue 36, ``cifar10_long.yaml``): gca_uot and simclr side by side, each
  continued from its last milestone's release with ``--resume-from`` (else from step 0: a local checkpoint is too
  large to carry) for as many epochs as fit (the same for both, so the gap between them stays what the CPU's
  alternation left: at most one milestone), up to the recipe's end; each keeps a milestone folder every
  ``MILESTONE_EVERY`` epochs on the way (``--milestone-every``: what a budget stop leaves) and brings back its
  newest (``<run>/milestone-<epoch>/``), which ``export --supersede`` releases here;
- ``resnet50``: ResNet-50 on Imagenette, the same pair as ``vit`` (``imagenette_gpu.yaml arch=resnet50``).

The Imagenette items read a 144 px copy of its train and val splits (val for the kNN monitor), packed here once
as ``.carry/imagenette144.tgz``; the campaign the CIFAR-10 tree as it is (``.carry/cifar10.tgz``, ~19 MiB: the
small JPEGs' shared headers compress); both kept for the next window (``.carry/`` is ignored by git). The epochs
are fitted on the device by ``fit-epochs`` (``--together``: the two methods probed side by side, as they train),
and that probe is the window's device check. Printed: what would travel, the ``run`` call (command, carry,
timeout_s) and the follow-up calls that bring back what one call cannot (a ViT-B/16 pair: ~351 MB in fp16 with
its heads). The seconds are estimates of this plan (``--start-s``, ``--return-s``), not measurements: the first
window replaces them.
Exit status: 0 the plan fits, 2 it does not (what to hide or shorten is said) or bad arguments.
"""
import argparse
import math
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Dict, Iterable, Optional

from .progress import MILESTONE_EVERY, Standing, standings
from .resize_data import resize_tree

__all__ = ["WindowItem", "QUEUE", "travelling_bytes", "pack_data", "device_command", "campaign_command",
           "window_seconds", "main"]

ROOT = Path(__file__).resolve().parents[2]  # the checkout the recipes' paths are relative to
MIB = 2 ** 20
TRAVEL_LIMIT = 64 * MIB        # working tree + carried paths, one call
RETURN_PER_CALL = 60 * MIB     # gpu_window.sh's default share of the 64 MiB a call brings back
COMMAND_LIMIT = 2000
DEVICE_TIME_S = 900
HIDE_WEIGHTS = "git sparse-checkout set --no-cone '/*' '!/weights/'"
SHOW_WEIGHTS = "git sparse-checkout disable"


@dataclass(frozen=True)
class WindowItem:
    """One queue item: the recipe and its overrides, the methods trained side by side, the data it carries
    (``splits`` of an ImageFolder root, ``source`` by default, at shorter side ``size``; None: the files as they
    are)."""
    recipe: str
    methods: tuple
    overrides: tuple
    data: str
    source: str = "../shared/data/imagenette"
    splits: tuple = ("train", "val")
    size: Optional[int] = 144
    campaign: bool = False

    @cached_property
    def returned_bytes(self) -> int:
        """What one trained method brings back: its backbone and heads in fp16 (integer buffers as they are),
        counted from the recipe's model built on the meta device (no memory, no weights)."""
        return max(_fp16_bytes(self.recipe, (*self.overrides, f"method={m}")) for m in self.methods)


def _fp16_bytes(recipe: str, overrides: tuple) -> int:
    import torch

    from .config import load_config
    from .methods import build_method

    with torch.device("meta"):
        state = build_method(load_config(str(ROOT / recipe), overrides)).state_dict()
    return sum(v.numel() * (2 if v.is_floating_point() else v.element_size()) for v in state.values())


QUEUE: Dict[str, WindowItem] = {
    "vit": WindowItem("training/configs/imagenette_vit_gpu.yaml", ("gca_uot", "simclr"), (), "imagenette144.tgz"),
    "campaign": WindowItem("training/configs/cifar10_long.yaml", ("gca_uot", "simclr"), (), "cifar10.tgz",
                           source="../shared/data/cifar10", splits=("train", "test"), size=None, campaign=True),
    "resnet50": WindowItem("training/configs/imagenette_gpu.yaml", ("gca_uot", "simclr"), ("arch=resnet50",),
                           "imagenette144.tgz"),
}


def travelling_bytes(repo, carry: Iterable[str] = ()) -> Dict[str, int]:
    """Bytes the device tool would send, by top-level entry: the files git tracks or would add that exist on
    disk, and the carried paths."""
    repo = Path(repo)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    sizes: Dict[str, int] = {}
    paths = [repo / f for f in listed if f] + [p for c in carry for p in _files(repo / c)]
    for path in dict.fromkeys(paths):
        if path.is_file() and not path.is_symlink():
            top = path.relative_to(repo).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    return sizes


def _files(path: Path) -> list:
    return sorted(p for p in path.rglob("*")) if path.is_dir() else [path]


def pack_data(src, dest, size: Optional[int] = 144, splits=("train", "val")) -> Path:
    """``dest`` (a .tgz): ``splits`` of ImageFolder root ``src`` at shorter side ``size`` (resize-data; None: the
    files as they are), written whole or not at all; kept when it exists."""
    src, dest = Path(src), Path(dest)
    if dest.is_file():
        return dest
    missing = [s for s in splits if not (src / s).is_dir()]
    if missing:
        raise FileNotFoundError(f"{src} lacks {' and '.join(s + '/' for s in missing)}: give the dataset's root "
                                f"(with {' and '.join(s + '/' for s in splits)})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = src if size is None else Path(tmp)
        if size is not None:
            for split in splits:
                resize_tree(src / split, root / split, size)
        partial = dest.with_suffix(".partial")
        with tarfile.open(partial, "w:gz") as tar:
            for split in splits:
                tar.add(root / split, arcname=split)
        partial.replace(dest)
    return dest


def window_seconds(item: WindowItem, start_s: float, return_s: float, margin_s: float = 45.0) -> dict:
    """The device time of a window: the machine's start, the command, the follow-up return calls; the command
    gets what the others leave of :data:`DEVICE_TIME_S`."""
    back = len(item.methods) * item.returned_bytes
    calls = max(1, math.ceil(back / RETURN_PER_CALL))
    command_s = DEVICE_TIME_S - start_s - (calls - 1) * return_s - margin_s
    return {"return_bytes": back, "return_calls": calls, "start_s": start_s, "return_s": return_s,
            "margin_s": margin_s, "command_s": int(min(command_s, 600))}


def _run_seconds(command_s: int, probe_s: int, pack_s: int) -> int:
    run_s = command_s - probe_s - pack_s
    if run_s < 60:
        raise ValueError(f"{command_s} s of command leave {run_s} s to train after the probe ({probe_s} s) and the "
                         f"packing ({pack_s} s): give the window more device time or fewer return calls")
    return run_s


def _overrides(item: WindowItem) -> str:
    return " ".join((*item.overrides, "data.cache_dir=/tmp/c"))


def _fit(item: WindowItem, methods: Iterable[str], run_s: int, probe_s: int, together: str) -> str:
    """Unpack the data, then ``E=`` the epochs that fit ``run_s`` (fit-epochs' probe: the device check)."""
    return (f"set -o pipefail; mkdir -p /tmp/d && tar xzf .carry/{item.data} -C /tmp/d && "
            f"export OTZOO_DATA=/tmp/d PYTHONUNBUFFERED=1 OTZOO_WINDOW_CHECK=0 && "
            f"E=$(python3 -m training fit-epochs --config {item.recipe} --budget {run_s}s {together}"
            f"--probe-epochs 2 --probe {probe_s}s {' '.join(f'--method {m}' for m in methods)} "
            f"--report /tmp/fit.json {_overrides(item)}) && ")


def device_command(item: WindowItem, command_s: int, probe_s: int, pack_s: int) -> str:
    """The window's command on the device: unpack the data, fit the epochs with both methods probed side by side
    (the device check), then gpu_window.sh with what is left, its runs' budget short of the command's limit."""
    run_s = _run_seconds(command_s, probe_s, pack_s)
    return (_fit(item, item.methods, run_s, probe_s, "--together ") + f"bash training/gpu_window.sh {item.recipe} "
            f"{run_s}s {' '.join(item.methods)} -- epochs=$E {_overrides(item)}")


def campaign_command(item: WindowItem, starts: Dict[str, Optional[tuple]], epochs: int, command_s: int,
                     probe_s: int, pack_s: int) -> str:
    """The campaign's command on the device: each method of ``starts`` from its release ``(name, epoch)``
    (``--resume-from``; None: step 0), side by side, for the epochs that fit (the same for each), at most to the
    recipe's ``epochs`` (its schedule stays the recipe's), keeping a milestone every ``MILESTONE_EVERY`` epochs."""
    run_s = _run_seconds(command_s, probe_s, pack_s)
    stops, tokens = [], []
    for i, (method, release) in enumerate(starts.items()):
        start = release[1] if release else 0
        stops.append(f"S{i}=$(( {start} + E < {epochs} ? {start} + E : {epochs} )) && ")
        tokens.append(f"{method}:--stop-after-epoch=$S{i}" + (f",--resume-from={release[0]}" if release else ""))
    together = "--together " if len(starts) > 1 else ""
    return (_fit(item, list(starts), run_s, probe_s, together) + "".join(stops) +
            f"bash training/gpu_window.sh {item.recipe} {run_s}s {' '.join(tokens)} -- "
            f"--milestone-every {MILESTONE_EVERY} {_overrides(item)}")


def hide_weights(*keep: str) -> str:
    """The sparse checkout that leaves weights/ out of the working tree, but for the releases ``keep``."""
    return HIDE_WEIGHTS + "".join(f" '/weights/{name}/'" for name in keep)


def _campaign_starts(item: WindowItem, runs, repo: Path) -> Optional[tuple]:
    """``(recipe's epochs, {method: its release or None})`` of the campaign's methods not yet complete (None for
    the other items); says where each starts against its local folder."""
    if not item.campaign:
        return None
    cfg, stand = standings(runs, str(repo / item.recipe), list(item.methods))
    todo = {m: s for m, s in stand.items() if s.epochs < cfg["epochs"]}
    if not todo:
        raise ValueError(f"every method of the campaign has completed {item.recipe}: nothing to train")
    for method, s in todo.items():
        start = s.release[1] if s.release else 0
        origin = f"release {s.release[0]} (epoch {start})" if s.release else "step 0"
        print(f"campaign: {method} from {origin}, for the epochs that fit (at most to epoch {cfg['epochs']})")
        if s.local_epochs > start:
            _print_local_ahead(s, Path(runs) / s.folder, cfg["epochs"])
    return cfg["epochs"], {m: s.release for m, s in todo.items()}


def _print_local_ahead(s: Standing, folder: Path, epochs: int) -> None:
    """The local run is further along than what can travel: how to make it travel (a milestone's release)."""
    stop = min(s.local_epochs + 1, epochs)
    print(f"campaign: the local run {folder} is at epoch {s.local_epochs}: the window pays off only if it passes "
          f"that epoch. To continue the local run instead: stop the campaign, then, before the window,\n"
          f"  python -m training pretrain --resume --output-dir {folder} --stop-after-epoch {stop}\n"
          f"  python -m training export --run {folder}/milestone-{stop:03d} --supersede\n"
          f"and plan again: the window continues that release. Do not commit it (the window's milestone replaces "
          f"it; if the window fails, restore the files export changed: git status lists them).")


def _print_campaign_after(item: WindowItem, methods: Iterable[str]) -> None:
    print("after the window, here (EEE: each milestone's epoch, which the window printed):\n"
          "  (cd FILES && sha256sum -c SHA256SUMS) && mkdir -p runs && cat FILES/runs.tar.part-* | tar x -C runs")
    for method in methods:
        milestone = f"runs/{Path(item.recipe).stem}_{method}/milestone-EEE"
        print(f"  python -m training export --run {milestone} --supersede\n"
              f"  python -m training progress --run {milestone} --out results/campaign/{method}.jsonl")


def main(argv=None, prog: str = "python -m training window-plan", command: str = "window-plan") -> int:
    title, rest = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(prog=prog, description=title, epilog=rest,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("item", choices=sorted(QUEUE), help="the queue item the window takes")
    p.add_argument("--data", help="the dataset's root (default: the item's, ../shared/data/imagenette with train/ "
                   "and val/, or for the campaign ../shared/data/cifar10 with train/ and test/)")
    p.add_argument("--runs", default="runs", help="campaign: the local run folders (default runs)")
    p.add_argument("--repo", default=".", help="the checkout the device tool sends (default: here)")
    p.add_argument("--start-s", type=float, default=120, help="estimate: the machine's start (default 120)")
    p.add_argument("--return-s", type=float, default=30, help="estimate: one follow-up return call (default 30)")
    p.add_argument("--probe-s", type=int, default=150, help="fit-epochs' probe, both methods together (default 150)")
    p.add_argument("--pack-s", type=int, default=60, help="plans, fp16 cast and packing after the runs (default 60)")
    args = p.parse_args(argv)
    item, repo = QUEUE[args.item], Path(args.repo)
    carry = f".carry/{item.data}"
    try:
        campaign = _campaign_starts(item, args.runs, repo)
        pack_data(args.data or item.source, repo / carry, item.size, item.splits)
        seconds = window_seconds(item, args.start_s, args.return_s)
        cmd = (campaign_command(item, campaign[1], campaign[0], seconds["command_s"], args.probe_s, args.pack_s)
               if campaign else device_command(item, seconds["command_s"], args.probe_s, args.pack_s))
    except (FileNotFoundError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    sizes = travelling_bytes(repo, [carry])
    total = sum(sizes.values())
    for top, n in sorted(sizes.items(), key=lambda kv: -kv[1])[:8]:
        print(f"travels: {n / MIB:8.2f} MiB  {top}")
    print(f"travels: {total / MIB:8.2f} MiB in all (limit {TRAVEL_LIMIT // MIB} MiB)")
    print(f"device time (estimates): start {seconds['start_s']:.0f} s + command {seconds['command_s']} s + "
          f"{seconds['return_calls'] - 1} return calls x {seconds['return_s']:.0f} s + margin {seconds['margin_s']:.0f} s"
          f" of {DEVICE_TIME_S} s; {seconds['return_bytes'] / 1e6:.0f} MB of fp16 backbones and heads come back")
    print(f"run: timeout_s={seconds['command_s']} carry=[\"{carry}\"]\ncommand ({len(cmd)} chars):\n{cmd}")
    releases = [r[0] for r in (campaign[1].values() if campaign else ()) if r]
    hide = hide_weights(*releases)
    problems = []
    if total > TRAVEL_LIMIT:
        problems.append(f"{total / MIB:.1f} MiB would travel, over {TRAVEL_LIMIT // MIB} MiB: hide the weights for "
                        f"the window's calls ({hide}; after the last call: {SHOW_WEIGHTS})")
    for release in releases:
        if not (repo / "weights" / release).is_dir():
            problems.append(f"the run continues release {release}, which must travel: {hide}")
    if len(cmd) > COMMAND_LIMIT:
        problems.append(f"the command is {len(cmd)} characters, over {COMMAND_LIMIT}")
    if campaign and not problems:
        _print_campaign_after(item, campaign[1])
    for problem in problems:
        print(f"{prog}: error: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
