"""``python -m training pretrain``: self-supervised pretraining from a YAML recipe.

Examples::

    python -m training pretrain --config training/configs/cifar10_cpu.yaml method=gca_uot \\
        --data-dir ../shared/data/cifar10 --time-budget 150m
    python -m training pretrain --config training/configs/cifar10_cpu.yaml method=gca_uot \\
        --data-dir ../shared/data/cifar10 --resume          # continue after a stop or crash
    torchrun --nproc_per_node=8 -m training pretrain --config training/configs/gca_paper.yaml method=byol
"""
import argparse
import os
import shlex
import sys
from pathlib import Path

from .config import DEFAULTS, ConfigError, apply_overrides, load_config, parse_duration, validate

__all__ = ["main", "build_parser", "resolve_run", "reproduce_command"]

# keys that may differ between a run and its resumption (they do not change the result)
RESUMABLE = {"engine.device", "engine.progress", "engine.log_every", "engine.checkpoint_minutes", "engine.threads",
             "engine.reuse_memory", "engine.knn_every", "output_dir", "data.cache_dir", "data.dir", "data.stream",
             "data.workers"}


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Self-supervised pretraining of an otzoo backbone. Writes config.yaml, checkpoint.pt, "
                    "metrics.jsonl, curves.png and, once complete, backbone.safetensors and run.json to the "
                    "output directory.",
        epilog="Config keys (dotted overrides): " + ", ".join(_flat_keys(DEFAULTS)) + ".\n"
               "Methods: every otzoo.losses name (simclr, gca_ince, gca_rince, gca_uot, rince, iot, iot_uni, "
               "sinsim, matching_gap, otco) and byol.\n"
               "Exit status: 0 complete, 3 stopped by --time-budget, --stop-after-epoch, a SIGTERM or Ctrl-C after "
               "the step in progress (state saved; rerun with --resume), "
               "1 non-finite loss, 2 bad arguments or config, 143 / 130 a second SIGTERM / Ctrl-C (at once; the last "
               "checkpoint stays).\n"
               "Distributed: torchrun --nproc_per_node=N -m training pretrain ... (gloo on CPU, nccl on CUDA).")
    p.add_argument("--config", help="YAML recipe, e.g. training/configs/cifar10_cpu.yaml (with --resume: "
                                    "defaults to the run's saved config.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted config overrides parsed as YAML, e.g. method=gca_uot epochs=2 optim.lr=0.3")
    p.add_argument("--output-dir", help="run directory (default runs/<run_name>)")
    p.add_argument("--data-dir", help="ImageFolder root with train/ and test/ (overrides data.dir; "
                                      "default $OTZOO_DATA, else torchvision download)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output-dir from its checkpoint.pt exactly where it stopped")
    p.add_argument("--time-budget", metavar="DURATION",
                   help="stop cleanly and save after this much wall time in this session, e.g. 150m, 2h, 5400")
    p.add_argument("--resume-from", metavar="NAME",
                   help="continue, on any machine, the run that produced released weight NAME (a milestone): its "
                        "recipe (--config, if given, must be the same), from its recorded step, data order as if "
                        "never stopped; the optimizer's momentum is rebuilt under a one-epoch re-warmup, recorded "
                        "as a restart. A local run folder continues exactly with --resume instead")
    p.add_argument("--init", metavar="NAME",
                   help="start a new run from released weight NAME (otzoo.list_pretrained()): its backbone, and "
                        "its pretraining heads where this method has the same ones; any recipe and data, e.g. "
                        "continued pretraining on your own ImageFolder tree (sha256-checked)")
    p.add_argument("--stop-after-epoch", type=int, metavar="N",
                   help="stop cleanly and save after epoch N (the schedule stays the recipe's: a milestone of a "
                        "longer run); exit status 3, continue with --resume")
    p.add_argument("--milestone-every", type=int, metavar="N",
                   help="also write <run>/milestone-<epoch>/ (what export reads) at the end of every N-th epoch and "
                        "go on: what a run stopped by --time-budget leaves to release (a device window's "
                        "insurance)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def _flat_keys(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict) and k != "loss":
            yield from _flat_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "loss":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resolve_run(args) -> tuple:
    """(cfg, output_dir) from the parsed arguments; raises ConfigError with what to do."""
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.dir={args.data_dir}")
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.config is None and not (args.resume or args.resume_from):
        raise ConfigError("--config is required (e.g. --config training/configs/cifar10_cpu.yaml)")
    if args.resume_from and (args.resume or args.init):
        raise ConfigError("--resume-from continues a release's run: without --resume (a local folder) or --init")
    if args.config is not None:
        cfg = load_config(args.config, overrides)
        recipe = Path(args.config).stem
        if args.resume_from:
            _same_recipe(cfg, args.resume_from)
    elif args.resume_from:
        cfg, recipe = apply_overrides(_release_config(args.resume_from), overrides), None
    else:
        cfg, recipe = None, None
    out = cfg["output_dir"] if cfg else args.output_dir
    if out is None:
        name = cfg["run_name"] or f"{recipe}_{cfg['method']}_{cfg['arch']}"
        out = str(Path("runs") / name)
    out = Path(out)
    saved = out / "config.yaml"
    if args.resume:
        if not (out / "checkpoint.pt").is_file():
            raise ConfigError(f"--resume: no checkpoint.pt in {str(out)!r}; pass the run's --output-dir "
                              "(or the same --config and overrides that created it)")
        base = load_config(str(saved)) if saved.is_file() else None
        if cfg is None:
            cfg = apply_overrides(base, overrides)
        elif base is not None:
            diff = recipe_diff(base, cfg)
            if diff:
                raise ConfigError(f"--resume: the config differs from the run's saved config.yaml in {diff}; "
                                  f"resume with the same settings (or omit --config to use {saved})")
    elif (out / "checkpoint.pt").is_file() and not (out / "run.json").is_file():
        raise ConfigError(f"{str(out)!r} already holds an unfinished run (checkpoint.pt); add --resume to "
                          "continue it, or choose another --output-dir")
    elif (out / "run.json").is_file():
        raise ConfigError(f"{str(out)!r} already holds a finished run (run.json); choose another --output-dir")
    cfg["output_dir"] = str(out)
    return validate(cfg), out


def _release_config(name: str) -> dict:
    from .from_release import release_config

    try:
        return release_config(name)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def recipe_diff(a: dict, b: dict) -> list:
    """The keys in which two resolved configs differ, leaving out those a run may change between sessions."""
    a, b = _flatten(a), _flatten(b)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUMABLE)


