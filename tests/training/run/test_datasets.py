"""Dataset resolution: Imagenette's wnid folders and val split, the copy's name, smaller copies."""
from pathlib import Path

import numpy as np
from PIL import Image

from training.run.datasets import IMAGENETTE_WNIDS, build_dataset, labels_of
from training.evaluate.loading import dataset_variant
from training.run.resize_data import main as resize_main

WNIDS = sorted(IMAGENETTE_WNIDS)[:3]


def make_wnid_tree(root: Path, size=(40, 30), n: int = 2) -> Path:
    for split in ("train", "val"):
        for c, wnid in enumerate(WNIDS):
            d = root / split / wnid
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((size[1], size[0], 3), 40 * c + i, np.uint8)).save(d / f"{i}.JPEG")
    return root


def test_imagenette_folder_reads_val_as_test_with_readable_label_names(tmp_path):
    root = make_wnid_tree(tmp_path / "imagenette")
    test = build_dataset("imagenette", "test", data_dir=str(root))
    assert Path(test.root).name == "val" and len(test) == 6
    assert test.classes == ["tench", "English springer", "cassette player"]
    assert labels_of(test).tolist() == [0, 0, 1, 1, 2, 2]
    assert build_dataset("other", "test", data_dir=str(root)).classes == WNIDS  # only imagenette's names


def test_dataset_variant_is_what_the_data_readme_asks_for(tmp_path):
    for name in ("cifar10", "imagenette"):
        (tmp_path / name).mkdir()
    (tmp_path / "README.md").write_text('# Data\n\n## cifar10/\nthe copy. Say "CIFAR-10 (copy A)" wherever.\n\n'
                                        '## imagenette/\nSay "Imagenette (224px copy)" wherever.\n')
    assert dataset_variant("cifar10", tmp_path / "cifar10") == "CIFAR-10 (copy A)"
    assert dataset_variant("imagenette", tmp_path / "imagenette") == "Imagenette (224px copy)"
    (tmp_path / "mine").mkdir()
    assert dataset_variant("imagenette", tmp_path / "mine") == "Imagenette (ImageFolder at mine/)"


def test_resize_data_makes_a_smaller_copy_with_the_same_tree(tmp_path, capsys):
    src = make_wnid_tree(tmp_path / "src", size=(300, 200))
    assert resize_main([str(src), str(tmp_path / "dst"), "--size", "100"]) == 0
    out = sorted(p.relative_to(tmp_path / "dst") for p in (tmp_path / "dst").rglob("*.jpg"))
    assert len(out) == 12 and out[0].parts[:2] == ("train", WNIDS[0])
    assert Image.open(tmp_path / "dst" / out[0]).size == (150, 100)  # shorter side 100, aspect kept
    assert resize_main([str(tmp_path / "empty"), str(tmp_path / "x")]) == 2
    assert "no images" in capsys.readouterr().err
