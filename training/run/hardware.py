"""How the hardware a run trained on is named and recorded: one span per machine a run's steps ran on."""
import os
import platform
import re

import torch

from .distributed import DistInfo

__all__ = ["hardware_string", "tidy_hardware", "add_hardware_span", "describe_hardware"]


def hardware_string(info: DistInfo, precision: str) -> str:
    if info.device.type == "cuda":
        name = torch.cuda.get_device_name(info.device)
    else:
        name = platform.processor() or "CPU"
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        name = f"CPU {name} ({os.cpu_count()} cores)"
    mode = {"bf16": "bf16 autocast", "fp16": "fp16 AMP", "fp32": "fp32"}[precision]
    return tidy_hardware(f"{info.world_size}x {name}, {mode}")


def tidy_hardware(name: str | None) -> str | None:
    """``name`` without trademark marks and the word "Processor" ("Intel(R) Xeon(R) Processor" -> "Intel Xeon"):
    how hardware is recorded, and compared between the sessions of one run."""
    if name is None:
        return None
    return " ".join(re.sub(r"\((?:R|TM)\)|\bProcessor\b", " ", name, flags=re.IGNORECASE).split()).replace(" ,", ",")


def add_hardware_span(spans: list, hardware: str, steps: tuple, wall_time_s: float) -> list:
    """``spans`` (``{"hardware", "steps": [first, last], "wall_time_s"}`` dicts) plus this session's; merged into
    the last span when it ran on the same hardware up to this session's first step. A run resumed on other
    machines keeps every machine it trained on (``engine.precision: auto`` may differ between them)."""
    spans, hardware = [dict(s, hardware=tidy_hardware(s["hardware"])) for s in spans], tidy_hardware(hardware)
    last = spans[-1] if spans else None
    if last is not None and last["hardware"] == hardware and last["steps"][1] == steps[0]:
        last["steps"], last["wall_time_s"] = [last["steps"][0], steps[1]], last["wall_time_s"] + wall_time_s
    elif steps[1] > steps[0] or not spans:
        spans.append({"hardware": hardware, "steps": list(steps), "wall_time_s": wall_time_s})
    return spans


def describe_hardware(spans: list) -> str:
    """One span: its hardware; several: each with its steps (``None``: a checkpoint that did not record it).
    A span that trained no step (a run stopped during its setup) is left out when others trained."""
    spans = [s for s in spans if s["steps"][1] > s["steps"][0]] or spans
    names = [s["hardware"] or "hardware not recorded" for s in spans]
    if len(set(names)) == 1:
        return names[0]
    return "; ".join(f"{n} (steps {s['steps'][0]}-{s['steps'][1]})" for n, s in zip(names, spans))
