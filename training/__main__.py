"""``python -m training <command> [args]``: dispatch to ``training.<module>.main(argv)``."""
import importlib
import sys

COMMANDS = {
    "pretrain": ("training.run.pretrain", "self-supervised pretraining from a YAML recipe"),
    "knn": ("training.evaluate.commands", "weighted k-NN top-1 of a backbone's features (the protocol: knn --help)"),
    "linear": ("training.evaluate.commands", "linear probe on frozen, precomputed features"),
    "finetune": ("training.evaluate.commands", "fine-tune backbone + head end to end"),
    "export": ("training.release.export", "write weights/, otzoo/pretrained/, model card and results"),
    "baseline": ("training.release.baseline", "a recipe's random-init backbone by export's protocol: what pretraining bought"),
    "measure": ("training.release.measure", "measure a released weight again (new metrics; its tensors never change)"),
    "publish": ("training.release.publish", "upload an exported weight folder to the HF Hub (--dry-run offline)"),
    "plan": ("training.evaluate.plot_plan", "heat map of a trained run's transport plan on one test batch"),
    "progress": ("training.run.progress", "append a long run's progress (steps, views/s, kNN) to results/campaign/"),
    "monitor-reference": ("training.evaluate.monitor_reference",
                          "a run's k-NN monitor protocol on released weights: reference points for its curve"),
    "curve": ("training.release.accuracy_curve", "time to accuracy: a run's kNN monitor against wall-clock minutes"),
    "smoke": ("training.release.smoke", "pretrain -> knn -> linear -> export -> load on a few hundred images"),
    "verify": ("training.release.verify", "load a released weight, classify test images, reproduce its card's numbers"),
    "fit-epochs": ("training.run.fit_epochs", "the most epochs of a recipe that fit a time budget, from a short probe"),
    "window-plan": ("training.run.window", "prepare a GPU window's call: its data in .carry/, what travels, the command"),
    "resize-data": ("training.run.resize_data", "a smaller JPEG copy of an ImageFolder root (data for GPU windows)"),
    "readme": ("training.release.readme", "regenerate the README's table of weights from the registry"),
}


# commands whose feature passes run on the CPU: a pass's freed batch is kept for the next (pretrain decides for
# itself: engine.reuse_memory)
FEATURE_PASSES = {"knn", "linear", "finetune", "export", "baseline", "measure", "monitor-reference", "verify", "smoke"}


def usage() -> str:
    lines = ["usage: python -m training <command> [--help]", "", "commands:"]
    lines += [f"  {name:<17} {doc}" for name, (_, doc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if cmd in FEATURE_PASSES:
        from training.run.device import reuse_freed_memory

        reuse_freed_memory()
    module = importlib.import_module(COMMANDS[cmd][0])
    return int(module.main(rest, prog=f"python -m training {cmd}", command=cmd) or 0)


if __name__ == "__main__":
    sys.exit(main())
