"""Files generated from the pretrained cfgs: README table, results CSVs, model cards.

``python -m training readme [--check] [--root DIR]`` rewrites, from ``otzoo/pretrained/*.json``
(what ``otzoo.list_pretrained()`` lists): the table between ``<!-- weights-table:start -->`` and
``<!-- weights-table:end -->`` in README.md, ``results/results-<dataset>.csv`` and
``model_cards/<name>.md``, and the cfg files themselves in the record's canonical form
(:meth:`otzoo.models.WeightCfg.to_json`). ``--check`` writes nothing and exits 1 when any of them is stale.

A release that replaces a weight of the same name from another recipe (:func:`write_cfg`) keeps the
replaced cfg in ``results/superseded/<name>.<recipe>.json``, and one that replaces an earlier milestone of its
own run (same recipe, fewer epochs) in ``results/superseded/<name>.<recipe>.e<EEE>.json``: its row stays in the
results CSV (status ``superseded``) and the new card sets both side by side (other recipes; the run's
milestones).
"""
import argparse
import csv
import io
import json
import sys
from pathlib import Path

from otzoo.models import WeightCfg

from training.release.recipes import budget_epochs, epochs_text, other_milestone, recipe_id

REPO_ROOT = Path(__file__).resolve().parents[2]
START = "<!-- weights-table:start -->"
END = "<!-- weights-table:end -->"
NO_WEIGHTS = "No weights have been released yet."
FT_START = "<!-- finetune-table:start -->"
FT_END = "<!-- finetune-table:end -->"
SUPERSEDED = Path("results") / "superseded"
GEOMETRY_FIELDS = ["rankme", "rankme_centred", "mean_cosine"]
CSV_FIELDS = ["name", "status", "recipe", "architecture", "method", "dataset", "dataset_variant", "epochs",
              "views_seen", "batch_size", "knn_top1", "linear_top1", "linear_top1_1pct", "linear_top1_10pct", "subset_top1",
              *GEOMETRY_FIELDS, "hardware", "wall_time_h", "views_per_s", "otzoo_version", "hf_hub_id", "sha256"]
FT_FIELDS = ["source", "arch", "dataset", "dataset_variant", "input_size", "label_fraction", "num_labelled", "epochs",
             "finetune_top1", "num_test", "train_time_min", "hardware", "command_line", "weight_sha256",
             "weight_epochs"]


def _records(paths) -> dict:
    """``{path: WeightCfg}`` of cfg files; a file that is not a valid cfg raises ValueError naming it."""
    out = {}
    for p in paths:
        try:
            out[p] = WeightCfg.from_json(p)
        except ValueError as err:
            raise ValueError(f"{p}: {err}") from None
    return out


def cfg_files(root) -> dict:
    """``{path: WeightCfg}`` of the released weights, ``<root>/otzoo/pretrained/*.json``."""
    return _records(sorted((Path(root) / "otzoo" / "pretrained").glob("*.json")))


def superseded_files(root) -> dict:
    """``{path: WeightCfg}`` of replaced releases, ``<root>/results/superseded/*.json``."""
    return _records(sorted((Path(root) / SUPERSEDED).glob("*.json")))


def cfgs_from_root(root) -> list:
    """The released weights' records (``<root>/otzoo/pretrained/*.json``), sorted by name."""
    return sorted(cfg_files(root).values(), key=lambda c: c.name)


def superseded_from_root(root) -> list:
    """The records of replaced releases, ``<root>/results/superseded/*.json``, sorted by name, recipe and epochs."""
    return sorted(superseded_files(root).values(), key=lambda c: (c.name, recipe_id(c), budget_epochs(c) or 0))


def archive_name(cfg: WeightCfg, milestone: bool = False) -> str:
    """``<name>.<recipe>.json`` of a replaced release; ``<name>.<recipe>.e<EEE>.json`` of a replaced milestone
    of the same recipe (an earlier epoch of the run that replaces it)."""
    epochs = f".e{budget_epochs(cfg):03d}" if milestone else ""
    return f"{cfg.name}.{recipe_id(cfg)}{epochs}.json"


def milestones_before(root, cfg: WeightCfg) -> list:
    """The other milestones of ``cfg``'s run in ``root`` (:func:`~training.release.recipes.other_milestone`): the
    release of its name now, when it is one, and those in ``results/superseded/``."""
    path = Path(root) / "otzoo" / "pretrained" / f"{cfg.name}.json"
    current = [WeightCfg.from_json(path)] if path.is_file() else []
    return [c for c in current + superseded_from_root(root) if other_milestone(c, cfg)]


