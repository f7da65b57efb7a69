import pytest
import torch
from torchvision.datasets import ImageFolder

import otzoo
from tests.training.evaluate.test_commands import make_image_tree
from training.evaluate.features import effective_rank, eval_transform, extract_features, feature_geometry


def test_extract_features_in_order_eval_mode_and_restores_mode(tmp_path):
    make_image_tree(tmp_path, n_train=2, n_test=1)

    model = otzoo.create_model("resnet18_cifar", num_classes=0)
    model.train()
    ds = ImageFolder(str(tmp_path / "train"), transform=eval_transform(model))
    feats, labels = extract_features(model, ds, batch_size=3)
    assert model.training  # mode restored
    assert feats.dtype == torch.float32 and feats.shape == (8, model.num_features)
    assert labels.tolist() == [y for _, y in ds.samples]
    model.eval()
    with torch.no_grad():
        ref = model(torch.stack([ds[i][0] for i in range(8)]))
    torch.testing.assert_close(feats, ref, rtol=1e-4, atol=1e-4)


def test_uint8_batches_normalised_on_the_device_give_the_same_features(tmp_path):
    make_image_tree(tmp_path, n_train=3, n_test=1)
    model = otzoo.create_model("resnet18_cifar", num_classes=0)
    as_float = extract_features(model, ImageFolder(str(tmp_path / "train"), transform=eval_transform(model)))
    as_uint8_set = ImageFolder(str(tmp_path / "train"), transform=eval_transform(model, uint8=True))
    assert as_uint8_set[0][0].dtype == torch.uint8
    as_uint8 = extract_features(model, as_uint8_set, device="cpu")
    assert torch.equal(as_float[0], as_uint8[0]) and torch.equal(as_float[1], as_uint8[1])


def test_channels_last_batches_give_the_nchw_features_to_fp32_rounding_and_leave_the_model_as_it_was(tmp_path):
    make_image_tree(tmp_path, n_train=3, n_test=1)
    model = otzoo.create_model("resnet18_cifar", num_classes=0)
    ds = ImageFolder(str(tmp_path / "train"), transform=eval_transform(model))
    nchw, labels = extract_features(model, ds, channels_last=False)
    nhwc, same_labels = extract_features(model, ds)  # the default
    torch.testing.assert_close(nhwc, nchw, rtol=1e-5, atol=1e-5)
    assert torch.equal(labels, same_labels)
    assert all(p.is_contiguous() for p in model.parameters())  # the weights' layout untouched (safetensors saves it)


@pytest.mark.cuda
def test_features_knn_and_probe_on_cuda_match_cpu(tmp_path, cuda_device):
    from training.evaluate.knn import knn_top1
    from training.evaluate.linear import train_linear_probe

    make_image_tree(tmp_path, n_train=6, n_test=3)
    model = otzoo.create_model("resnet18_cifar", num_classes=0)
    sets = [ImageFolder(str(tmp_path / s), transform=eval_transform(model, uint8=True)) for s in ("train", "test")]
    cpu = [extract_features(model, ds, device="cpu") for ds in sets]
    gpu = [extract_features(model, ds, device=cuda_device) for ds in sets]
    for (fc, yc), (fg, yg) in zip(cpu, gpu):
        torch.testing.assert_close(fg, fc, rtol=1e-3, atol=1e-3)
        assert torch.equal(yc, yg)
    assert knn_top1(cpu[0][0].to(cuda_device), cpu[0][1], *cpu[1]) == knn_top1(*cpu[0], *cpu[1])
    head_c, rec_c = train_linear_probe(*cpu[0], 4, max_iter=30)
    head_g, rec_g = train_linear_probe(*cpu[0], 4, max_iter=30, device=cuda_device)
    assert head_g.weight.device.type == "cpu" and rec_g["weight_decay"] == rec_c["weight_decay"]
    torch.testing.assert_close(head_g(cpu[1][0]), head_c(cpu[1][0]), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("rank", [1, 3, 16])
def test_effective_rank_counts_equally_spread_directions(rank):
    basis = torch.linalg.qr(torch.randn(64, 64, generator=torch.Generator().manual_seed(0)))[0][:, :rank]
    coords = torch.linalg.qr(torch.randn(200, rank, generator=torch.Generator().manual_seed(1)))[0]
    assert effective_rank(coords @ basis.T) == pytest.approx(rank, rel=1e-3)  # equal singular values


def test_effective_rank_falls_when_one_direction_dominates():
    x = torch.randn(500, 32, generator=torch.Generator().manual_seed(0))
    spread = effective_rank(x)
    x[:, 0] *= 1000  # near-collapse onto one axis
    assert 25 < spread < 32 and effective_rank(x) < 2


def test_feature_geometry_sees_a_shared_offset_that_centring_removes():
    x = torch.randn(400, 32, generator=torch.Generator().manual_seed(0))
    spread = feature_geometry(x)
    shifted = feature_geometry(x + 20.0 * torch.ones(32))  # every row pushed along one direction
    assert abs(spread["mean_cosine"]) < 0.01 and shifted["mean_cosine"] > 0.99
    assert spread["rankme"] > 25 and shifted["rankme"] < 5
    assert shifted["rankme_centred"] == pytest.approx(spread["rankme_centred"], abs=0.2)


def test_feature_geometry_mean_cosine_is_the_mean_over_pairs_of_different_rows():
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(2))
    cos = torch.nn.functional.cosine_similarity(x[:, None], x[None], dim=2)
    expected = cos[~torch.eye(7, dtype=torch.bool)].mean().item()
    assert feature_geometry(x)["mean_cosine"] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="at least 2"):
        feature_geometry(x[:1])
