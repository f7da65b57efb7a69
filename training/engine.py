"""The pretraining loop: one code path for 1 CPU process and N torchrun/DDP processes.

``train(cfg, output_dir, ...)`` builds data, augmentation, method, optimizer and schedule
from a resolved config (``training.config``), trains for ``cfg["epochs"]`` epochs and writes
the run directory: ``config.yaml``, ``checkpoint.pt`` (every ``engine.checkpoint_minutes`` and
each epoch end, atomic), ``metrics.jsonl``, ``curves.png`` and, once complete,
``backbone.safetensors`` and ``run.json``. Only rank 0 writes.

Distributed: when ``WORLD_SIZE > 1`` the process group is initialised from the environment
(gloo on CPU, nccl on CUDA); each rank takes its slice of every global batch, augmentation
parameters are drawn for the whole global batch from a per-step seed (so results do not
depend on the number of processes), and the loss is built with ``gather_distributed=True``
(the loss gathers; nothing else does).
"""
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from otzoo.losses import NonFiniteInputError

from .augment import TwoViewAugment, normalize, slice_params
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import dump_config
from .data import EpochShuffler, load_images, shard
from .evaluate import knn_top1
from .methods import BYOLMethod, build_method

__all__ = ["train", "parse_duration", "NonFiniteLossError", "TimeBudgetReached",
           "setup_distributed", "resolve_precision", "build_optimizer", "warmup_cosine", "EXIT_TIME_BUDGET"]

EXIT_TIME_BUDGET = 3


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; training stopped without checkpointing that state."""


class TimeBudgetReached(Exception):
    pass


def parse_duration(text) -> Optional[float]:
    """'150m', '2h', '90s', '1h30m' or plain seconds -> seconds (None passes through)."""
    if text is None:
        return None
    s = str(text).strip().lower()
    try:
        return float(s)
    except ValueError:
        pass
    total, num = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    for ch in s:
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total, num = total + float(num) * units[ch], ""
        else:
            raise ValueError(f"cannot parse duration {text!r}; use e.g. 150m, 2h, 1h30m or 5400 (seconds)")
    if num:
        raise ValueError(f"duration {text!r} has a number without unit; use e.g. 150m, 2h or 90s")
    return total


# ---------------------------------------------------------------- setup

class DistInfo:
    def __init__(self, rank=0, world_size=1, local_rank=0, device=torch.device("cpu")):
        self.rank, self.world_size, self.local_rank, self.device = rank, world_size, local_rank, device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> DistInfo:
    """Init from torchrun's env vars when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return DistInfo(device=torch.device("cuda", 0) if cuda else torch.device("cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistInfo(rank, world, local, torch.device("cuda", local) if cuda else torch.device("cpu"))


def resolve_precision(name: str, device: torch.device) -> str:
    """auto -> bf16 on CUDA with bf16 or CPUs with AVX-512 bf16/AMX, fp16 on other CUDA, else fp32."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    cpu = torch.backends.cpu
    caps = getattr(cpu, "get_cpu_capability", lambda: "")()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return "bf16" if (amx or bf16 or caps == "AVX512_BF16") else "fp32"


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
    return f"{info.world_size}x {name}, {mode}"


def param_groups(model: nn.Module, weight_decay: float):
    """Weights (ndim > 1) get weight decay; biases and norm parameters do not (nor LARS adaptation)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, o: dict, batch_size: int) -> torch.optim.Optimizer:
    lr = o["lr"] * batch_size / o["lr_batch"]
    groups = param_groups(model, o["weight_decay"])
    if o["name"] == "lars":
        from timm.optim import Lars  # skips trust-ratio adaptation where weight_decay == 0

        return Lars(groups, lr=lr, momentum=o["momentum"], nesterov=o["nesterov"], trust_coeff=o["trust_coeff"])
    return torch.optim.SGD(groups, lr=lr, momentum=o["momentum"], nesterov=o["nesterov"])


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """LR multiplier: linear warmup from 0 over warmup_steps, then cosine to min_ratio."""
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


# ---------------------------------------------------------------- monitoring

