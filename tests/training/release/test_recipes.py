"""training.release.recipes: which weights share a recipe, and which are milestones of one run."""
import copy

import pytest

from otzoo.models import WeightCfg
from training.release import recipes
from tests.training.release.test_cards import with_recipe


def weight(epochs=None, name="gca_uot_resnet18_cifar10", **config) -> WeightCfg:
    cfg = copy.deepcopy(with_recipe(name, "gca_uot", 60.0, epochs=200, **config))
    budget = {k: v for k, v in cfg["budget"].items() if k != "epochs"}
    cfg["budget"] = budget if epochs is None else dict(budget, epochs=epochs, schedule={"epochs": 200})
    return WeightCfg.from_dict(cfg)


def test_budget_epochs_reads_the_budget_and_is_none_when_unrecorded():
    assert recipes.budget_epochs(weight(50)) == 50 and recipes.budget_epochs(weight()) is None


@pytest.mark.parametrize("other, expected", [
    (weight(100), True),                                       # the same run, further along
    (weight(50), False),                                       # the same milestone is not another one
    (weight(100, name="simclr_resnet18_cifar10"), False),      # another weight's
    (weight(100, batch_size=512), False),                      # another recipe
    (weight(), False),                                         # no epochs recorded
], ids=["later", "same epoch", "other name", "other recipe", "unrecorded"])
def test_other_milestone_is_the_same_name_and_recipe_at_another_epoch(other, expected):
    assert recipes.other_milestone(other, weight(50)) is expected


def test_epochs_text_says_where_a_milestone_stands_in_its_schedule():
    assert recipes.epochs_text({"epochs": 50, "schedule": {"epochs": 200}}) == "50 of 200"
    assert recipes.epochs_text({"epochs": 16}) == "16" and recipes.epochs_text({}) == "n/a"
