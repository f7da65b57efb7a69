"""Model cards: rendered only from a cfg; weights of one recipe are put side by side."""
import copy

import pytest

import otzoo
from otzoo.losses import get_loss_class, list_losses
from otzoo.models import WeightCfg
from training.release import cards, recipes
from tests.training.release.test_readme import CFG


def with_recipe(name, method, linear, **config):
    cfg = copy.deepcopy(CFG)
    conf = {"method": method, "arch": "resnet18_cifar", "epochs": 16, "seed": 0, "output_dir": f"/runs/{method}"}
    conf.update(config)
    cfg.update(name=name, method=method, recipe={"method": method, "config": conf})
    cfg["metrics"] = dict(cfg["metrics"], linear_top1=linear)
    return cfg


def same_recipe(a: dict, b: dict) -> bool:
    return recipes.same_recipe(WeightCfg.from_dict(a), WeightCfg.from_dict(b))


def test_same_recipe_siblings_are_listed():
    gca = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24)
    sim = with_recipe("simclr_resnet18_cifar10", "simclr", 66.5)
    longer = with_recipe("simclr_long_resnet18_cifar10", "simclr", 80.0, epochs=100)
    assert same_recipe(gca, sim) and not same_recipe(gca, longer)
    watched = with_recipe("iot_resnet18_cifar10", "iot", 60.0, engine={"knn_every": 1, "knn_test": 10000})
    assert same_recipe(gca, watched)  # a denser kNN monitor watches the same training
    assert not same_recipe(gca, with_recipe("iot_resnet18_cifar10", "iot", 60.0, engine={"precision": "fp32"}))
    from_env = with_recipe("otco_resnet18_cifar10", "otco", 60.0, data={"dir": None, "cache_dir": "runs/.cache"})
    assert same_recipe(with_recipe("rince_resnet18_cifar10", "rince", 60.0, data={"dir": "DATA"}), from_env)
    streamed = with_recipe("rince_resnet18_cifar10", "rince", 60.0, data={"stream": True, "workers": 8})
    assert same_recipe(gca, streamed) and recipes.recipe_id(WeightCfg.from_dict(gca)) == recipes.recipe_id(
        WeightCfg.from_dict(streamed))  # streaming reads the same pixels in the same order
    heap_off = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24, engine={"reuse_memory": False})
    assert recipes.recipe_id(WeightCfg.from_dict(gca)) == recipes.recipe_id(WeightCfg.from_dict(heap_off))
    assert not same_recipe(gca, with_recipe("otco_resnet18_cifar10", "otco", 60.0, data={"variant": "x"}))
    assert not same_recipe(CFG, CFG)  # no recorded config: never claimed comparable
    card = cards.render_card(gca, siblings=[gca, sim, longer])
    section = card[card.index("## Same recipe, other methods"):card.index("## Other weights on this data")]
    assert "| **`gca_uot_resnet18_cifar10`** | GCA-UOT | 67.24 |" in section
    assert "| n/a | 2.00 h (120 min) | 417 | cpu |" in section  # no geometry; views/s = 3,000,000 / 7,200 s
    assert "| `simclr_resnet18_cifar10` | SimCLR (InfoNCE) | 66.50 |" in section
    assert "simclr_long" not in section
    assert "## Same recipe" not in cards.render_card(gca, siblings=[longer])
    assert "different hardware" not in section
    sim["budget"] = dict(sim.get("budget", {}), hardware="1x CPU other, fp32")
    assert "different hardware" in cards.render_card(gca, siblings=[gca, sim])


def test_reproduce_says_where_the_data_comes_from():
    def block(pretrain):
        cfg = dict(with_recipe("otco_resnet18_cifar10", "otco", 60.0), reproduce={"pretrain": pretrain})
        card = cards.render_card(cfg)
        return card[card.index("## How to reproduce"):card.index("## Usage")]
    from_env = block("python -m training pretrain --config c.yaml method=otco")
    assert "export OTZOO_DATA=DATA" in from_env
    assert from_env.index("export OTZOO_DATA=DATA") < from_env.index("python -m training pretrain")
    assert "OTZOO_DATA" not in block("python -m training pretrain --config c.yaml --data-dir DATA")


def test_noise_line_quotes_the_paper_only_where_it_has_numbers():
    def noise_line(dataset):
        pair = [dict(with_recipe(f"{m}_resnet18_x", m, 60.0), dataset=dataset) for m in ("gca_uot", "simclr")]
        card = cards.render_card(pair[0], siblings=pair)
        return next(line for line in card.splitlines() if line.startswith("One seed each"))
    assert "the paper's standard deviations over 5 seeds on CIFAR-10 are" in noise_line("cifar10")
    assert noise_line("imagenette").endswith("within seed-to-seed noise.") and "n/a" not in noise_line("imagenette")

