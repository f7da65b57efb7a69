import csv
import io
import json

import pytest

from otzoo.models import WeightCfg
from training.release import cards, readme, recipes

CFG = {"name": "gca_uot_resnet18_cifar10", "architecture": "resnet18_cifar", "method": "gca_uot",
       "dataset": "cifar10", "num_classes": 10, "hf_hub_id": "otzoo/gca_uot_resnet18_cifar10", "sha256": "ab" * 32,
       "dtype": "float16",
       "budget": {"epochs": 30, "views_seen": 3000000, "batch_size": 256, "hardware": "cpu", "wall_time_s": 7200},
       "metrics": {"knn_top1": 80.123, "linear_top1": 84.5, "subset_top1": 90.0,
                   "dataset_variant": "CIFAR-10 (JPEG q75 copy)"}}
REC = WeightCfg.from_dict(CFG)


def test_render_table():
    assert readme.render_table([]) == readme.NO_WEIGHTS and "No weights have been released yet" in readme.NO_WEIGHTS
    table = readme.render_table([REC])
    row = table.splitlines()[2]
    assert "`gca_uot_resnet18_cifar10`" in row and "| 30 | 2.0 h | cpu |" in row and "80.12" in row and "84.50" in row
    assert "https://huggingface.co/otzoo/gca_uot_resnet18_cifar10" in row


def test_update_and_check_on_a_temp_root(tmp_path, capsys):
    text = f"# otzoo\n\nintro\n\n{readme.START}\nhand-typed\n{readme.END}\n\nmore\n"
    path = tmp_path / "README.md"
    path.write_text(text)
    assert readme.main(["--check", "--root", str(tmp_path)]) == 1  # stale (no weights in that root)
    assert path.read_text() == text and not (tmp_path / "results").exists()  # --check writes nothing
    assert readme.main(["--root", str(tmp_path)]) == 0
    new = path.read_text()
    assert readme.NO_WEIGHTS in new and "hand-typed" not in new and new.startswith("# otzoo\n\nintro")
    assert new.endswith("\n\nmore\n")
    assert readme.main(["--check", "--root", str(tmp_path)]) == 0

    (tmp_path / "otzoo" / "pretrained").mkdir(parents=True)
    (tmp_path / "otzoo" / "pretrained" / f"{CFG['name']}.json").write_text(json.dumps(CFG))
    assert sorted(p.name for p in readme.sync_generated(tmp_path, check=True)) == [
        "README.md", f"{CFG['name']}.json", f"{CFG['name']}.md", "results-cifar10.csv"]  # the json: canonical form
    assert readme.main(["--root", str(tmp_path)]) == 0
    assert "`gca_uot_resnet18_cifar10`" in path.read_text()
    card = (tmp_path / "model_cards" / f"{CFG['name']}.md").read_text()
    assert card == cards.render_card(CFG) and "| 84.50 |" in card
    assert readme.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "model_cards" / f"{CFG['name']}.md").write_text(card.replace("84.50", "99.00"))  # hand edit
    assert readme.main(["--check", "--root", str(tmp_path)]) == 1
    assert f"model_cards/{CFG['name']}.md" in capsys.readouterr().err


