"""training verify: a released weight, loaded by name (otzoo and torch.hub), reproduces its cfg's numbers."""
import pytest

import otzoo
from otzoo.models import register_pretrained
from training.release import verify
from tests.training.release.test_export import NAME, exported  # noqa: F401  (fixture)


@pytest.fixture
def weights_dir(exported, monkeypatch):  # noqa: F811
    cfg, root, data, _ = exported
    monkeypatch.setenv("OTZOO_WEIGHTS_DIR", str(root / "weights"))
    return cfg, data


def test_verify_reproduces_the_exported_numbers(weights_dir, capsys):
    cfg, data = weights_dir
    assert verify.main([NAME, "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"verified: {NAME}" in out and "FAIL" not in out
    res = verify.verify(NAME, str(data), say=lambda *a: None)
    (_, same, _, ok_hub), (_, sub, want_sub, ok_sub), (_, full, want_full, ok_full) = res["checks"]
    assert same and ok_hub and ok_sub and ok_full
    assert round(sub, 2) == want_sub == cfg["metrics"]["subset_top1"]
    assert abs(full - want_full) <= verify.FULL_TOLERANCE
    assert len(res["shown"]) == 8 and all(t in cfg["label_names"] for t, _, _ in res["shown"])


def test_verify_fails_when_the_card_number_is_wrong(weights_dir, capsys):
    cfg, data = weights_dir
    wrong = dict(cfg, metrics=dict(cfg["metrics"], subset_top1=cfg["metrics"]["subset_top1"] + 12.5))
    register_pretrained(wrong)
    try:
        assert verify.main([NAME, "--data-dir", str(data), "--subset-only"]) == 1
    finally:
        register_pretrained(cfg)
    assert "[FAIL] top-1 on the first" in capsys.readouterr().out


def test_verify_fails_when_nothing_was_compared(weights_dir, capsys):
    """Measured on another copy of the data than the card's, no accuracy is enforced: that is not verified."""
    cfg, data = weights_dir
    register_pretrained(dict(cfg, metrics=dict(cfg["metrics"], dataset_variant="another copy of the data")))
    try:
        assert verify.main([NAME, "--data-dir", str(data), "--subset-only"]) == 1
    finally:
        register_pretrained(cfg)
    out = capsys.readouterr().out
    assert f"NOT verified: {NAME}" in out and "no accuracy of its card was compared" in out


def test_verify_unknown_name_suggests(weights_dir, capsys):
    _, data = weights_dir
    assert verify.main([NAME.replace("uot", "out"), "--data-dir", str(data)]) == 2
    assert NAME in capsys.readouterr().err
    assert otzoo.list_pretrained(NAME) == [NAME]


def test_verify_tampered_file_fails(exported, monkeypatch, tmp_path, capsys):  # noqa: F811
    import shutil

    _, root, data, _ = exported
    shutil.copytree(root / "weights" / NAME, tmp_path / NAME)
    blob = bytearray((tmp_path / NAME / "model.safetensors").read_bytes())
    blob[-100] ^= 0xFF  # one flipped byte inside a tensor
    (tmp_path / NAME / "model.safetensors").write_bytes(bytes(blob))
    monkeypatch.setenv("OTZOO_WEIGHTS_DIR", str(tmp_path))
    assert verify.main([NAME, "--data-dir", str(data), "--subset-only"]) == 1
    assert "sha256" in capsys.readouterr().err


def test_verify_refuses_a_data_dir_of_other_classes(weights_dir, tmp_path, capsys):
    from tests.training.evaluate.test_commands import make_image_tree

    other = make_image_tree(tmp_path / "other", classes=("cat", "dog", "ship", "truck"))
    assert verify.main([NAME, "--data-dir", str(other), "--subset-only"]) == 2
    err = capsys.readouterr().err
    assert "['cat', 'dog', 'ship', 'truck']" in err and "--data-dir" in err and "c0" in err
