import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR10 = REPO_ROOT.parent / "shared" / "data" / "cifar10"
SHARED_IMAGENETTE = REPO_ROOT.parent / "shared" / "data" / "imagenette"


def pytest_configure(config):
    """Under pytest-xdist (``-n N``) each worker takes its share of the cores, and so do its subprocesses: N
    workers each running torch on every core would oversubscribe them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))


@pytest.fixture
def cifar10_dir() -> Path:
    """The CIFAR-10 ImageFolder root ($OTZOO_DATA, else ../shared/data/cifar10); skips if absent."""
    env = os.environ.get("OTZOO_DATA")
    path = Path(env) if env else SHARED_CIFAR10
    if not (path / "train").is_dir() or not (path / "test").is_dir():
        pytest.skip(f"CIFAR-10 ImageFolder tree not found at {path} (set $OTZOO_DATA)")
    return path


@pytest.fixture
def imagenette_dir() -> Path:
    """The Imagenette ImageFolder root (train/ + val/) beside the repo (../shared/data/imagenette); skips if absent."""
    if not (SHARED_IMAGENETTE / "train").is_dir() or not (SHARED_IMAGENETTE / "val").is_dir():
        pytest.skip(f"Imagenette ImageFolder tree not found at {SHARED_IMAGENETTE}")
    return SHARED_IMAGENETTE


@pytest.fixture
def cuda_device() -> torch.device:
    """The first CUDA GPU; skips when torch sees none (tests marked ``cuda``)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch sees none)")
    return torch.device("cuda", 0)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Seed every test, and undo any torch.set_num_threads a test (or the engine) made."""
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