def test_plan_caption_names_what_the_loss_plan_is():
    gca = dict(with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24), figures=["plan.png"])
    sim = dict(with_recipe("simclr_resnet18_cifar10", "simclr", 66.5), figures=["plan.png"])
    assert "the GCA-UOT transport plan of this model" in cards.render_card(gca)
    sim_card = cards.render_card(sim)
    assert "transport plan" not in sim_card and "rows sum to 1, columns do not" in sim_card


def test_plan_caption_states_the_measured_plan_mass_and_nothing_unmeasured():
    def caption(**metrics):
        cfg = with_recipe("sinsim_resnet18_cifar10", "sinsim", 60.0)
        cfg = dict(cfg, figures=["plan.png"], metrics=dict(cfg["metrics"], **metrics))
        return next(line for line in cards.render_card(cfg).splitlines() if line.startswith("*plan.png*"))
    mass = {"batch": 64, "seed": 0, "positives": 0.0041, "positives_uniform": 0.0039, "same_class": 0.1012,
            "same_class_uniform": 0.1006}
    assert ("On this batch the plan puts 0.4% of its mass on the positives and 10.1% inside the class blocks; "
            "a uniform plan would put 0.4% and 10.1%") in caption(plan_mass=mass)
    assert "of its mass" not in caption() and "learned" not in caption()


@pytest.mark.parametrize("method", list_losses())
def test_plan_caption_matches_the_layout_of_every_loss(method):
    cfg = dict(with_recipe(f"{method}_resnet18_cifar10", method, 60.0), figures=["plan.png"])
    caption = next(line for line in cards.render_card(cfg).splitlines() if line.startswith("*plan.png*"))
    assert cards.method_name(method) in caption
    cross_view = get_loss_class(method).plan_layout == "cross_view"
    assert ("positives sit on the diagonal" in caption) == cross_view
    assert ("Positives sit on the off-diagonals" in caption) == (not cross_view)
    assert ("transport plan" in caption) == (method not in ("simclr", "rince", "byol"))


def test_hub_tags_say_what_each_method_is():
    def tags(method):
        return cards.front_matter(with_recipe(f"{method}_resnet18_cifar10", method, 60.0))["tags"]
    assert {"optimal-transport", "contrastive-learning", "gca-uot"} <= set(tags("gca_uot"))
    assert "optimal-transport" not in tags("simclr") and "contrastive-learning" in tags("simclr")
    assert not {"optimal-transport", "contrastive-learning"} & set(tags("byol"))
    assert set(cards.OT_METHODS) | {"simclr", "rince", "byol"} == set(list_losses())  # every loss is classified


def finetune_record(source, top1, input_size=32, **recipe):
    rec = {"epochs": 10, "label_fraction": 0.1, "lr": 0.1, "description": "10 epochs on 10% of the labels"}
    rec.update(recipe)
    return {"source": source, "arch": "resnet18_cifar", "dataset": "cifar10", "dataset_variant": "CIFAR-10 (JPEG q75 copy)",
            "input_size": input_size,
            "finetune_top1": top1, "num_labelled": 5000, "num_test": 10000, "train_time_s": 1500.0,
            "hardware": "1x CPU", "command_line": f"python -m training finetune --model {source}", "recipe": rec}


def test_fine_tuning_section_puts_the_weight_beside_scratch_with_the_same_recipe():
    gca = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24)
    records = [finetune_record("gca_uot_resnet18_cifar10", 71.5), finetune_record("random init (resnet18_cifar)", 48.25),
               finetune_record("random init (resnet18_cifar)", 60.0, epochs=50),
               finetune_record("random init (resnet18_cifar)", 55.0, input_size=64),
               finetune_record("simclr_resnet18_cifar10", 70.0)]
    card = cards.render_card(gca, finetune=records)
    section = card[card.index("## Fine-tuning with 10% of the labels"):card.index("## Pretraining recipe")]
    assert section.index("| **`gca_uot_resnet18_cifar10`** | 71.50 |") < section.index(
        "| random init (same recipe) | 48.25 |") and "| `simclr_resnet18_cifar10` | 70.00 |" in section
    assert "60.00" not in section and "55.00" not in section  # another recipe or input size is not put beside it
    assert "at 32 px" in section and "random init: `python -m training finetune --model random init" in section
    assert "## Fine-tuning" not in cards.render_card(gca, finetune=records[1:])


def test_low_label_probes_are_in_the_results_and_front_matter():
    gca = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24)
    gca["metrics"].update(linear_top1_1pct=40.5, linear_top1_10pct=55.25, protocol={"low_label": "P"},
                          low_label={"1%": {"images": [500] * 3, "top1": [40.0, 41.0, 40.5], "std": 0.5},
                                     "10%": {"images": [5000] * 3, "top1": [55.0, 55.5, 55.25], "std": 0.25}})
    card = cards.render_card(gca)
    assert "| Linear probe, 1% of the labels (500 images) | 40.50 ± 0.50 |" in card
    assert "| Linear probe, 10% of the labels (5,000 images) | 55.25 ± 0.25 |" in card
    values = [r["value"] for r in cards.parse_front_matter(card)["model-index"][0]["results"][0]["metrics"]]
    assert 40.5 in values and 55.25 in values
    assert "Added later" not in card
    gca["metrics"]["remeasured"] = {"knn_top1": 80.123, "linear_top1": 67.24, "otzoo_version": "9", "hardware": "h",
                                    "command": "python -m training measure x"}
    assert "linear 67.24 again: the shipped numbers, exactly." in cards.render_card(gca)
    gca["metrics"]["remeasured"]["linear_top1"] = 67.2
    assert "linear 67.20 again." in cards.render_card(gca)
    assert "on the released file: the low-label rows, after" in cards.render_card(gca)  # a first-version dict


