"""training.run.device: a CPU step's freed tensors stay in the process for the next step."""
import ctypes
import subprocess
import sys

import pytest
import torch

from training.run import engine
from training.run.config import load_config

GLIBC = hasattr(ctypes.CDLL(None), "gnu_get_libc_version")

# a 64 MiB tensor (over glibc's largest mmap threshold, as a CPU step's activations are) made and freed five
# times after ten (the heap settles in a few: a step's pattern repeats thousands of times); prints the minor page
# faults of those five
FAULTS = """
import resource, sys, torch
from training.run.device import reuse_freed_memory
if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
for _ in range(10):
    torch.ones(16 * 2 ** 20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.ones(16 * 2 ** 20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_tensors_are_reused_instead_of_faulted_in_again():
    faults = {mode: int(subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "reuse")}
    pages = 5 * 64 * 2 ** 20 // 4096
    assert faults["default"] > 0.9 * pages  # every tensor on fresh pages, zeroed by the kernel
    assert faults["reuse"] < 0.01 * pages


@pytest.mark.parametrize("device, setting, applied", [("cpu", True, True), ("cpu", False, False),
                                                      ("cuda", True, False)])
def test_the_engine_reuses_memory_on_the_cpu_unless_the_recipe_says_not_to(monkeypatch, device, setting, applied):
    calls = []
    monkeypatch.setattr(engine, "reuse_freed_memory", lambda: calls.append(1))
    e = load_config(None, [f"engine.reuse_memory={str(setting).lower()}"])["engine"]
    engine._configure_backends(e, torch.device(device))
    assert bool(calls) == applied


@pytest.mark.parametrize("command, applied", [("knn", True), ("export", True), ("readme", False),
                                              ("pretrain", False)])  # pretrain: its recipe's engine.reuse_memory
def test_the_feature_pass_commands_reuse_memory(monkeypatch, command, applied):
    from training import __main__ as cli
    from training.run import device

    calls = []
    monkeypatch.setattr(device, "reuse_freed_memory", lambda: calls.append(1))
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert bool(calls) == applied
