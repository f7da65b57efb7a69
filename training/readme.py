"""Generated tables: the README's weights table and ``results/results-<dataset>.csv``.

``python -m training readme [--check] [--root DIR]`` rewrites the table between
``<!-- weights-table:start -->`` and ``<!-- weights-table:end -->`` in README.md from the
pretrained cfgs in ``otzoo/pretrained/*.json`` (what ``otzoo.list_pretrained()`` lists); ``--check`` only reports (exit 1)
when it is out of date.
"""
import argparse
import csv
import io
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
START = "<!-- weights-table:start -->"
END = "<!-- weights-table:end -->"
NO_WEIGHTS = "No weights have been released yet."
CSV_FIELDS = ["name", "architecture", "method", "dataset", "dataset_variant", "epochs", "views_seen",
              "batch_size", "knn_top1", "linear_top1", "subset_top1", "hardware", "wall_time_h",
              "otzoo_version", "hf_hub_id", "sha256"]


def cfgs_from_root(root) -> list:
    """Pretrained cfgs of ``<root>/otzoo/pretrained/*.json``, sorted by name."""
    folder = Path(root) / "otzoo" / "pretrained"
    return sorted((json.loads(p.read_text()) for p in folder.glob("*.json")), key=lambda c: c["name"])


def cfgs_from_registry() -> list:
    """Pretrained cfgs of every weight ``otzoo.list_pretrained()`` knows."""
    import otzoo

    return [dict(otzoo.get_pretrained_cfg(n), name=n) for n in sorted(otzoo.list_pretrained())]


def _pct(v) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "n/a"


def render_table(cfgs: list) -> str:
    """Markdown table of the released weights (or a sentence saying there are none)."""
    if not cfgs:
        return NO_WEIGHTS
    rows = ["| Weight | Architecture | Method | Dataset | Epochs | k-NN top-1 | Linear top-1 | Hub |",
            "|---|---|---|---|---:|---:|---:|---|"]
    for c in cfgs:
        m, b = c.get("metrics", {}), c.get("budget", {})
        hub = c.get("hf_hub_id", "")
        rows.append(f"| `{c['name']}` | `{c.get('architecture', '')}` | {c.get('method', '')} | "
                    f"{m.get('dataset_variant', c.get('dataset', ''))} | {b.get('epochs', 'n/a')} | "
                    f"{_pct(m.get('knn_top1'))} | {_pct(m.get('linear_top1'))} | "
                    f"[{hub}](https://huggingface.co/{hub}) |")
    return "\n".join(rows)


def replace_table(text: str, table: str) -> str:
    """``text`` with everything between the markers replaced by ``table``."""
    i, j = text.find(START), text.find(END)
    if i < 0 or j < 0 or j < i:
        raise ValueError(f"README.md has no '{START}' ... '{END}' markers: add them where the table of "
                         "weights should go.")
    return text[:i + len(START)] + "\n" + table + "\n" + text[j:]


def has_markers(readme) -> bool:
    readme = Path(readme)
    return readme.is_file() and START in readme.read_text() and END in readme.read_text()


def update_readme(readme, cfgs: list, check: bool = False) -> bool:
    """Rewrite (or with ``check`` only compare) the table; returns True if it was up to date."""
    readme = Path(readme)
    text = readme.read_text()
    new = replace_table(text, render_table(cfgs))
    if new == text:
        return True
    if not check:
        readme.write_text(new)
    return False


def results_csv(cfgs: list) -> str:
    """CSV text with one row per weight in ``cfgs``."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for c in cfgs:
        m, b = c.get("metrics", {}), c.get("budget", {})
        wall = b.get("wall_time_s")
        w.writerow({
            "name": c["name"], "architecture": c.get("architecture"), "method": c.get("method"),
            "dataset": c.get("dataset"), "dataset_variant": m.get("dataset_variant"), "epochs": b.get("epochs"),
            "views_seen": b.get("views_seen"), "batch_size": b.get("batch_size"),
            "knn_top1": m.get("knn_top1"), "linear_top1": m.get("linear_top1"),
            "subset_top1": m.get("subset_top1"), "hardware": b.get("hardware"),
            "wall_time_h": None if wall is None else round(wall / 3600, 2),
            "otzoo_version": c.get("otzoo_version"), "hf_hub_id": c.get("hf_hub_id"), "sha256": c.get("sha256"),
        })
    return out.getvalue()


def write_results(root) -> list:
    """Write ``<root>/results/results-<dataset>.csv`` (always cifar10) from the root's cfgs."""
    cfgs = cfgs_from_root(root)
    datasets = sorted({c.get("dataset") for c in cfgs} | {"cifar10"})
    out_dir = Path(root) / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = out_dir / f"results-{ds}.csv"
        path.write_text(results_csv([c for c in cfgs if c.get("dataset") == ds]))
        paths.append(path)
    return paths


def main(argv=None, prog: str = "python -m training readme", command: str = "readme") -> int:
    p = argparse.ArgumentParser(prog=prog, description="Regenerate the README's table of released weights "
                                "from the pretrained registry.")
    p.add_argument("--check", action="store_true", help="exit 1 if the table is out of date; write nothing")
    p.add_argument("--root", default=str(REPO_ROOT), help="repo root holding README.md and otzoo/pretrained/")
    args = p.parse_args(argv)
    root = Path(args.root).resolve()
    # the json files are exactly what the registry loads at import (otzoo.list_pretrained()); reading them
    # directly keeps weights registered at runtime (tests, notebooks) out of the table
    cfgs = cfgs_from_root(root)
    readme = root / "README.md"
    if not readme.is_file():
        print(f"error: {readme} does not exist", file=sys.stderr)
        return 2
    try:
        fresh = update_readme(readme, cfgs, check=args.check)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check:
        if not fresh:
            print("README.md's weights table is out of date: run `python -m training readme`", file=sys.stderr)
            return 1
        print(f"README.md's weights table is up to date ({len(cfgs)} weights)")
    else:
        print(f"README.md: weights table {'unchanged' if fresh else 'rewritten'} ({len(cfgs)} weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
