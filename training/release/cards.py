"""Model cards (the Hub README of each weight), rendered from its pretrained cfg.

Every number in a card comes from the cfg that ``training export`` measured and wrote; the
paper's reference numbers are the GCA paper's Table 2 (Chen et al., NeurIPS 2024).
"""
import json
from pathlib import Path
from typing import Optional, Sequence

import yaml

import otzoo
from otzoo.models import WeightCfg

from training.evaluate.finetune import init_text, is_scratch
from training.evaluate.knn import KNN_K, KNN_T
from training.release.recipes import epochs_text, other_milestone, recipe_id, same_recipe
from training.release.references import (GCA_PAPER, HF_DATASETS, LIGHTLY_BENCHMARK, METHOD_NAMES, NON_CONTRASTIVE,
                                 OT_METHODS, PAPER_TABLE2, PAPERS, PRETTY)

IMAGENET_DERIVED = ("imagenette", "imagenet")  # ImageNet's terms apply to weights trained on them
FIGURE_CAPTIONS = {
    "curves.png": "*curves.png*: training loss and learning rate per step, and the k-NN monitor during "
                  "pretraining ({knn_train:,} train / {knn_test:,} test images, evenly spaced; not the release "
                  "metric).",
    "plan.png": "*plan.png*: the {method} {plan_kind} of this model on one batch of class-sorted test "
                "images x 2 views (log10 scale; the batch size is in the figure's title; `python -m training "
                "plan`). {positives}; thin lines mark the class blocks.{mass}",
    "milestones.png": "*milestones.png*: time to accuracy across the run's milestones (table above): linear "
                      "probe and k-NN top-1 by the release protocol against epochs; a star marks lightly's published "
                      "point where there is one (other hardware, its own 200-epoch schedule).",
    "knn_vs_time.png": "*knn_vs_time.png*: time to accuracy: the k-NN monitor ({knn_train:,} train / {knn_test:,} "
                       "test images) against the run's wall-clock minutes, each point labelled with its epoch "
                       "(`python -m training curve`); a star marks lightly's published point where there is one "
                       "(other hardware and recipe).",
}
PLAN_POSITIVES = {"stacked": "Positives sit on the off-diagonals",
                  "cross_view": "Rows are view 1 and columns view 2, so positives sit on the diagonal"}
_ROW_SOFTMAX = ("coupling (row-wise softmax of the 2B x 2B similarities / tau, i.e. one Sinkhorn row "
                "normalisation: rows sum to 1, columns do not)")
PLAN_KINDS = {"simclr": _ROW_SOFTMAX, "rince": _ROW_SOFTMAX,  # where ``loss.plan`` is not a transport plan
              "byol": ("cross-view similarity (row-wise softmax of minus the distances between the normalised "
                       "online predictions and target projections; not an optimal-transport coupling)")}
METRIC_NAMES = {"linear_top1": "Linear probe top-1", "knn_top1": f"k-NN top-1 (k={KNN_K}, T={KNN_T})",
                "knn_top1_k20": f"k-NN top-1 (k=20, T={KNN_T})",
                "linear_top1_1pct": "Linear probe top-1, 1% of the labels (mean of 3 subsets)",
                "linear_top1_10pct": "Linear probe top-1, 10% of the labels (mean of 3 subsets)",
                "subset_top1": "Top-1 on the first 500 test images"}


EVAL_KEYS = ("linear_top1", "knn_top1", "knn_top1_k20", "linear_top1_1pct", "linear_top1_10pct", "subset_top1")


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def eval_split(dataset: str) -> str:
    """The split the metrics are measured on: ImageNet-derived sets have no public test split, so ``val``."""
    return "val" if dataset in IMAGENET_DERIVED else "test"


def as_record(cfg) -> WeightCfg:
    """``cfg`` as a :class:`~otzoo.models.WeightCfg` (a cfg dict is validated into one)."""
    return cfg if isinstance(cfg, WeightCfg) else WeightCfg.from_dict(cfg)


def front_matter(cfg: WeightCfg) -> dict:
    """The YAML metadata block of the Hub README (``huggingface_hub.ModelCardData`` + ``EvalResult``)."""
    from huggingface_hub import EvalResult, ModelCardData

    cfg = as_record(cfg)

    m = cfg.metrics
    dataset_id = HF_DATASETS.get(cfg.dataset, cfg.dataset)
    split = eval_split(cfg.dataset)
    names = dict(METRIC_NAMES, subset_top1=f"Top-1 on the first {m.get('subset_size', 500)} {split} images")
    results = [EvalResult(task_type="image-classification", task_name="Image Classification",
                          dataset_type=dataset_id, dataset_name=m.get("dataset_variant", cfg.dataset),
                          dataset_split={"val": "validation"}.get(split, split), metric_type="accuracy",
                          metric_name=names[k], metric_value=m[k])
               for k in EVAL_KEYS if k in m]
    return ModelCardData(
        license=cfg.license or "apache-2.0", library_name="otzoo", pipeline_tag="image-feature-extraction",
        tags=_tags(cfg.method, cfg.architecture),
        datasets=[dataset_id], metrics=["accuracy"], model_name=cfg.name, eval_results=results,
    ).to_dict()