@torch.no_grad()
def _features(backbone, images, mean, std, device, autocast, batch=512):
    feats = []
    for i in range(0, len(images), batch):
        x = normalize(images[i:i + batch].float().div_(255.0), mean, std).to(device)
        with autocast():
            feats.append(backbone(x).float().cpu())
    return torch.nn.functional.normalize(torch.cat(feats), dim=1)


def plot_curves(records, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in records if r.get("event") == "step"]
    knn = [r for r in records if r.get("event") == "epoch" and r.get("knn_top1") is not None]
    fig, axes = plt.subplots(1, 3 if knn else 2, figsize=(13 if knn else 9, 3.2))
    axes[0].plot([r["step"] for r in steps], [r["loss"] for r in steps])
    axes[0].set(xlabel="step", ylabel="loss", title="training loss")
    axes[1].plot([r["step"] for r in steps], [r["lr"] for r in steps])
    axes[1].set(xlabel="step", ylabel="lr", title="learning rate")
    if knn:
        axes[2].plot([r["epoch"] for r in knn], [r["knn_top1"] for r in knn], marker="o")
        axes[2].set(xlabel="epoch", ylabel="top-1 (%)", title="kNN monitor (subset)")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)


# ---------------------------------------------------------------- training

def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed % (1 << 20)) * (1 << 40) + step)