def test_feature_geometry_is_in_the_results_and_warns_only_of_a_shared_direction():
    gca = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24)
    gca.update(num_features=512)
    gca["metrics"] = dict(gca["metrics"], num_test=10000, protocol={"geometry": "RankMe of the test features"},
                          feature_geometry={"rankme": 120.04, "rankme_centred": 170.0, "mean_cosine": 0.7})
    card = cards.render_card(gca, siblings=[gca])
    assert "Feature geometry of the 10,000 test features (label-free): RankMe (Garrido et al., ICML 2023; at most " \
           "512) **120.0** as extracted, 170.0 after subtracting their mean; mean cosine similarity between two " \
           "different test images 0.700." in card
    assert "share one dominant direction" not in card
    gca["metrics"]["feature_geometry"].update(rankme=13.2, mean_cosine=0.99)
    sim = with_recipe("simclr_resnet18_cifar10", "simclr", 66.5)
    card = cards.render_card(gca, siblings=[gca, sim])
    assert "**The features share one dominant direction**" in card
    assert "| **`gca_uot_resnet18_cifar10`** | GCA-UOT | 67.24 | 80.12 | 13.2 (170.0) |" in card


def test_every_later_measurement_is_noted_with_what_it_added():
    gca = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24)
    first = {"knn_top1": 80.123, "linear_top1": 67.24, "otzoo_version": "1", "hardware": "h1", "command": "m1",
             "added": ["low_label"]}
    second = {"linear_top1": 67.24, "otzoo_version": "2", "hardware": "h2", "command": "m2",
              "added": ["feature_geometry"]}
    gca["metrics"] = dict(gca["metrics"], remeasured=[first, second])
    card = cards.render_card(gca)
    assert ("Added later by `m1` (otzoo 1, h1) on the released file: the low-label rows, after it measured k-NN 80.12 "
            "and linear 67.24 again: the shipped numbers, exactly.") in card
    assert ("Added later by `m2` (otzoo 2, h2) on the released file: the feature geometry, after it measured linear "
            "67.24 again: the shipped numbers, exactly.") in card


def test_imagenet_derived_cards_name_the_val_split():
    cifar = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24)
    nette = dict(cifar, dataset="imagenette")
    assert "test split" in cards.render_card(cifar) and "split: test" in cards.render_card(cifar)
    card = cards.render_card(nette)
    assert "val split" in card and "split: validation" in card and "test split" not in card
    assert "First 500 val images" in card


def test_cards_show_only_sha256_checked_loading_paths():
    """timm's loader would fetch an hf-hub: weight of timm's own architecture unchecked: no card shows that line."""
    for cfg in map(otzoo.get_weight_cfg, otzoo.list_pretrained()):
        usage = "\n".join(cards._timm_usage(cfg))
        assert ("hf-hub:" in usage) == otzoo.models.has_timm_tags(cfg.architecture), cfg.name
        assert "timm_overlay" in usage or f'"{cfg.tag}"' in usage


def test_weights_of_other_recipes_on_the_same_data_get_their_own_table():
    gca = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24)
    sim = with_recipe("simclr_resnet18_cifar10", "simclr", 66.5)
    longer = with_recipe("gca_uot_long_resnet18_cifar10", "gca_uot", 80.0, epochs=200)
    longer.update(input_size=[3, 32, 32], budget=dict(longer["budget"], epochs=200))
    other_copy = with_recipe("simclr_other_resnet18_cifar10", "simclr", 90.0, epochs=100)
    other_copy["metrics"] = dict(other_copy["metrics"], dataset_variant="CIFAR-10 (torchvision)")
    card = cards.render_card(gca, siblings=[gca, sim, longer, other_copy])
    section = card[card.index("## Other weights on this data"):]
    section = section[:section.index("\n## ")]
    assert section.index("| `gca_uot_long_resnet18_cifar10` | `resnet18_cifar` | 32 px | 200 | 80.00 | 80.12 | n/a |") \
        < section.index("| **`gca_uot_resnet18_cifar10`** |")  # best linear first
    assert "simclr_resnet18_cifar10`" not in section and "90.00" not in section  # same recipe / other data copy
    assert "simclr_resnet18_cifar10" in card[card.index("## Same recipe, other methods"):]
    assert "## Other weights on this data" not in cards.render_card(gca, siblings=[gca, sim])