def _tags(method: str, arch: str) -> list:
    kinds = (["optimal-transport"] if method in OT_METHODS else []) + (
        [] if method in NON_CONTRASTIVE else ["contrastive-learning"])
    return ["image-feature-extraction", "image-classification", "self-supervised-learning", *kinds, "timm", "otzoo",
            method.replace("_", "-"), arch]


def parse_front_matter(text: str) -> dict:
    """The YAML front matter of a card (``---`` delimited); raises ValueError if absent."""
    if not text.startswith("---\n"):
        raise ValueError("model card does not start with a '---' YAML front matter block")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ValueError("model card front matter is not closed by '---'")
    return yaml.safe_load(text[4:end])


def _probe_iterations(probe: dict) -> str:
    n, cap = probe.get("iterations", "n/a"), probe.get("max_iter")
    if probe.get("converged"):
        return f"{n} L-BFGS iterations (converged before max_iter={cap})"
    return f"{n} L-BFGS iterations (stopped at max_iter={cap}, before the tolerances were met)"


def _fmt_hours(seconds) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds / 3600:.2f} h ({seconds / 60:.0f} min)"


def paper_epochs() -> int:
    """The epochs of the GCA paper's schedule, as otzoo's ``gca_paper.yaml`` records it."""
    recipe = Path(__file__).resolve().parents[1] / "configs" / "gca_paper.yaml"
    return int(yaml.safe_load(recipe.read_text())["epochs"])


def _share_of_paper(budget: dict, num_train) -> str:
    epochs, views = budget.get("epochs"), budget.get("views_seen")
    if not epochs or not views or not num_train:
        return ""
    paper_views = paper_epochs() * num_train * 2
    return (f" ({views:,} views, {100 * views / paper_views:.1f}% of the paper's {paper_epochs()} epochs x "
            f"{num_train:,} images x 2 views)")


def _paper_stds(cfg: WeightCfg) -> str:
    """`` (the paper's standard deviations ...)`` where the paper has them for this dataset, else ``""``."""
    stds = [std for _, std in PAPER_TABLE2.get(cfg.dataset, {}).values()]
    if not stds:
        return ""
    return (f" (the paper's standard deviations over 5 seeds on {PRETTY.get(cfg.dataset, cfg.dataset)} "
            f"are {min(stds):.2f}-{max(stds):.2f})")


def _views_per_s(budget: dict) -> str:
    """Views seen / wall time, rounded, or ``"n/a"`` when the budget lacks either."""
    views, wall = budget.get("views_seen"), budget.get("wall_time_s")
    return f"{views / wall:.0f}" if views and wall else "n/a"


def _throughput(budget: dict) -> str:
    if not (budget.get("views_seen") and budget.get("wall_time_s")):
        return "n/a"
    return f"{_views_per_s(budget)} views/s (views seen / wall time, including compile, monitor and checkpoints)"


def _round(v, digits: int):
    return round(v, digits) if isinstance(v, float) else ("n/a" if v is None else v)


def _num(v) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _rankme(m: dict) -> str:
    g = m.get("feature_geometry")
    return f"{g['rankme']:.1f} ({g['rankme_centred']:.1f})" if g else "n/a"


def _siblings_section(cfg: WeightCfg, siblings: list) -> list:
    rows = sorted([cfg] + list(siblings), key=lambda c: c.name)
    lines = ["## Same recipe, other methods", "",
             "Weights pretrained with exactly this recipe (same config, seed and budget; only the loss differs), "
             "measured by the same export protocol:", "",
             "| Weight | Method | Linear top-1 | k-NN top-1 | RankMe (centred) | Wall time | Views/s | Hardware |",
             "|---|---|---:|---:|---:|---|---:|---|"]
    for c in rows:
        m, b = c.metrics, (c.budget or {})
        bold = "**" if c.name == cfg.name else ""
        lines.append(f"| {bold}`{c.name}`{bold} | {method_name(c.method)} | {m['linear_top1']:.2f} | "
                     f"{m['knn_top1']:.2f} | {_rankme(m)} | {_fmt_hours(b.get('wall_time_s'))} | {_views_per_s(b)} | "
                     f"{b.get('hardware', 'n/a')} |")
    noise = f"One seed each: differences of about a point are within seed-to-seed noise{_paper_stds(cfg)}."
    if len({(c.budget or {}).get("hardware") for c in rows}) > 1:
        noise += (" The weights ran on different hardware: wall times are not comparable, and `engine.precision: "
                  "auto` means bf16 autocast where the hardware has it, fp32 elsewhere.")
    return lines + ["", noise, ""]


