"""Nothing shipped names a path of the machine that trained, exported or documented it."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*REPO.glob("otzoo/pretrained/*.json"), *REPO.glob("model_cards/*.md"),
                  *REPO.glob("weights/*/config.json"), *REPO.glob("results/*.csv"), *REPO.glob("results/*.md"), *REPO.glob("results/**/*.json"),
                  *REPO.glob("training/configs/*.yaml")])
# an absolute path (/root/..., /home/..., C:\...) or one that leaves the repository (../x)
MACHINE_PATH = re.compile(r"(?<![\w:/.~-])/[A-Za-z_][\w.-]*/[\w.-]+|\b[A-Z]:\\\\|(?<![\w.])\.\./[\w.-]+")


def test_the_pattern_catches_machine_paths_and_spares_prose():
    for bad in ('"output_dir": "/root/otzoo-runs/x"', "--data-dir ../shared/data/cifar10", "at /home/me/data"):
        assert MACHINE_PATH.search(bad), bad
    for ok in ("views/s", "https://huggingface.co/otzoo/x", "--data-dir DATA", "runs/cifar10_cpu_x", "1/2 of k/N"):
        assert not MACHINE_PATH.search(ok), ok


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(REPO)) for p in SHIPPED])
def test_no_machine_paths_in_shipped_files(path):
    hits = [(i + 1, m.group()) for i, line in enumerate(path.read_text().splitlines())
            for m in MACHINE_PATH.finditer(line)]
    assert not hits, f"{path.relative_to(REPO)} names paths of a machine (line, path): {hits[:5]}; ship " \
                     "repository-relative paths or placeholders (DATA, runs/...)"
