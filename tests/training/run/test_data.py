import numpy as np
import pytest
import torch
from PIL import Image

from training.run.data import EpochShuffler, load_images, shard


def test_shuffler_epochs_are_seeded_permutations():
    s = EpochShuffler(10, 3, seed=1)
    assert s.steps_per_epoch == 3
    e0 = torch.cat([s.next_batch() for _ in range(3)])
    e1 = torch.cat([s.next_batch() for _ in range(3)])
    assert len(set(e0.tolist())) == 9 and len(set(e1.tolist())) == 9  # no repeats; last partial batch dropped
    assert not torch.equal(e0, e1)
    assert s.epoch == 1 and s.position == 3
    again = EpochShuffler(10, 3, seed=1)
    assert torch.equal(torch.cat([again.next_batch() for _ in range(3)]), e0)
    other = EpochShuffler(10, 3, seed=2)
    assert not torch.equal(torch.cat([other.next_batch() for _ in range(3)]), e0)


def test_shuffler_state_resumes_exactly():
    a = EpochShuffler(50, 8, seed=0)
    for _ in range(9):  # into the second epoch
        a.next_batch()
    state = a.state_dict()
    expected = [a.next_batch() for _ in range(10)]
    b = EpochShuffler(50, 8, seed=0)
    b.load_state_dict(state)
    for want in expected:
        assert torch.equal(b.next_batch(), want)
    with pytest.raises(ValueError, match="does not match"):
        EpochShuffler(50, 4, seed=0).load_state_dict(state)


def test_shuffler_and_shard_errors():
    with pytest.raises(ValueError, match="batch"):
        EpochShuffler(4, 8)
    assert shard(12, 1, 3) == (4, 8)
    with pytest.raises(ValueError, match="divisible"):
        shard(10, 0, 3)


def test_synthetic_is_deterministic():
    a, b = load_images("synthetic", subset=20), load_images("synthetic", subset=20)
    assert a.images.shape == (20, 3, 32, 32) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images) and a.labels.tolist() == [i % 10 for i in range(20)]


@pytest.mark.data
def test_decodes_imagefolder_once_and_caches(cifar10_dir, tmp_path):
    data = load_images("cifar10", "test", str(cifar10_dir), subset=20, cache_dir=str(tmp_path))
    assert data.images.shape == (20, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.images.is_contiguous()
    assert len(data.classes) == 10 and data.labels.min() == 0 and data.labels.max() == 9
    # evenly spaced subset of the sorted ImageFolder: first and last files
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(cifar10_dir / "test"))
    first, last = folder.samples[0], folder.samples[-1]
    ref = np.asarray(Image.open(first[0]).convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(data.images[0].numpy(), ref) and data.labels[0] == first[1]
    assert data.labels[-1] == last[1]
    assert len(list(tmp_path.glob("*.images.npy"))) == 1
    cached = load_images("cifar10", "test", str(cifar10_dir), subset=20, cache_dir=str(tmp_path))
    assert torch.equal(cached.images, data.images) and torch.equal(cached.labels, data.labels)
    assert cached.classes == data.classes


def test_the_decode_cache_follows_the_data_and_survives_a_partial_entry(tmp_path):
    import os

    from PIL import Image

    from tests.training.evaluate.test_commands import make_image_tree

    data, cache = make_image_tree(tmp_path / "data"), tmp_path / "cache"
    first = load_images("folder", "train", str(data), cache_dir=str(cache))
    image = data / "train" / "c0" / "0000.png"
    Image.new("RGB", (32, 32), (255, 255, 255)).save(image)
    os.utime(image, ns=(1, 1))  # whatever its time: the size or the time changes the key
    changed = load_images("folder", "train", str(data), cache_dir=str(cache))
    assert torch.equal(changed.images[0], torch.full((3, 32, 32), 255, dtype=torch.uint8))
    assert not torch.equal(changed.images[0], first.images[0]) and torch.equal(changed.images[1:], first.images[1:])
    for classes in cache.glob("*.classes.txt"):
        classes.unlink()  # an entry left without its class list (an interrupted write)
    again = load_images("folder", "train", str(data), cache_dir=str(cache))
    assert again.classes == first.classes and torch.equal(again.images, changed.images)
    assert not list(cache.glob("*.tmp*"))