def write_cfg(root, cfg: WeightCfg) -> Path:
    """Write ``otzoo/pretrained/<name>.json``; the cfg it replaces moves to ``results/superseded/``: one of another
    recipe, or a milestone of this recipe at another epoch (:func:`archive_name`). One there of this recipe (at
    this epoch) is dropped: this release replaces it. Returns the cfg's path."""
    root, path = Path(root), Path(root) / "otzoo" / "pretrained" / f"{cfg.name}.json"
    old = WeightCfg.from_json(path) if path.is_file() else None
    archive = root / SUPERSEDED
    (archive / archive_name(cfg)).unlink(missing_ok=True)
    if budget_epochs(cfg):
        (archive / archive_name(cfg, milestone=True)).unlink(missing_ok=True)
    if old is not None and recipe_id(old) != recipe_id(cfg):
        archive.mkdir(parents=True, exist_ok=True)
        (archive / archive_name(old)).write_text(old.to_json())
    elif old is not None and budget_epochs(old) and budget_epochs(old) != budget_epochs(cfg):
        archive.mkdir(parents=True, exist_ok=True)
        (archive / archive_name(old, milestone=True)).write_text(old.to_json())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg.to_json())
    return path


def baseline_records(root) -> list:
    """Random-init baselines ``<root>/results/baselines/<dataset>/*.json`` (``training baseline``), sorted."""
    return [json.loads(p.read_text()) for p in sorted((Path(root) / "results" / "baselines").glob("*/*.json"))]


def finetune_records(root) -> list:
    """Fine-tuning results ``<root>/results/finetune/<dataset>/*.json`` (``finetune --json-out``), sorted."""
    paths = (Path(root) / "results" / "finetune").glob("*/*.json")
    return sorted((json.loads(p.read_text()) for p in paths), key=lambda r: (r["dataset"], r["source"]))


def mark_releases(records: list, cfgs: list, superseded: list = ()) -> list:
    """``records`` with ``release``: ``None`` where a record measured the weight its name holds now (or random
    init), else which release it measured ("earlier release, 16 epochs"): a milestone replaces a name's weight,
    and a number measured on the replaced one must not read as the new one's."""
    current = {c.name: c.sha256 for c in cfgs}
    earlier = {c.sha256: c for c in superseded}

    def note(r: dict):
        sha = r.get("weight_sha256")
        if r["source"] not in current or sha == current[r["source"]]:
            return None
        if sha is None:
            return "release not recorded"
        old = earlier.get(sha)
        return f"earlier release, {budget_epochs(old)} epochs" if old else f"earlier release, sha256 {sha[:12]}"
    return [{**r, "release": note(r)} for r in records]


def _pct(v) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "n/a"


def _low(m: dict) -> str:
    return " / ".join(_pct(m.get(k)) for k in ("linear_top1_1pct", "linear_top1_10pct"))


def render_table(cfgs: list) -> str:
    """Markdown table of the released weights (or a sentence saying there are none)."""
    if not cfgs:
        return NO_WEIGHTS
    rows = ["| Weight | Architecture | Method | Dataset | Epochs | Wall time | Hardware | k-NN top-1 | Linear top-1 | "
            "Linear, 1% / 10% labels | Hub |", "|---|---|---|---|---:|---:|---|---:|---:|---:|---|"]
    for c in cfgs:
        m, b = (c.metrics or {}), (c.budget or {})
        hub, wall = (c.hf_hub_id or ""), b.get("wall_time_s")
        rows.append(f"| `{c.name}` | `{c.architecture or ''}` | {c.method or ''} | "
                    f"{m.get('dataset_variant', (c.dataset or ''))} | {epochs_text(b)} | "
                    f"{f'{wall / 3600:.1f} h' if wall else 'n/a'} | {b.get('hardware', 'n/a')} | "
                    f"{_pct(m.get('knn_top1'))} | {_pct(m.get('linear_top1'))} | {_low(m)} | "
                    f"[{hub}](https://huggingface.co/{hub}) |")
    return "\n".join(rows)


def render_finetune_table(records: list) -> str:
    """Markdown table of fine-tuning results (or a sentence saying there are none)."""
    from training.evaluate.finetune import init_text

    if not records:
        return "No fine-tuning results yet."
    rows = ["| Dataset | Initialisation | Input | Labels | Epochs | Test top-1 | Hardware |",
            "|---|---|---:|---:|---:|---:|---|"]
    for r in records:
        rows.append(f"| {r['dataset_variant']} | {init_text(r)} | {r['input_size']} px | {r['num_labelled']:,} "
                    f"({r['recipe']['label_fraction']:.0%}) | {r['recipe']['epochs']} | {_pct(r['finetune_top1'])} | "
                    f"{r['hardware']} |")
    return "\n".join(rows)


def replace_table(text: str, table: str, start: str = START, end: str = END) -> str:
    """``text`` with everything between the markers ``start`` and ``end`` replaced by ``table``."""
    i, j = text.find(start), text.find(end)
    if i < 0 or j < 0 or j < i:
        raise ValueError(f"README.md has no '{start}' ... '{end}' markers: add them where the table should go.")
    return text[:i + len(start)] + "\n" + table + "\n" + text[j:]


def has_markers(readme) -> bool:
    readme = Path(readme)
    return readme.is_file() and START in readme.read_text() and END in readme.read_text()


