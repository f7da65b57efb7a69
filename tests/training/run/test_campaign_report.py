"""training.run.campaign_report: the campaign's page, written from its progress lines alone."""
import json

import pytest

from training.run import progress
from training.run.campaign_report import method_report
from training.run.progress import write_report


def line(steps, epoch, lost=0, knn=(), wall=3600.0, **stretch):
    return {"recorded_at": "2026-12-06T23:05:05Z", "run": "long_gca_uot", "method": "gca_uot",
            "arch": "resnet18_cifar", "dataset": "cifar10", "batch_size": 512, "epochs": 200, "step": steps[1],
            "epoch": epoch, "stretch": {"steps": list(steps), "wall_time_s": wall, "views_per_s": 100.0,
                                        "hardware": "1x CPU AMD EPYC (2 cores), bf16 autocast", **stretch},
            "knn": [{"epoch": e, "knn_top1": t} for e, t in knn], "lost_steps": lost}


def test_a_method_says_where_it_stands_what_it_cost_and_what_was_lost():
    lines = [line((0, 1870), 19, knn=[(10, 49.6), (15, 54.7)]), line((0, 1000), 10, lost=1870, wall=1800.0),
             line((1000, 1210), 12, mean_views_per_s=99.5)]
    text = method_report("gca_uot", lines, milestone=50)
    assert text.startswith("## gca_uot: epoch 12 of 200 (step 1,210)")
    assert "Next milestone: epoch 50" in text and "Stretches: 3, 2.5 h of training in all" in text
    assert "1,870 steps (~19 epochs, 1 run lost at epoch 19)" in text  # at the lowest step/epoch ratio (1,870 / 19)
    assert "furthest reached: epoch 19 (step 1,870)" in text
    assert "2 runs lost at epochs 19, 10)" in method_report("gca_uot", [*lines[:2], line((0, 500), 5, lost=1000)], 50)
    rows = [r for r in text.splitlines() if r.startswith("| 2026")]
    assert len(rows) == 3 and "epoch 10: 49.6%, epoch 15: 54.7%" in rows[0]
    assert "| 100.0 / - |" in rows[0] and "| 100.0 / 99.5 |" in rows[2]  # an older line has no mean
    assert "| 1,870 |" in rows[1] and "| 30 min |" in rows[1]


def test_the_next_milestone_says_how_far_it_is_at_the_last_stretchs_rate():
    old, new = line((0, 1870), 19), dict(line((1000, 1210), 12), steps_per_epoch=97)
    assert ("To it: 3,640 steps, ~10.4 h of training at the last stretch's 100.0 views/s (1x CPU AMD EPYC "
            "(2 cores), bf16 autocast).") in method_report("gca_uot", [old, new], milestone=50)  # 50 x 97 - 1,210 at 1,024 views
    # older lines lack steps_per_epoch: the lowest step/epoch ratio of the lines stands in (1,870 / 19)
    assert "To it: 3,712 steps, ~10.6 h" in method_report("gca_uot", [old, line((1000, 1210), 12)], 50)
    assert "To it" not in method_report("gca_uot", [line((1000, 1210), 12, views_per_s=None)], 50)


def test_the_page_has_a_section_per_progress_file_and_the_cli_writes_it(tmp_path, capsys):
    for method in ("simclr", "gca_uot"):
        (tmp_path / f"{method}.jsonl").write_text(json.dumps(line((0, 97), 1)) + "\n")
    assert progress.main(["--report", str(tmp_path)]) == 0
    page = (tmp_path / "README.md").read_text()
    assert page.index("## gca_uot") < page.index("## simclr") and "README.md" in capsys.readouterr().out
    every = progress.MILESTONE_EVERY  # the campaign's milestones, the page's default
    assert f"every {every} epochs." in page and f"Next milestone: epoch {every}." in page
    assert write_report(tmp_path) == tmp_path / "README.md" and not list(tmp_path.glob("*.tmp"))


def test_a_folder_without_progress_files_is_refused_with_what_to_do(tmp_path, capsys):
    assert progress.main(["--report", str(tmp_path)]) == 2
    assert "progress --run RUN" in capsys.readouterr().err and not (tmp_path / "README.md").exists()
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing")


def test_the_monitors_reference_points_follow_the_methods_and_are_not_read_as_a_method(tmp_path):
    (tmp_path / "gca_uot.jsonl").write_text(json.dumps(line((0, 97), 1)) + "\n")
    reference = {"name": "gca_uot_resnet18_cifar10", "epochs": 16, "schedule_epochs": 16, "batch_size": 256,
                 "monitor_knn_top1": 51.2, "release_knn_top1": 58.38, "num_train": 5000, "num_test": 1000, "k": 200,
                 "measured_at": "2026-12-07T03:30:00Z", "hardware": "1x CPU AMD EPYC (2 cores), fp32"}
    (tmp_path / progress.REFERENCES).write_text(json.dumps({reference["name"]: reference}))
    page = write_report(tmp_path).read_text()
    assert "## Reference points for the monitor" in page and page.index("## gca_uot") < page.index("## Reference")
    assert ("| `gca_uot_resnet18_cifar10` | 16 of 16, batch 256 | 51.20% | 58.38% | 5,000 / 1,000, k=200 | "
            "2026-12-07, 1x CPU AMD EPYC (2 cores), fp32 |") in page
    assert page.count("\n## ") == 2  # gca_uot and the references: references.json is no method
