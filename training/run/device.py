"""Where training and evaluation run: device names and mixed precision, one place for both.

``resolve_device("auto")`` is the GPU when torch sees one, else the CPU;
``resolve_precision("auto", device)`` is bf16 where it is fast (CUDA GPUs with bf16, CPUs
with AVX-512 bf16 or AMX), fp16 AMP on other GPUs, and fp32 elsewhere: on a CPU without
bf16 units, bf16 autocast is emulated and many times slower than fp32.
``reuse_freed_memory()`` keeps a CPU step's freed tensors in the process for the next step.
"""
import contextlib
import ctypes

import torch

__all__ = ["resolve_device", "resolve_precision", "autocast", "reuse_freed_memory", "DEVICE_CHOICES", "PRECISIONS"]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> the GPU when there is one, else the CPU; ``cuda`` -> ``cuda:<local_rank>``."""
    name = str(name or "auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not (name == "cpu" or name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ValueError(f"unknown device {name!r}; use {DEVICE_CHOICES}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but torch sees no CUDA GPU (torch {torch.__version__}); "
                         "use device cpu, or install a CUDA build of torch")
    return torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)


def _cpu_has_bf16() -> bool:
    caps = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return bool(amx or bf16 or caps == "AVX512_BF16")


def resolve_precision(name: str, device: torch.device) -> str:
    """auto -> bf16 on CUDA with bf16 or CPUs with AVX-512 bf16/AMX, fp16 on other CUDA, else fp32."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; use one of {PRECISIONS}")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if _cpu_has_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context of a resolved precision (a null context for fp32)."""
    dtype = _AMP_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's malloc.h


def reuse_freed_memory() -> bool:
    """glibc's malloc serves every block from its heap and never gives freed memory back (``mallopt``:
    ``M_MMAP_MAX`` 0, ``M_TRIM_THRESHOLD`` -1), for the rest of the process. By default a block over its mmap
    threshold (at most 32 MiB, and a CPU step's activations are larger) is mapped fresh and unmapped when freed,
    so that every step touches new pages: the kernel faults and zeroes them. False where there is no glibc
    (macOS, musl: nothing changes)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, -1))