def _other_recipes_section(cfg: WeightCfg, others: list) -> list:
    """This weight beside the weights of other recipes (other architectures, budgets) measured on the same data."""
    rows = sorted([cfg] + list(others), key=lambda c: (-c.metrics["linear_top1"], c.name))
    lines = ["## Other weights on this data", "",
             f"Every otzoo weight measured by the same export protocol on {cfg.metrics['dataset_variant']} but "
             "pretrained with another recipe (architecture, input size, budget or hardware differ: not a controlled "
             "comparison of methods):", "",
             "| Weight | Architecture | Input | Epochs | Linear top-1 | k-NN top-1 | k-NN (k=20) | Hardware |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for c in rows:
        m, b, bold = c.metrics, (c.budget or {}), "**" if c.name == cfg.name else ""
        size = f"{c.input_size[-1]} px" if c.input_size else "n/a"
        k20 = f"{m['knn_top1_k20']:.2f}" if "knn_top1_k20" in m else "n/a"
        lines.append(f"| {bold}`{c.name}`{bold} | `{c.architecture}` | {size} | {b.get('epochs', 'n/a')} | "
                     f"{m['linear_top1']:.2f} | {m['knn_top1']:.2f} | {k20} | {b.get('hardware', 'n/a')} |")
    return lines + [""]


def _release_cells(c: WeightCfg) -> str:
    """Views seen, hardware, wall time, linear and k-NN top-1 of a release: the middle of a table row."""
    m, b = c.metrics, (c.budget or {})
    return (f"{_num(b.get('views_seen', 'n/a'))} | {b.get('hardware', 'n/a')} | {_fmt_hours(b.get('wall_time_s'))} | "
            f"{m['linear_top1']:.2f} | {m['knn_top1']:.2f}")


def _earlier_section(cfg: WeightCfg, earlier: list) -> list:
    """This weight beside the earlier releases of its name (other recipes) that it replaced."""
    lines = ["## Earlier releases of this name", "",
             f"`{cfg.name}` was released before from another recipe; the file was replaced (an earlier upload "
             "stays in the Hub repo's history) and its measured numbers stay here and in `results/`:", "",
             "| Release | Recipe | Epochs | Views seen | Hardware | Wall time | Linear top-1 | k-NN top-1 |",
             "|---|---|---:|---:|---|---|---:|---:|"]
    for c in [cfg] + sorted(earlier, key=recipe_id):
        release = "**this file**" if c is cfg else f"earlier, sha256 `{c.sha256[:12]}`"
        lines.append(f"| {release} | `{recipe_id(c)}` | {(c.budget or {}).get('epochs', 'n/a')} | "
                     f"{_release_cells(c)} |")
    return lines + ["", "An earlier release's full cfg (config, budget, metrics) is "
                    f"`results/superseded/{cfg.name}.<recipe>.json`; `recipe` ids match "
                    "`results/results-*.csv`.", ""]


def _milestones_section(cfg: WeightCfg, milestones: list) -> list:
    """Time to accuracy of this weight's run: its milestones (this one and those it replaced) side by side."""
    lines = ["## Milestones of this run", "",
             f"`{cfg.name}` is released milestone by milestone from one run of its recipe, each replacing the one "
             "before; every milestone's numbers stay here and in `results/` (measured by export, as above):", "",
             "| Epochs | Views seen | Hardware | Wall time | Linear top-1 | k-NN top-1 | 1% / 10% labels | Release |",
             "|---:|---:|---|---|---:|---:|---:|---|"]
    for c in sorted(milestones, key=lambda c: c.budget["epochs"]):
        m = c.metrics
        low = f"{_round(m.get('linear_top1_1pct'), 2)} / {_round(m.get('linear_top1_10pct'), 2)}"
        release = "**this file**" if c is cfg else f"replaced, sha256 `{c.sha256[:12]}`"
        lines.append(f"| {epochs_text(c.budget)} | {_release_cells(c)} | {low} | {release} |")
    return lines + ["", "A replaced milestone's full cfg is `results/superseded/"
                    f"{cfg.name}.{recipe_id(cfg)}.e<EEE>.json`.", ""]


def _low_label_rows(m: dict) -> list:
    rows = []
    for key, share in (("1%", "linear_top1_1pct"), ("10%", "linear_top1_10pct")):
        run = (m.get("low_label") or {}).get(key)
        if run:
            rows.append(f"| Linear probe, {key} of the labels ({run['images'][0]:,} images) | {m[share]:.2f} ± "
                        f"{run['std']:.2f} | {m['protocol'].get('low_label', '')}; runs {run['top1']} |")
    return rows


def _lightly_reference(cfg: WeightCfg) -> list:
    ref = LIGHTLY_BENCHMARK.get(cfg.dataset)
    if not ref or ref[0] not in cfg.metrics:
        return []
    key, what, result = ref
    b = cfg.budget or {}
    return [f"Reference point: lightly's {PRETTY.get(cfg.dataset, cfg.dataset)} benchmark reports {what} of "
            f"{result}. This weight: **{cfg.metrics[key]:.2f}** after {b.get('epochs', 'n/a')} epochs in "
            f"{_fmt_hours(b.get('wall_time_s'))} on {b.get('hardware', 'n/a')}.", ""]


def _at_size(record: dict) -> str:
    return f", at {record['input_size']} px" if record.get("input_size") else ""


def _finetune_section(cfg: WeightCfg, records: Sequence[dict]) -> list:
    """This weight's fine-tuning results beside the same recipe from random init and from other weights."""
    own = [r for r in records if r["source"] == cfg.name]
    if not own:
        return []
    recipe = {k: v for k, v in own[0]["recipe"].items() if k != "description"}
    same = [r for r in records if r["dataset"] == cfg.dataset and r["arch"] == cfg.architecture
            and r.get("input_size") == own[0].get("input_size")
            and {k: v for k, v in r["recipe"].items() if k != "description"} == recipe]
    lines = [f"## Fine-tuning with {recipe['label_fraction']:.0%} of the labels", "",
             f"`python -m training finetune` trains the backbone and a fresh head end to end: "
             f"{own[0]['recipe']['description']}{_at_size(own[0])}. Test top-1 on {own[0]['dataset_variant']} "
             f"({own[0]['num_test']:,} test images), one run each (seed 0: differences of about a point between "
             "weights are within seed noise), beside the same recipe from random initialisation:", "",
             "| Initialisation | Test top-1 | Hardware |", "|---|---:|---|"]
    for r in sorted(same, key=lambda r: (r["source"] != cfg.name or bool(r.get("release")), r["source"])):
        bold = "**" if r["source"] == cfg.name and not r.get("release") else ""
        lines.append(f"| {bold}{init_text(r, 'random init (same recipe)')}{bold} | {r['finetune_top1']:.2f} | "
                     f"{r['hardware']} |")
    if all(r.get("release") for r in own):
        lines += ["", f"This release has not been fine-tuned yet: the `{cfg.name}` row measured the weight it "
                      "replaced (the command below measures this one)."]
    key = f"linear_top1_{recipe['label_fraction'] * 100:g}pct"
    frozen = (f"The frozen linear probe with {recipe['label_fraction']:.0%} of the labels reaches "
              f"{cfg.metrics[key]:.2f} (Results). " if key in cfg.metrics else "")
    scratch = "".join(f"; random init: `{r['command_line']}`" for r in same if is_scratch(r))
    return lines + ["", f"{frozen}Reproduce: `{own[0]['command_line']}`{scratch} (with `$OTZOO_DATA` set to `DATA`).",
                    ""]


BASELINE_COLUMNS = (("linear_top1", "Linear"), ("knn_top1", f"k-NN (k={KNN_K})"), ("knn_top1_k20", "k-NN (k=20)"),
                    ("linear_top1_1pct", "Linear, 1% labels"), ("linear_top1_10pct", "Linear, 10% labels"))


def matching_baseline(cfg: WeightCfg, baselines: Sequence[dict]) -> Optional[dict]:
    """The full-split random-init baseline of this weight's architecture, dataset and input size, if measured."""
    key = (cfg.architecture, cfg.dataset, cfg.input_size[-1] if cfg.input_size else None)
    found = [b for b in baselines if (b["arch"], b["dataset"], b["input_size"]) == key and not b["subsampled"]]
    return found[0] if found else None


def _baseline_section(cfg: WeightCfg, baselines: Sequence[dict]) -> list:
    """This weight beside the backbone its recipe starts from (random init), by the same protocol."""
    base = matching_baseline(cfg, baselines)
    if not base:
        return []
    columns = [(k, title) for k, title in BASELINE_COLUMNS if k in cfg.metrics and k in base["metrics"]]
    rows = [(f"**`{cfg.name}`**", cfg.metrics), (f"random init, seed {base['seed']}", base["metrics"])]
    lines = ["## What the pretraining bought", "",
             f"The same protocol (Results) on the randomly initialised `{cfg.architecture}` a run of the recipe starts "
             f"from (its step 0: the recipe's seed, BatchNorm statistics at their initial values), at {base['input_size']} "
             f"px on {base['dataset_variant']}; top-1 (%):", "",
             "| Backbone | " + " | ".join(t for _, t in columns) + " | RankMe (centred) |",
             "|---|" + "---:|" * (len(columns) + 1)]
    lines += [f"| {who} | " + " | ".join(f"{m[k]:.2f}" for k, _ in columns) + f" | {_rankme(m)} |" for who, m in rows]
    gain = " | ".join(f"{cfg.metrics[k] - base['metrics'][k]:+.2f}" for k, _ in columns)
    return lines + [f"| pretraining's gain | {gain} | |", "",
                    f"Measured on {base['hardware']} in {base['eval_time_s'] / 60:.0f} min: `{base['command_line']}` "
                    "(with `DATA` the dataset's ImageFolder root).", ""]


def _intro(cfg: WeightCfg) -> list:
    m, arch, method = cfg.metrics, cfg.architecture, cfg.method
    lines = [f"# {cfg.name}", "",
             f"A `{arch}` backbone pretrained with **{method_name(method)}** self-supervised learning on "
             f"{m.get('dataset_variant', cfg.dataset)}, shipped with a linear-probe classification head "
             f"({cfg.num_classes} classes) trained on its frozen features. "
             "Part of [otzoo](https://huggingface.co/otzoo): "
             "backbones pretrained with optimal-transport contrastive losses.", ""]
    if m.get("subsampled", False):
        lines += ["> **Warning:** the metrics below were measured on a subsample of the dataset "
                  f"({m.get('num_train')} train / {m.get('num_test')} test images); they are not comparable to "
                  "published numbers.", ""]
    return lines


def _details(cfg: WeightCfg) -> list:
    arch, method, paper = cfg.architecture, cfg.method, PAPERS.get(cfg.method, {})
    variant = cfg.metrics.get("dataset_variant", cfg.dataset)
    own_arch = otzoo.models.has_timm_tags(arch)
    timm_tag = f"`{cfg.tag or ''}`" if own_arch else "none: timm's own architecture (see Usage)"
    return [
        "## Model details", "", "| | |", "|---|---|",
        f"| Architecture | `{arch}` ({cfg.num_features or 'n/a'}-d pooled features) |",
        f"| Pretraining method | {method_name(method)} (`{method}` in `otzoo.losses`) |",
        f"| Paper | {paper.get('title', 'n/a')} ({paper.get('venue', '')}) |",
        f"| Pretraining data | {(cfg.budget or {}).get('data_variant') or variant}, train split, no labels |",
        f"| Head | linear probe (standardisation folded in), {cfg.num_classes} classes |",
        f"| Input | {tuple(cfg.input_size or ())}, mean {tuple(cfg.mean or ())}, std {tuple(cfg.std or ())} |",
        f"| Weights | `{cfg.filename or 'model.safetensors'}` ({cfg.dtype}), sha256 `{cfg.sha256 or ''}` |",
        f"| timm tag | {timm_tag} |",
        f"| License | {cfg.license or 'apache-2.0'} |",
        "",
    ]


def _results(cfg: WeightCfg) -> list:
    m = cfg.metrics
    proto = m.get("protocol", {})
    return [
        "## Results", "",
        f"Measured by `training export` on the exported weight, loaded back through `otzoo.create_model` + "
        f"`otzoo.create_transform` (fp32), on {m.get('dataset_variant', cfg.dataset)}, "
        f"{eval_split(cfg.dataset)} split ({_num(m.get('num_test'))} images):",
        "",
        "| Metric | Top-1 (%) | Protocol |", "|---|---|---|",
        f"| Linear probe | {m['linear_top1']:.2f} | {proto.get('linear', '')} |",
        f"| k-NN | {m['knn_top1']:.2f} | {proto.get('knn', '')} |",
        *([f"| k-NN, k=20 | {m['knn_top1_k20']:.2f} | the same with k=20 (lightly's Imagenette setting) |"]
          if "knn_top1_k20" in m else []),
        *_low_label_rows(m),
        f"| First {m.get('subset_size', 500)} {eval_split(cfg.dataset)} images | {m['subset_top1']:.2f} | "
        f"{proto.get('subset', '')} |",
        "",
        *_geometry(cfg),
        *_remeasured_note(m),
    ]


ADDED_LATER_TEXT = {"low_label": "the low-label rows", "feature_geometry": "the feature geometry",
                    "plan_mass": "the plan's mass in the plan.png caption"}
SHARED_DIRECTION_COSINE = 0.9  # mean cosine between different images above which the card warns


def remeasured_records(metrics: dict) -> list:
    """``metrics.remeasured`` as a list of ``measure`` checks, oldest first (the first version of
    ``measure`` wrote one dict: the check that added the low-label probes)."""
    records = metrics.get("remeasured") or []
    return [{**records, "added": ["low_label"]}] if isinstance(records, dict) else list(records)


def _remeasured_note(m: dict) -> list:
    lines = []
    for again in remeasured_records(m):
        checked = [f"{label} {again[key]:.2f}" for key, label in (("knn_top1", "k-NN"), ("linear_top1", "linear"))
                   if key in again]
        same = all(again[key] == m[key] for key in ("knn_top1", "linear_top1") if key in again)
        added = " and ".join(ADDED_LATER_TEXT.get(k, k) for k in again["added"])
        after = [f"it measured {' and '.join(checked)} again" + (": the shipped numbers, exactly" if same else "")
                 ] if checked else []
        after += ["it drew the plan again from the pretraining run's checkpoint: the shipped plan.png, byte for "
                  "byte"] if "plan_png" in again else []
        lines += [f"Added later by `{again['command']}` (otzoo {again['otzoo_version']}, {again['hardware']}) on the "
                  f"released file: {added}, after {'; and '.join(after)}.", ""]
    return lines


def _geometry(cfg: WeightCfg) -> list:
    m = cfg.metrics
    g = m.get("feature_geometry")
    if not g:
        return []
    dims, split = min(m.get("num_test", 0), (cfg.num_features or 0)) or "n/a", eval_split(cfg.dataset)
    text = (f"Feature geometry of the {_num(m.get('num_test'))} {split} features (label-free): RankMe (Garrido et al., "
            f"ICML 2023; at most {dims}) **{g['rankme']:.1f}** as extracted, {g['rankme_centred']:.1f} after "
            f"subtracting their mean; mean cosine similarity between two different {split} images {g['mean_cosine']:.3f}.")
    if g["mean_cosine"] > SHARED_DIRECTION_COSINE:
        text += (" **The features share one dominant direction**: the cosine similarity of any two images is near 1, "
                 "so a threshold on it (retrieval, deduplication, clustering) means little until the mean train "
                 "feature is subtracted. Rankings by similarity (the k-NN above) and the standardised linear probe "
                 "are measured as shipped.")
    return [text, ""]


def _paper_comparison(cfg: WeightCfg, has_siblings: bool) -> list:
    method, ds, m, budget = cfg.method, cfg.dataset, cfg.metrics, (cfg.budget or {})
    ref = PAPER_TABLE2.get(ds, {}).get(method)
    if not ref:
        return ["## Comparison with the paper", "",
                f"The GCA paper's Table 2 has no number for this method/dataset pair. This weight reaches "
                f"**{m['linear_top1']:.2f}** linear top-1 after {budget.get('epochs', 'n/a')} pretraining epochs, "
                f"{_fmt_hours(budget.get('wall_time_s'))} of wall time on {budget.get('hardware', 'n/a')}.", ""]
    others = PAPER_TABLE2[ds]
    base = [k for k in ("simclr", "gca_uot") if k != method and k in others]
    extra = "; ".join(f"{method_name(k)} {others[k][0]:.2f} ± {others[k][1]:.2f}" for k in base)
    jpeg = " and a JPEG re-encoding of the data" if "JPEG" in m.get("dataset_variant", ds) else ""
    return [
        "## Comparison with the paper", "",
        f"The GCA paper (Chen et al., NeurIPS 2024), Table 2, standard setting ({PRETTY.get(ds, ds)}, ResNet-18, "
        f"linear evaluation, mean ± std over 5 seeds, GPU training for 500 epochs at batch 512 per the "
        f"authors' config, otzoo's `training/configs/gca_paper.yaml`), reports "
        f"**{ref[0]:.2f} ± {ref[1]:.2f}** top-1 for {method_name(method)}" + (f" ({extra})." if extra else "."),
        f"This weight reaches **{m['linear_top1']:.2f}** linear top-1 after {budget.get('epochs', 'n/a')} "
        f"pretraining epochs{_share_of_paper(budget, m.get('num_train_full', m.get('num_train')))}, "
        f"{_fmt_hours(budget.get('wall_time_s'))} of wall time on {budget.get('hardware', 'n/a')}. The gap reflects "
        f"the much smaller compute budget{jpeg}; it says nothing about the method: compare methods within one recipe"
        + (" (next section)." if has_siblings else "."),
        "",
    ]


def _budget(cfg: WeightCfg) -> list:
    budget, recipe = (cfg.budget or {}), (cfg.recipe or {})
    lines = [
        "## Pretraining recipe and budget", "", "| | |", "|---|---|",
        f"| Epochs | {budget.get('epochs', 'n/a')} ({_num(budget.get('steps', 'n/a'))} steps){_schedule(budget)} |",
        f"| Views seen | {_num(budget.get('views_seen', 'n/a'))} |",
        f"| Batch size | {budget.get('batch_size', 'n/a')} x {budget.get('world_size', 1)} process(es) |",
        f"| Hardware | {budget.get('hardware', 'n/a')} |",
        f"| Wall time | {_fmt_hours(budget.get('wall_time_s'))} |",
        f"| Throughput | {_throughput(budget)} |",
        f"| Seed | {recipe.get('seed', 'n/a')} |",
        f"| Final loss | {_round(budget.get('final_loss'), 4)} (last step) |",
        f"| otzoo / torch | {cfg.otzoo_version or 'n/a'} / {cfg.torch_version or 'n/a'} |",
        *_heads_row(cfg),
        *_restart_rows(budget),
        "",
    ]
    if recipe.get("config"):
        lines += ["<details><summary>Resolved training config</summary>", "", "```yaml",
                  yaml.safe_dump(recipe["config"], sort_keys=False).rstrip(), "```", "", "</details>", ""]
    return lines


def _schedule(budget: dict) -> str:
    """Where a milestone stands in its run's schedule (nothing for a complete run)."""
    schedule = budget.get("schedule")
    if not schedule:
        return ""
    return (f": a milestone of a {schedule['epochs']}-epoch schedule ({_num(schedule['steps'])} steps), taken "
            "mid-schedule (the learning rate had not decayed to its end)")


def _restart_rows(budget: dict) -> list:
    """Where the run continued from a release (``--resume-from``) or started from one (``--init``)."""
    rows = [f"| Restart | at step {_num(r['step'])} from the release `{r['from']}` (sha256 `{r['sha256'][:12]}...`): "
            f"its fp16 weights and heads as fp32, the optimizer's momentum rebuilt from zero under a "
            f"{_num(r['rewarmup_steps'])}-step linear re-warmup |" for r in budget.get("restarts") or []]
    init = budget.get("init")
    if init:
        rows.append(f"| Initialised from | `{init['name']}` (sha256 `{init['sha256'][:12]}...`): its backbone"
                    f"{' and heads' if init.get('heads') else ''} |")
    return rows


def _heads_row(cfg: WeightCfg) -> list:
    heads = cfg.heads
    if not heads:
        return []
    return [f"| Pretraining heads | `{heads['filename']}` beside the weight (projector; BYOL's predictor and target), "
            f"sha256 `{heads['sha256'][:12]}...`: what continuing the pretraining needs besides the backbone |"]


def _protocol(cfg: WeightCfg) -> list:
    proto, probe = cfg.metrics.get("protocol", {}), cfg.metrics.get("linear_probe", {})
    return [
        "## Evaluation protocol", "",
        f"- **k-NN**: {proto.get('knn', '')}.",
        f"- **Linear probe**: {proto.get('linear', '')}. Optimiser: {probe.get('optimizer', 'n/a')}; "
        f"{_probe_iterations(probe)} on all of train; chosen weight decay "
        f"{probe.get('weight_decay', 'n/a')} (held-out top-1 per candidate: {json.dumps(probe.get('val_top1', {}))}).",
        f"- **Subset**: {proto.get('subset', '')}; lets a fast test reproduce the number exactly. The files are sorted "
        "by class folder, so the subset holds only the first classes: a reproducibility check, not an accuracy "
        "to compare between weights.",
        "- Every evaluation runs the model in eval mode (BatchNorm running statistics), without augmentation.",
        "",
    ]


def _limitations(cfg: WeightCfg) -> list:
    budget, ds, arch = (cfg.budget or {}), cfg.dataset, cfg.architecture
    lines = ["## Limitations", "",
             f"- Trained on a small compute budget ({budget.get('epochs', 'n/a')} epochs on "
             f"{budget.get('hardware', 'n/a')}); expect lower accuracy than long GPU schedules."]
    if ds in IMAGENET_DERIVED:
        lines += [f"- {PRETTY.get(ds, ds)} images come from ImageNet: ImageNet's terms of access (non-commercial "
                  "research and educational use) apply to this weight and to anything derived from it."]
    if "JPEG" in cfg.metrics.get("dataset_variant", ds):
        lines += ["- Trained and evaluated on a JPEG (quality 75) re-encoding of the dataset, not the original "
                  "files; numbers on the original release will differ slightly."]
    head = f"- The head only knows the {cfg.num_classes} classes of {PRETTY.get(ds, ds)}"
    lines += [head + ("; the backbone is meant as a feature extractor for small (32x32) images."
                      if arch.endswith("_cifar") else "."),
              "- A research artifact: not evaluated for robustness, fairness or any deployment use.", ""]
    return lines


def _reproduce(cfg: WeightCfg) -> list:
    commands = cfg.reproduce or {}
    pretrain = commands.get("pretrain", "# pretraining command not recorded")
    splits = "`train/` and `val/`" if cfg.dataset in IMAGENET_DERIVED else "`train/` and `test/`"
    from_env = [] if "--data-dir" in pretrain else ["export OTZOO_DATA=DATA  # the commands read the data from here"]
    return ["## How to reproduce", "",
            f"`DATA` stands for the dataset's ImageFolder root (with {splits}), `runs/` for any working folder.", "",
            "```bash", *from_env, pretrain, commands.get("export", ""), "```", ""]


def _usage(cfg: WeightCfg, hub_repo: str) -> list:
    name = cfg.name
    return [
        "## Usage", "", "```python", "import torch, otzoo", "from PIL import Image", "",
        f'model = otzoo.create_model("{name}", pretrained=True).eval()',
        "transform = otzoo.create_transform(otzoo.resolve_data_config(model))",
        'x = transform(Image.open("image.png").convert("RGB")).unsqueeze(0)',
        "with torch.inference_mode():",
        "    logits = model(x)                                              # (1, num_classes)",
        "    feats = model.forward_head(model.forward_features(x), pre_logits=True)  # (1, num_features)",
        'label = model.pretrained_cfg["label_names"][logits.argmax(1).item()]',
        "```", "",
        "torch.hub (GitHub: `OWNER` is the owner of the otzoo repository; or a local checkout with "
        "`source=\"local\"`):", "",
        "```python", f'model = torch.hub.load("{hub_repo}", "{name}")',
        f'model = torch.hub.load("path/to/otzoo", "{name}", source="local")', "```", "",
        *_timm_usage(cfg),
    ]


def _timm_usage(cfg: WeightCfg) -> list:
    hub = f'model = timm.create_model("hf-hub:{cfg.hf_hub_id or ""}", pretrained=True)'
    if otzoo.models.has_timm_tags(cfg.architecture):
        return ["timm (importing otzoo registers its architectures and tags with timm):", "",
                "```python", "import otzoo, timm",
                f'model = timm.create_model("{cfg.tag or ""}", pretrained=True)', hub, "```", ""]
    # no hf-hub: line here: for timm's own architecture timm would load the Hub file itself, unchecked
    return [f"timm (`{cfg.architecture}` is timm's own architecture, so the weight has no timm tag: "
            "`otzoo.models.timm_overlay` gives timm its file, sha256-checked, and its cfg):", "",
            "```python", "import otzoo, timm",
            f'model = timm.create_model("{cfg.architecture}", pretrained=True,',
            f'                          pretrained_cfg_overlay=otzoo.models.timm_overlay("{cfg.name}"))',
            "```", ""]


def _plan_layout(method: str) -> str:
    from otzoo.losses import get_loss_class

    return get_loss_class(method).plan_layout


def _plan_mass_text(mass: Optional[dict]) -> str:
    """What the plan of the figure learned, measured (``metrics.plan_mass``); empty when not measured."""
    if not mass:
        return ""
    text = f" On this batch the plan puts {mass['positives']:.1%} of its mass on the positives"
    uniform = f"{mass['positives_uniform']:.1%}"
    if "same_class" in mass:
        text += f" and {mass['same_class']:.1%} inside the class blocks"
        uniform += f" and {mass['same_class_uniform']:.1%}"
    return f"{text}; a uniform plan would put {uniform} (`metrics.plan_mass`)."


def _plots(cfg: WeightCfg, figures: list) -> list:
    if not figures:
        return []
    engine = ((cfg.recipe or {}).get("config") or {}).get("engine", {})
    lines = ["## Plots", ""]
    for f in figures:
        caption = FIGURE_CAPTIONS.get(f, f).format(method=method_name(cfg.method),
                                                  plan_kind=PLAN_KINDS.get(cfg.method, "transport plan"),
                                                  positives=PLAN_POSITIVES[_plan_layout(cfg.method)],
                                                  mass=_plan_mass_text((cfg.metrics or {}).get("plan_mass")),
                                                  knn_train=engine.get("knn_train", 0), knn_test=engine.get("knn_test", 0))
        lines += [f"![{f}]({f})", "", caption, ""]
    return lines


def _citation(cfg: WeightCfg) -> list:
    paper = PAPERS.get(cfg.method, {})
    lines = ["## Citation", "", "```bibtex", GCA_PAPER["bibtex"]]
    if paper and paper is not GCA_PAPER and paper.get("bibtex"):
        lines += ["", paper["bibtex"]]
    lines += ["```", ""]
    if paper and paper is not GCA_PAPER and not paper.get("bibtex"):
        lines += [f"Method: {paper['authors']}, *{paper['title']}*, {paper['venue']}"
                  + (f", {paper['url']}" if paper.get("url") else "") + ".", ""]
    return lines


def render_card(cfg: WeightCfg, figures: Optional[list] = None, hub_repo: str = "OWNER/otzoo",
                siblings: Sequence[WeightCfg] = (), finetune: Sequence[dict] = (),
                earlier: Sequence[WeightCfg] = (), baselines: Sequence[dict] = ()) -> str:
    """Markdown model card (front matter + body) of the weight described by ``cfg`` (a record, or a cfg dict).

    ``siblings``: other weights; those with the same recipe (:func:`same_recipe`) get a table, those of other
    recipes measured on the same data another.
    ``finetune``: fine-tuning records (``finetune --json-out``); this weight's, with its references, get one.
    ``earlier``: replaced releases (``results/superseded/``); those of this name get a table: its run's earlier
    milestones (same recipe, fewer epochs) one, those of other recipes another.
    ``baselines``: random-init records (``training baseline``); the one of this architecture, dataset and
    input size gets a table.
    """
    cfg, siblings, earlier = as_record(cfg), [as_record(c) for c in siblings], [as_record(c) for c in earlier]
    variant = cfg.metrics.get("dataset_variant")
    other_recipes = [c for c in siblings if c.name != cfg.name and not same_recipe(cfg, c) and variant
                     and c.dataset == cfg.dataset and c.metrics.get("dataset_variant") == variant]
    siblings = [c for c in siblings if c.name != cfg.name and same_recipe(cfg, c)]
    milestones = [c for c in earlier if other_milestone(c, cfg)]
    earlier = [c for c in earlier if c.name == cfg.name and not same_recipe(cfg, c)]
    figures = figures if figures is not None else (cfg.figures or [])
    lines = ["---", yaml.safe_dump(front_matter(cfg), sort_keys=False).rstrip(), "---", ""]
    lines += _intro(cfg) + _details(cfg) + _results(cfg) + _baseline_section(cfg, baselines)
    lines += _paper_comparison(cfg, bool(siblings))
    lines += _lightly_reference(cfg) + (_siblings_section(cfg, siblings) if siblings else [])
    lines += _other_recipes_section(cfg, other_recipes) if other_recipes else []
    lines += _milestones_section(cfg, [cfg, *milestones]) if milestones else []
    lines += _earlier_section(cfg, earlier) if earlier else []
    lines += _finetune_section(cfg, finetune) + _budget(cfg) + _protocol(cfg) + _limitations(cfg)
    lines += _reproduce(cfg) + _usage(cfg, hub_repo) + _plots(cfg, figures) + _citation(cfg)
    return "\n".join(lines)