def train(cfg: dict, output_dir, *, resume: bool = False, time_budget_s: Optional[float] = None,
          command: Optional[str] = None) -> int:
    """Run (or resume) pretraining; returns 0 when complete, EXIT_TIME_BUDGET when stopped by the budget.

    Raises :class:`NonFiniteLossError` when the loss is NaN/inf (no checkpoint of that state).
    """
    session_start = time.time()
    info = setup_distributed()
    out = Path(output_dir)
    e, o = cfg["engine"], cfg["optim"]
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    if e["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if info.device.type == "cuda":
            torch.backends.cudnn.benchmark = False
    elif info.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if e["threads"]:
        torch.set_num_threads(int(e["threads"]))
    precision = resolve_precision(e["precision"], info.device)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def autocast():
        return torch.autocast(info.device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    # data
    d = cfg["data"]
    data = load_images(cfg["dataset"], "train", d["dir"], d["subset"], d["decode_size"], d["cache_dir"])
    global_batch = int(cfg["batch_size"])
    shard(global_batch, info.rank, info.world_size)  # validates divisibility
    shuffler = EpochShuffler(len(data), global_batch, seed)
    spe, epochs = shuffler.steps_per_epoch, int(cfg["epochs"])
    total_steps = spe * epochs
    aug = TwoViewAugment.from_config(cfg["aug"], d["mean"], d["std"])
    height, width = data.images.shape[-2:]

    # model, optimizer, schedule
    method = build_method(cfg, gather_distributed=info.world_size > 1).to(info.device)
    if cfg["model"]["sync_bn"] and info.world_size > 1 and info.device.type == "cuda":
        method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
    memory_format = torch.channels_last if e["channels_last"] else torch.contiguous_format
    method = method.to(memory_format=memory_format)
    optimizer = build_optimizer(method, o, global_batch)
    warmup_steps = int(round(o["warmup_epochs"] * spe))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, total_steps, o["min_lr_ratio"]))
    scaler = torch.amp.GradScaler(info.device.type, enabled=precision == "fp16")

    ckpt_path = out / "checkpoint.pt"
    metrics_path = out / "metrics.jsonl"
    step, wall_prev, records = 0, 0.0, []
    if resume:
        state = load_checkpoint(ckpt_path)
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        shuffler.load_state_dict(state["data"])
        set_rng_state(state["rng"])
        step, wall_prev = int(state["step"]), float(state["wall_time_s"])
        command = state.get("command") or command
        if info.main and metrics_path.is_file():  # drop records written after the checkpoint
            records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
            records = [r for r in records if r.get("step", 0) <= step]
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
        with open(metrics_path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    metrics_file = open(metrics_path, "a") if info.main else None

    net = method
    if info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(method, device_ids=[info.local_rank] if info.device.type == "cuda" else None)
    if e["compile"]:  # in place (state-dict keys unchanged); the loss stays eager
        for name in ("backbone", "projector", "predictor", "target_backbone", "target_projector"):
            if hasattr(method, name):
                getattr(method, name).compile()

    knn_data = None

    def log(record):
        records.append(record)
        if metrics_file is not None:
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()

    def checkpoint(last_loss):
        if not info.main:
            return
        save_checkpoint({
            "format": 1, "model": method.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "data": shuffler.state_dict(),
            "rng": rng_state(), "step": step, "wall_time_s": wall_prev + time.time() - session_start,
            "config": cfg, "command": command, "last_loss": last_loss,
        }, ckpt_path)

    def run_knn():
        nonlocal knn_data
        if knn_data is None:
            idx = torch.linspace(0, len(data) - 1, min(e["knn_train"], len(data))).round().long()
            test = load_images(cfg["dataset"], "test", d["dir"], e["knn_test"], d["decode_size"], d["cache_dir"])
            knn_data = (data.images[idx], data.labels[idx], test.images, test.labels)
        bank, bank_y, test_x, test_y = knn_data
        method.eval()
        fb = _features(method.backbone, bank, d["mean"], d["std"], info.device, autocast)
        ft = _features(method.backbone, test_x, d["mean"], d["std"], info.device, autocast)
        method.train()
        return knn_top1(fb, bank_y, ft, test_y, e["knn_k"], e["knn_t"])

    def out_of_time() -> bool:
        if time_budget_s is None:
            return False
        stop = torch.tensor([float(time.time() - session_start >= time_budget_s)], device=info.device)
        if info.world_size > 1:  # rank 0's clock decides, so every rank stops at the same step
            dist.broadcast(stop, src=0)
        return stop.item() > 0

    from tqdm.auto import tqdm

    method.train()
    start_epoch = shuffler.epoch
    if shuffler.position >= spe:
        start_epoch, shuffler.epoch, shuffler.position = shuffler.epoch + 1, shuffler.epoch + 1, 0
    last_ckpt = time.time()
    last_loss = float("nan")
    views_per_step = 2 * global_batch
    status = 0
    for epoch in range(start_epoch, epochs):
        bar = tqdm(total=spe, initial=shuffler.position, desc=f"epoch {epoch + 1}/{epochs}", unit="step",
                   disable=not (info.main and e["progress"]), dynamic_ncols=True, mininterval=1.0, file=sys.stderr)
        epoch_losses, t_log, s_log = [], time.time(), step
        while shuffler.position < spe:
            idx = shuffler.next_batch()
            params = aug.sample(global_batch, height, width, _step_generator(seed, step))
            lo, hi = shard(global_batch, info.rank, info.world_size)
            v1, v2 = aug.apply(data.images[idx[lo:hi]], slice_params(params, lo, hi))
            v1 = v1.to(info.device, non_blocking=True).contiguous(memory_format=memory_format)
            v2 = v2.to(info.device, non_blocking=True).contiguous(memory_format=memory_format)
            why = ""
            try:
                with autocast():
                    loss, _ = net(v1, v2)
                value = float(loss.detach())
            except NonFiniteInputError:  # the embeddings themselves are NaN/inf: the model diverged
                value, why = float("nan"), " (the model's embeddings are NaN/inf)"
            if not math.isfinite(value):
                bar.close()
                if metrics_file is not None:
                    metrics_file.close()
                good = f"the last good checkpoint is {ckpt_path}" if ckpt_path.is_file() else "no checkpoint was written yet"
                raise NonFiniteLossError(
                    f"loss is {value}{why} at step {step} (epoch {epoch + 1}, batch {shuffler.position}/{spe}) with "
                    f"method {cfg['method']!r}; stopped without saving this state ({good}). Lower optim.lr, add "
                    f"warmup (optim.warmup_epochs) or use engine.precision=fp32, then resume or restart.")
            lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            if isinstance(method, BYOLMethod):
                method.update_target(step, total_steps)
            last_loss = value
            epoch_losses.append(value)
            bar.update(1)
            if step % e["log_every"] == 0 or shuffler.position == spe:
                now = time.time()
                vps = views_per_step * (step - s_log) / max(now - t_log, 1e-9)
                t_log, s_log = now, step
                eta = (total_steps - step) * views_per_step / max(vps, 1e-9)
                log({"event": "step", "step": step, "epoch": epoch + 1, "loss": value, "lr": lr,
                     "views_per_s": round(vps, 1), "elapsed_s": round(wall_prev + now - session_start, 1)})
                bar.set_postfix(loss=f"{value:.4f}", views_s=f"{vps:.0f}", lr=f"{lr:.3g}",
                                eta=time.strftime("%H:%M:%S", time.gmtime(eta)), refresh=False)
            if shuffler.position < spe and time.time() - last_ckpt >= 60.0 * e["checkpoint_minutes"]:
                checkpoint(last_loss)
                last_ckpt = time.time()
            if shuffler.position < spe and out_of_time():
                checkpoint(last_loss)
                status = EXIT_TIME_BUDGET
                break
        bar.close()
        if status:
            break
        shuffler.epoch, shuffler.position = epoch + 1, 0
        record = {"event": "epoch", "step": step, "epoch": epoch + 1,
                  "loss": float(np.mean(epoch_losses)) if epoch_losses else None,
                  "elapsed_s": round(wall_prev + time.time() - session_start, 1)}
        if e["knn_every"] and (epoch + 1) % e["knn_every"] == 0 and info.main:
            record["knn_top1"] = round(run_knn(), 2)
        log(record)
        checkpoint(last_loss)
        last_ckpt = time.time()
        if info.main:
            plot_curves(records, out / "curves.png")
            print(f"epoch {epoch + 1}/{epochs}: loss {record['loss']:.4f}"
                  + (f", kNN top-1 {record['knn_top1']:.2f}%" if "knn_top1" in record else ""), file=sys.stderr)
        if epoch + 1 < epochs and out_of_time():
            status = EXIT_TIME_BUDGET
            break

    if metrics_file is not None:
        metrics_file.close()
    if status == EXIT_TIME_BUDGET:
        if info.main:
            plot_curves(records, out / "curves.png")
            print(f"time budget reached after step {step}/{total_steps}; state saved to {ckpt_path}. "
                  "Continue with the same command plus --resume.", file=sys.stderr)
    elif info.main:
        _finish(cfg, out, method, info, precision, step, global_batch, wall_prev + time.time() - session_start,
                command, last_loss, data.source)
    if info.world_size > 1:
        dist.barrier()
    return status


def _finish(cfg, out: Path, method, info, precision, step, global_batch, wall, command, last_loss, source):
    import otzoo
    from safetensors.torch import save_file

    sd = {k: (v.detach().float() if v.is_floating_point() else v.detach()).contiguous().cpu()
          for k, v in method.backbone.state_dict().items()}
    tmp = out / "backbone.safetensors.tmp"
    save_file(sd, str(tmp), metadata={"arch": cfg["arch"], "method": cfg["method"], "format": "pt"})
    os.replace(tmp, out / "backbone.safetensors")
    d = cfg["data"]
    variant = d["variant"] or (f"ImageFolder at {source.rsplit('/', 1)[0]}" if not source.startswith(("torchvision:", "synthetic"))
                               else source.split("/")[0])
    run = {
        "method": cfg["method"], "arch": cfg["arch"], "dataset": cfg["dataset"],
        "data_dir": str(Path(source).parent) if not source.startswith(("torchvision:", "synthetic")) else None,
        "data_variant": variant, "epochs": cfg["epochs"], "steps": step, "views_seen": 2 * global_batch * step,
        "batch_size": global_batch, "world_size": info.world_size, "seed": cfg["seed"],
        "wall_time_s": round(wall, 1), "hardware": hardware_string(info, precision),
        "otzoo_version": otzoo.__version__, "torch_version": torch.__version__, "command": command,
        "config": cfg, "final_loss": last_loss,
    }
    tmp = out / "run.json.tmp"
    tmp.write_text(json.dumps(run, indent=2) + "\n")
    os.replace(tmp, out / "run.json")