def test_finetune_records_make_the_readme_table_csv_and_card_section(tmp_path):
    from tests.training.release.test_cards import finetune_record

    (tmp_path / "README.md").write_text(f"{readme.START}\n{readme.END}\n{readme.FT_START}\nold\n{readme.FT_END}\n")
    (tmp_path / "otzoo" / "pretrained").mkdir(parents=True)
    (tmp_path / "otzoo" / "pretrained" / f"{CFG['name']}.json").write_text(json.dumps(CFG))
    folder = tmp_path / "results" / "finetune" / "cifar10"
    folder.mkdir(parents=True)
    for rec in (dict(finetune_record(CFG["name"], 71.5), weight_sha256=CFG["sha256"]),
                finetune_record("random init (resnet18_cifar)", 48.25)):
        (folder / f"{rec['source'][:6]}.json").write_text(json.dumps(rec))
    assert readme.main(["--root", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "| `gca_uot_resnet18_cifar10` | 32 px | 5,000 (10%) | 10 | 71.50 | 1x CPU |" in text and "old" not in text
    assert "| random init | 32 px | 5,000 (10%) | 10 | 48.25 |" in text
    rows = list(csv.DictReader((tmp_path / "results" / "finetune-cifar10.csv").open()))
    assert [r["finetune_top1"] for r in rows] == ["71.5", "48.25"] and rows[0]["label_fraction"] == "0.1"
    assert rows[0]["input_size"] == "32"
    assert "## Fine-tuning with 10% of the labels" in (tmp_path / "model_cards" / f"{CFG['name']}.md").read_text()


def test_a_fine_tuning_record_of_a_replaced_release_is_labelled_with_it_in_the_readme_and_card(tmp_path):
    from tests.training.release.test_cards import finetune_record

    old = WeightCfg.from_dict(dict(CFG, sha256="c" * 64, budget=dict(CFG["budget"], epochs=16)))
    records = [dict(finetune_record(CFG["name"], 72.42), weight_sha256="c" * 64),
               finetune_record("random init (resnet18_cifar)", 52.18),
               dict(finetune_record("simclr_resnet18_cifar10", 72.16), weight_sha256="e" * 64),
               finetune_record("other_resnet18_cifar10", 70.0)]
    simclr = WeightCfg.from_dict(dict(CFG, name="simclr_resnet18_cifar10", sha256="e" * 64))
    other = WeightCfg.from_dict(dict(CFG, name="other_resnet18_cifar10", sha256="f" * 64))
    marked = readme.mark_releases(records, [REC, simclr, other], [old])
    assert [r["release"] for r in marked] == ["earlier release, 16 epochs", None, None, "release not recorded"]
    assert readme.mark_releases(records[:1], [REC])[0]["release"] == f"earlier release, sha256 {'c' * 12}"
    table = readme.render_finetune_table(marked)
    assert "| `gca_uot_resnet18_cifar10` (earlier release, 16 epochs) | 32 px |" in table
    assert "| `simclr_resnet18_cifar10` | 32 px |" in table
    card = cards.render_card(REC, finetune=marked)
    section = card[card.index("## Fine-tuning"):card.index("## Pretraining recipe")]
    assert "| `gca_uot_resnet18_cifar10` (earlier release, 16 epochs) | 72.42 |" in section  # not bold: not this file
    assert "This release has not been fine-tuned yet" in section
    current = readme.mark_releases([dict(records[0], weight_sha256=REC.sha256)], [REC])
    section = cards.render_card(REC, finetune=current)
    assert "| **`gca_uot_resnet18_cifar10`** | 72.42 |" in section and "has not been fine-tuned" not in section


def test_every_shipped_fine_tuning_record_names_the_release_it_measured():
    root = readme.REPO_ROOT
    cfgs, superseded = readme.cfgs_from_root(root), readme.superseded_from_root(root)
    known = {c.sha256 for c in cfgs + superseded}
    for r in readme.mark_releases(readme.finetune_records(root), cfgs, superseded):
        assert r["release"] in (None, f"earlier release, {r.get('weight_epochs')} epochs"), r["source"]
        assert r["source"].startswith("random init (") or r["weight_sha256"] in known, r["source"]


def test_a_release_from_another_recipe_keeps_the_replaced_one_in_results_and_the_card(tmp_path):
    from tests.training.release.test_cards import with_recipe

    (tmp_path / "README.md").write_text(f"{readme.START}\n{readme.END}\n")
    cpu = WeightCfg.from_dict(dict(with_recipe(CFG["name"], "gca_uot", 67.24), sha256="c" * 64))
    gpu = WeightCfg.from_dict(dict(with_recipe(CFG["name"], "gca_uot", 88.5, epochs=64, batch_size=512),
                                   sha256="d" * 64))
    archive = tmp_path / readme.SUPERSEDED
    readme.write_cfg(tmp_path, cpu)
    readme.write_cfg(tmp_path, cpu.replace(metrics=dict(cpu.metrics, linear_top1=67.3)))  # same recipe: replaced
    assert not archive.exists()
    readme.write_cfg(tmp_path, gpu)
    assert [p.name for p in archive.iterdir()] == [f"{CFG['name']}.{recipes.recipe_id(cpu)}.json"]
    assert recipes.recipe_id(cpu) != recipes.recipe_id(gpu)
    readme.sync_generated(tmp_path)
    rows = list(csv.DictReader((tmp_path / "results" / "results-cifar10.csv").open()))
    assert [(r["status"], r["linear_top1"], r["recipe"]) for r in rows] == [
        ("released", "88.5", recipes.recipe_id(gpu)), ("superseded", "67.3", recipes.recipe_id(cpu))]
    card = (tmp_path / "model_cards" / f"{CFG['name']}.md").read_text()
    section = card[card.index("## Earlier releases of this name"):]
    assert f"| **this file** | `{recipes.recipe_id(gpu)}` |" in section and "| 88.50 |" in section
    assert f"| earlier, sha256 `{'c' * 12}` | `{recipes.recipe_id(cpu)}` |" in section and "| 67.30 |" in section
    assert readme.cfgs_from_root(tmp_path) == [gpu]  # only the release is registered
    readme.write_cfg(tmp_path, cpu)  # back to the first recipe: it is the release again, not also superseded
    assert [p.name for p in archive.iterdir()] == [f"{CFG['name']}.{recipes.recipe_id(gpu)}.json"]


def test_each_milestone_a_run_replaces_keeps_its_row_and_the_card_sets_them_side_by_side(tmp_path):
    from tests.training.release.test_cards import with_recipe

    (tmp_path / "README.md").write_text(f"{readme.START}\n{readme.END}\n")
    run = with_recipe(CFG["name"], "gca_uot", 0.0, epochs=200, batch_size=512)  # the campaign's schedule

    def milestone(epochs, linear, sha):
        schedule = {"schedule": {"epochs": 200, "steps": 19400}} if epochs < 200 else {}
        return WeightCfg.from_dict(dict(run, sha256=sha * 64, metrics=dict(run["metrics"], linear_top1=linear),
                                        budget=dict(CFG["budget"], epochs=epochs, **schedule)))

    m50, m100, m200 = milestone(50, 71.25, "5"), milestone(100, 80.5, "a"), milestone(200, 86.75, "2")
    archive, rid = tmp_path / readme.SUPERSEDED, recipes.recipe_id(m50)
    readme.write_cfg(tmp_path, m50)
    readme.write_cfg(tmp_path, m100)
    readme.write_cfg(tmp_path, m100.replace(metrics=dict(m100.metrics, linear_top1=80.75)))  # measured again
    assert [p.name for p in archive.iterdir()] == [f"{CFG['name']}.{rid}.e050.json"]
    readme.write_cfg(tmp_path, m200)
    assert sorted(p.name for p in archive.iterdir()) == [f"{CFG['name']}.{rid}.e050.json",
                                                         f"{CFG['name']}.{rid}.e100.json"]
    readme.sync_generated(tmp_path)
    rows = list(csv.DictReader((tmp_path / "results" / "results-cifar10.csv").open()))
    assert [(r["status"], r["epochs"], r["linear_top1"]) for r in rows] == [
        ("released", "200", "86.75"), ("superseded", "50", "71.25"), ("superseded", "100", "80.75")]
    card = (tmp_path / "model_cards" / f"{CFG['name']}.md").read_text()
    section = card[card.index("## Milestones of this run"):].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [line.split(" | ")[0] for line in table] == ["| 50 of 200", "| 100 of 200", "| 200"]
    assert "| 86.75 |" in table[2] and table[2].endswith("| **this file** |")
    assert "| 71.25 |" in table[0] and f"replaced, sha256 `{'5' * 12}`" in table[0]
    assert "## Earlier releases of this name" not in card  # one recipe: its milestones, not other recipes
    assert "| 50 of 200 |" in readme.render_table([m50])  # the README's table: where a milestone stands


def test_missing_markers_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "README.md").write_text("# no markers\n")
    assert readme.main(["--root", str(tmp_path)]) == 2
    assert readme.START in capsys.readouterr().err


def test_results_csv():
    rows = list(csv.DictReader(io.StringIO(readme.results_csv([REC]))))
    assert len(rows) == 1 and rows[0]["name"] == CFG["name"] and rows[0]["linear_top1"] == "84.5"
    assert rows[0]["wall_time_h"] == "2.0" and rows[0]["views_per_s"] == "416.7" and rows[0]["dataset_variant"] == "CIFAR-10 (JPEG q75 copy)"


def test_real_readme_is_up_to_date():
    real = readme.REPO_ROOT / "README.md"
    if not readme.has_markers(real):
        pytest.skip("README.md has no weights-table markers yet")
    assert readme.main(["--check"]) == 0, "run `python -m training readme`"


def test_repo_cfgs_are_the_registry():
    import otzoo

    names = [c.name for c in readme.cfgs_from_root(readme.REPO_ROOT)]
    assert set(names) <= set(otzoo.list_pretrained())


def test_readmes_fine_tuning_loop_runs_and_round_trips(tmp_path, monkeypatch):
    """The 'Fine-tune on your own data' loop, as printed, on a tiny ImageFolder tree (2 epochs)."""
    from tests.training.evaluate.test_commands import make_image_tree

    text = (readme.REPO_ROOT / "README.md").read_text()
    section = text[text.index("### Fine-tune on your own data"):]
    code = section[section.index("```python\n") + 10:section.index("\n```", section.index("```python\n"))]
    data = make_image_tree(tmp_path / "DATA", n_train=4, n_test=2)
    monkeypatch.chdir(tmp_path)
    scope = {"K": 4}
    exec(code.replace("range(10)", "range(2)"), scope)  # noqa: S102 - the README's own code
    model, test = scope["model"], scope["test"]
    assert model.num_classes == 4 and model.pretrained_cfg["label_names"] == ["c0", "c1", "c2", "c3"]
    import torch
    trained = scope["opt"].param_groups[0]["params"]
    assert all(torch.equal(a.float(), b) for a, b in zip(trained, model.parameters()))  # reloaded exactly
    assert len(test) == 8 and data.is_dir()
