"""Model cards: rendered only from a cfg; weights of one recipe are put side by side."""
import copy

from training import cards
from tests.training.test_readme import CFG


def with_recipe(name, method, linear, **config):
    cfg = copy.deepcopy(CFG)
    conf = {"method": method, "arch": "resnet18_cifar", "epochs": 16, "seed": 0, "output_dir": f"/runs/{method}"}
    conf.update(config)
    cfg.update(name=name, method=method, recipe={"method": method, "config": conf})
    cfg["metrics"] = dict(cfg["metrics"], linear_top1=linear)
    return cfg


def test_same_recipe_siblings_are_listed():
    gca = with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24)
    sim = with_recipe("simclr_resnet18_cifar10", "simclr", 66.5)
    longer = with_recipe("simclr_long_resnet18_cifar10", "simclr", 80.0, epochs=100)
    assert cards.same_recipe(gca, sim) and not cards.same_recipe(gca, longer)
    assert not cards.same_recipe(CFG, CFG)  # no recorded config: never claimed comparable
    card = cards.render_card(gca, siblings=[gca, sim, longer])
    section = card[card.index("## Same recipe, other methods"):card.index("## Pretraining recipe")]
    assert "| **`gca_uot_resnet18_cifar10`** | GCA-UOT | 67.24 |" in section
    assert "| `simclr_resnet18_cifar10` | SimCLR (InfoNCE) | 66.50 |" in section
    assert "simclr_long" not in section
    assert "## Same recipe" not in cards.render_card(gca, siblings=[longer])


def test_plan_caption_names_what_the_loss_plan_is():
    gca = dict(with_recipe("gca_uot_resnet18_cifar10", "gca_uot", 67.24), figures=["plan.png"])
    sim = dict(with_recipe("simclr_resnet18_cifar10", "simclr", 66.5), figures=["plan.png"])
    assert "the GCA-UOT transport plan of this model" in cards.render_card(gca)
    sim_card = cards.render_card(sim)
    assert "transport plan" not in sim_card and "rows sum to 1, columns do not" in sim_card
