"""A release is written only on purpose: names, subsampled metrics and superseding, on every path that exports."""
import hashlib
import json
from pathlib import Path

import pytest

import otzoo
from otzoo.models import register_pretrained, unregister_pretrained
from tests.training.evaluate.test_commands import make_image_tree, make_run_dir
from training.release import export, readme
from training.release.guard import ReleaseRefused, check_release

NAME = "gca_uot_resnet18_guardtest"


def repository(root: Path, released: dict = None) -> Path:
    """A root that looks like the otzoo checkout, holding the release ``released`` (a cfg) if given."""
    (root / "otzoo" / "pretrained").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'otzoo'\n")
    if released is not None:
        (root / "otzoo" / "pretrained" / f"{released['name']}.json").write_text(json.dumps(released))
    return root


@pytest.mark.parametrize("name", ["../../x", "a/b", "Gca_uot", "", "x.y", "..", "_x", "x" * 101])
def test_names_that_are_not_plain_release_names_are_refused(name, tmp_path):
    with pytest.raises(ReleaseRefused, match="lowercase letters, digits and '_'"):
        check_release(tmp_path, name, epochs=16, subsampled=False)


def test_subsampled_metrics_never_go_into_a_repository(tmp_path):
    with pytest.raises(ReleaseRefused, match="subsampled metrics never go into a repository"):
        check_release(repository(tmp_path / "repo"), NAME, epochs=16, subsampled=True, supersede="force")
    check_release(tmp_path / "scratch", NAME, epochs=16, subsampled=True)  # a temp root: a quick check


@pytest.mark.parametrize("epochs, supersede, refused", [
    (16, None, "add --supersede"), (50, None, "add --supersede"),
    (50, "yes", None), (16, "yes", None), (4, "yes", "--supersede=force"), (4, "force", None),
])
def test_an_existing_release_is_replaced_only_on_purpose(tmp_path, epochs, supersede, refused):
    root = repository(tmp_path, {"name": NAME, "recipe": {"epochs": 16}, "metrics": {"linear_top1": 67.5}})
    if refused:
        with pytest.raises(ReleaseRefused, match=refused):
            check_release(root, NAME, epochs=epochs, subsampled=False, supersede=supersede)
    else:
        check_release(root, NAME, epochs=epochs, subsampled=False, supersede=supersede)


@pytest.mark.parametrize("epochs, refused", [(50, None), (25, None), (10, "was trained 25 epochs")])
def test_a_milestone_is_replaced_by_a_later_one_its_trained_epochs_not_its_schedules_counting(tmp_path, epochs,
                                                                                             refused):
    milestone = {"name": NAME, "recipe": {"epochs": 200}, "budget": {"epochs": 25, "schedule": {"epochs": 200}}}
    root = repository(tmp_path, milestone)
    if refused:
        with pytest.raises(ReleaseRefused, match=refused):
            check_release(root, NAME, epochs=epochs, subsampled=False, supersede="yes")
    else:
        check_release(root, NAME, epochs=epochs, subsampled=False, supersede="yes")


def test_a_weight_folder_without_its_cfg_counts_as_a_release(tmp_path):
    (tmp_path / "weights" / NAME).mkdir(parents=True)
    with pytest.raises(ReleaseRefused, match="its weight folder exists"):
        check_release(tmp_path, NAME, epochs=16, subsampled=False)


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_export_refuses_to_replace_a_release_and_writes_nothing_then_supersedes_on_purpose(tmp_path, capsys):
    data = make_image_tree(tmp_path / "data")
    run = make_run_dir(tmp_path / "runs" / "r", data_dir=data)
    root = tmp_path / "root"
    root.mkdir()
    (root / "README.md").write_text(f"# x\n\n{readme.START}\n{readme.END}\n")
    args = ["--run", str(run), "--name", NAME, "--root", str(root), "--data-dir", str(data), "--max-iter", "20",
            "--subset-size", "8"]
    try:
        assert export.main(args) == 0
        before = _tree_digest(root)
        assert export.main(args) == 2
        assert "already released" in capsys.readouterr().err and _tree_digest(root) == before
        assert export.main(args + ["--supersede"]) == 0
        cfg = json.loads((root / "otzoo" / "pretrained" / f"{NAME}.json").read_text())
        assert "--supersede" in cfg["reproduce"]["export"]
        assert export.main([*args[:2], "--name", "../../escaped", *args[4:]]) == 2
        assert "no path parts" in capsys.readouterr().err
        assert not (tmp_path / "escaped").exists() and not any(tmp_path.rglob("escaped*"))
    finally:
        unregister_pretrained(NAME)


@pytest.mark.parametrize("field, value", [("name", "../../outside"), ("name", "a/b"),
                                          ("filename", "../model.safetensors"), ("filename", "/etc/passwd")])
def test_a_registered_cfg_cannot_point_outside_its_weight_folder(field, value):
    cfg = dict(otzoo.get_pretrained_cfg("simclr_resnet18_cifar10"))
    cfg.update({"name": "x_resnet18_cifar10", field: value})
    with pytest.raises(ValueError, match="is not allowed"):
        register_pretrained(cfg)
    assert value not in otzoo.list_pretrained()
