import pytest
import torch
from torch.utils.data import TensorDataset
from torchvision import transforms as T

import otzoo
from training.evaluate.finetune import (FinetuneRecipe, finetune, finetune_optimizer, finetune_transform,
                                         label_subset, param_groups)


def tiny_set(n: int = 32, classes: int = 4, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    return TensorDataset(torch.randn(n, 3, 32, 32, generator=g) + y[:, None, None, None].float(), y)


def test_head_and_backbone_learning_rates_are_the_recipes():
    model = otzoo.create_model("resnet18_cifar", num_classes=4)
    recipe = FinetuneRecipe(lr=0.2, backbone_lr_scale=0.1, warmup_epochs=1.0, epochs=3)
    groups = {g["name"]: g for g in param_groups(model, recipe)}
    head = {id(p) for p in model.get_classifier().parameters()}
    assert {id(p) for p in groups["head"]["params"]} == head
    assert {id(p) for p in groups["backbone"]["params"]} == {id(p) for p in model.parameters()} - head
    opt, sched = finetune_optimizer(model, recipe, steps_per_epoch=4)
    lrs = []
    for _ in range(12):
        lrs.append({g["name"]: g["lr"] for g in opt.param_groups})
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx({"head": 0.2 / 4, "backbone": 0.02 / 4})  # warmup over the first epoch
    assert lrs[3] == pytest.approx({"head": 0.2, "backbone": 0.02})  # the recipe's rates once warm
    assert lrs[11]["head"] < 0.01 and all(g["momentum"] == 0.9 and g["nesterov"] for g in opt.param_groups)


def test_finetune_trains_the_head_at_its_rate_and_freezes_a_zero_rate_backbone():
    torch.manual_seed(0)
    model = otzoo.create_model("resnet18_cifar", num_classes=0)
    before = {k: v.clone() for k, v in model.named_parameters()}
    res = finetune(model, tiny_set(), tiny_set(16, seed=1), 4,
                   FinetuneRecipe(epochs=2, batch_size=8, backbone_lr_scale=0.0), progress=False)
    assert res["num_labelled"] == 32 and len(res["epoch_loss"]) == 2 and 0 <= res["finetune_top1"] <= 100
    assert torch.isfinite(torch.tensor(res["final_loss"]))
    after = dict(model.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("fc."))
    assert model.get_classifier().out_features == 4
    res = finetune(model, tiny_set(), tiny_set(16, seed=1), 4, FinetuneRecipe(epochs=1, batch_size=8),
                   progress=False)
    assert not torch.equal(before["conv1.weight"], dict(model.named_parameters())["conv1.weight"])


def test_label_subset_is_balanced_deterministic_and_all_labels_at_fraction_one():
    data = tiny_set(400, classes=4)
    labels = data.tensors[1]
    a, b = label_subset(data, labels, 0.1, seed=0), label_subset(data, labels, 0.1, seed=0)
    assert a.indices == b.indices and len(a) == 40
    assert torch.bincount(labels[a.indices]).tolist() == [10] * 4
    assert a.indices != label_subset(data, labels, 0.1, seed=1).indices
    assert label_subset(data, labels, 1.0, seed=0) is data


@pytest.mark.parametrize("arch,crop", [("resnet18_cifar", T.RandomCrop), ("resnet18", T.RandomResizedCrop)])
def test_finetune_transform_is_the_standard_crop_at_the_models_size(arch, crop):
    model = otzoo.create_model(arch)
    tf = finetune_transform(model)
    assert isinstance(tf.transforms[0], crop) and isinstance(tf.transforms[1], T.RandomHorizontalFlip)
    assert list(tf.transforms[-1].mean) == list(model.pretrained_cfg["mean"])
    from PIL import Image
    size = model.pretrained_cfg["input_size"][-1]
    assert tf(Image.new("RGB", (size, size))).shape == (3, size, size)