def _same_recipe(cfg: dict, name: str) -> None:
    diff = recipe_diff(validate(_release_config(name)), cfg)
    if diff:
        raise ConfigError(f"--resume-from {name}: the recipe differs from the one that produced it in {diff}; "
                          "continue with the same settings (or omit --config to use the release's)")


def _read_continuation(args, cfg: dict):
    if args.resume_from is None:
        return None
    from .from_release import read_continuation

    return read_continuation(args.resume_from, cfg["arch"])


def _read_init(args, cfg: dict):
    """The release ``--init`` names, read and checked before any run folder exists (None without --init)."""
    if args.init is None:
        return None
    if args.resume:
        raise ConfigError("--init starts a new run; --resume continues one from its checkpoint: give one of them")
    from .from_release import read_release

    return read_release(args.init, cfg["arch"])


def reproduce_command(argv) -> str:
    """The command line that reproduces the run (without --resume / --time-budget / --stop-after-epoch /
    --print-config)."""
    keep, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--resume", "--print-config"):
            continue
        if a in ("--time-budget", "--stop-after-epoch"):
            skip = True
            continue
        if a.startswith(("--time-budget=", "--stop-after-epoch=")):
            continue
        keep.append(a)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"torchrun --nproc_per_node={world} -m training pretrain" if world > 1 else "python -m training pretrain"
    return launcher + (" " + shlex.join(keep) if keep else "")


def main(argv=None, prog: str = "python -m training pretrain", command: str = "pretrain") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_intermixed_args(argv)
    try:
        cfg, out = resolve_run(args)
        budget = parse_duration(args.time_budget)
        for flag, value in (("--stop-after-epoch", args.stop_after_epoch), ("--milestone-every", args.milestone_every)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be an epoch >= 1, not {value}")
        from .device import resolve_device

        resolve_device(cfg["engine"]["device"])  # a device asked for but absent: exit 2 before any run folder
        init, resume_from = _read_init(args, cfg), _read_continuation(args, cfg)
    except (ConfigError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg, sort_keys=False))
        return 0
    if args.resume and (out / "run.json").is_file():
        print(f"{out} is already complete (run.json); nothing to resume.", file=sys.stderr)
        return 0
    from .checkpoint import RunLocked
    from .data import DataError
    from .datasets import DataNotFoundError
    from .engine import NonFiniteLossError, train

    try:
        command = ((resume_from.cfg.get("reproduce") or {}).get("pretrain") if resume_from else None
                   ) or reproduce_command(argv)  # a continued run keeps the command that started it
        return train(cfg, out, resume=args.resume, time_budget_s=budget, command=command,
                     stop_after_epoch=args.stop_after_epoch, init=init, resume_from=resume_from,
                     milestone_every=args.milestone_every)
    except NonFiniteLossError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except (RunLocked, DataError, DataNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
