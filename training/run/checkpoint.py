"""Atomic training checkpoints: ``save_checkpoint`` (tmp file + fsync + rename) and
``load_checkpoint`` (``torch.load(weights_only=True)``).

A crash or ``kill -9`` while saving leaves at most a stray ``*.tmp`` file; the previous
checkpoint stays intact because it is only ever replaced by ``os.replace``. ``run_lock`` keeps a
second process out of a run folder while one writes it.
"""
import contextlib
import os
import random
import socket
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "run_lock", "RunLocked"]


def save_checkpoint(state: Dict[str, Any], path) -> Path:
    """Write ``state`` to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def load_checkpoint(path, map_location="cpu") -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain types only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}; start without --resume or point "
                                "--output-dir at the run to continue")
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> Dict[str, Any]:
    """torch (CPU and CUDA), python and numpy RNG states, in weights_only-loadable types."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RunLocked(RuntimeError):
    """Another live process holds the run folder."""


@contextlib.contextmanager
def run_lock(folder):
    """Hold ``<folder>/run.lock`` (this process's pid and this boot of the machine) while a run writes ``folder``: a
    second process is refused with :class:`RunLocked` naming the holder; a lock left by a process that is gone
    (``kill -9``, a session or machine that ended) is taken over."""
    path = Path(folder) / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            holder = _live_holder(path)
            if holder:
                raise RunLocked(f"{str(folder)!r} is in use by {holder} (its run.lock): one run per output folder. "
                                "Wait for it or stop it (SIGTERM saves its state); if no such process runs, delete "
                                f"{path}") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
    else:
        raise RunLocked(f"could not take {path}: another process took it at the same moment")
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()} {_boot_id()}\n")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _boot_id() -> str:
    """This boot of this machine (Linux's boot_id; the host name elsewhere): pids are only comparable within it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return socket.gethostname()


def _live_holder(path: Path) -> str:
    """``"process PID"`` when the lock's process still runs, else ``""`` (gone, or from another boot)."""
    try:
        pid_text, boot = path.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return ""  # empty or half-written: its writer died before finishing the line
    if boot != _boot_id():
        return ""  # written before this machine (re)started: its process is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ""
    except PermissionError:
        pass
    return f"process {pid}"