def results_csv(cfgs: list, superseded: list = ()) -> str:
    """CSV text with one row per weight in ``cfgs`` (status released) and in ``superseded`` (replaced)."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    rows = [(c, "released") for c in cfgs] + [(c, "superseded") for c in superseded]
    for c, status in sorted(rows, key=lambda r: (r[0].name, r[1])):
        m, b = (c.metrics or {}), (c.budget or {})
        g, wall, views = m.get("feature_geometry") or {}, b.get("wall_time_s"), b.get("views_seen")
        w.writerow({
            "name": c.name, "status": status, "recipe": recipe_id(c), "architecture": c.architecture,
            "method": c.method,
            "dataset": c.dataset, "dataset_variant": m.get("dataset_variant"), "epochs": b.get("epochs"),
            "views_seen": b.get("views_seen"), "batch_size": b.get("batch_size"),
            "knn_top1": m.get("knn_top1"), "linear_top1": m.get("linear_top1"),
            "linear_top1_1pct": m.get("linear_top1_1pct"), "linear_top1_10pct": m.get("linear_top1_10pct"),
            "subset_top1": m.get("subset_top1"), **{k: g.get(k) for k in GEOMETRY_FIELDS},
            "hardware": b.get("hardware"),
            "wall_time_h": None if wall is None else round(wall / 3600, 2),
            "views_per_s": round(views / wall, 1) if views and wall else None,
            "otzoo_version": c.otzoo_version, "hf_hub_id": c.hf_hub_id, "sha256": c.sha256,
        })
    return out.getvalue()


def finetune_csv(records: list) -> str:
    """CSV text with one row per fine-tuning result."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=FT_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({**{k: r.get(k) for k in FT_FIELDS}, "label_fraction": r["recipe"]["label_fraction"],
                    "epochs": r["recipe"]["epochs"], "train_time_min": round(r["train_time_s"] / 60, 1)})
    return out.getvalue()


def generated_files(root) -> dict:
    """``{path: text}`` of every file generated from ``<root>/otzoo/pretrained/*.json`` (the cfg files included:
    their canonical form)."""
    from training.release.cards import render_card

    root = Path(root)
    cfgs, superseded = cfgs_from_root(root), superseded_from_root(root)
    out = {path: record.to_json() for path, record in {**cfg_files(root), **superseded_files(root)}.items()}
    for ds in sorted({c.dataset for c in cfgs + superseded} | {"cifar10"}):
        out[root / "results" / f"results-{ds}.csv"] = results_csv([c for c in cfgs if c.dataset == ds],
                                                                  [c for c in superseded if c.dataset == ds])
    records, baselines = mark_releases(finetune_records(root), cfgs, superseded), baseline_records(root)
    for ds in sorted({r["dataset"] for r in records}):
        out[root / "results" / f"finetune-{ds}.csv"] = finetune_csv([r for r in records if r["dataset"] == ds])
    for c in cfgs:
        out[root / "model_cards" / f"{c.name}.md"] = render_card(c, siblings=cfgs, finetune=records,
                                                                   earlier=superseded, baselines=baselines)
    if has_markers(root / "README.md"):
        text = replace_table((root / "README.md").read_text(), render_table(cfgs))
        if FT_START in text:
            text = replace_table(text, render_finetune_table(records), FT_START, FT_END)
        out[root / "README.md"] = text
    return out


def sync_generated(root, check: bool = False) -> list:
    """Write (or with ``check`` only compare) the generated files; returns the stale paths."""
    files = generated_files(root)
    stale = [p for p, text in files.items() if not p.is_file() or p.read_text() != text]
    for path in [] if check else stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
    return stale


def main(argv=None, prog: str = "python -m training readme", command: str = "readme") -> int:
    p = argparse.ArgumentParser(prog=prog, description="Regenerate the README's table of released weights, "
                                "results/*.csv and model_cards/*.md from otzoo/pretrained/*.json.")
    p.add_argument("--check", action="store_true", help="exit 1 if any generated file is stale; write nothing")
    p.add_argument("--root", default=str(REPO_ROOT), help="repo root holding README.md and otzoo/pretrained/")
    args = p.parse_args(argv)
    root = Path(args.root).resolve()
    # the json files are exactly what the registry loads at import (otzoo.list_pretrained()); reading them
    # directly keeps weights registered at runtime (tests, notebooks) out of the generated files
    readme = root / "README.md"
    if not readme.is_file():
        print(f"error: {readme} does not exist", file=sys.stderr)
        return 2
    try:
        replace_table(readme.read_text(), "")
        stale = sync_generated(root, check=args.check)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    n = len(cfgs_from_root(root))
    names = ", ".join(str(p.relative_to(root)) for p in stale)
    if args.check:
        if stale:
            print(f"out of date: {names}; run `python -m training readme`", file=sys.stderr)
            return 1
        print(f"README table, results and model cards are up to date ({n} weights)")
    else:
        print(f"rewrote {names} ({n} weights)" if stale else f"all generated files up to date ({n} weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
