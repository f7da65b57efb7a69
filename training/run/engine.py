"""The pretraining loop: one code path for a CPU, a CUDA GPU and N torchrun/DDP processes.

``train(cfg, output_dir, ...)`` runs a :class:`Trainer`: setup (device, data, augmentation,
method, optimizer, schedule, restored state), one training step at a time, checkpoints and
the stops (the time budget, ``stop_after_epoch``, SIGTERM or Ctrl-C), the end of each epoch,
and the run's artifacts. It writes the run directory: ``config.yaml``, ``checkpoint.pt`` (every
``engine.checkpoint_minutes`` and each epoch end, atomic), ``metrics.jsonl``, ``curves.png``
and, once complete, ``backbone.safetensors`` and ``run.json``. Only rank 0 writes.

Device: ``engine.device`` (auto | cpu | cuda | cuda:N). The decoded uint8 images live on
that device and are augmented there, batched; only the small per-step augmentation
parameters (drawn on the host from the per-step seed) travel. A split too large to hold
decoded (``data.stream``, :mod:`training.run.stream`) streams instead: each step's images are
decoded ahead of it by DataLoader workers, the same pixels in the same order, then travel
(pinned on CUDA) and are augmented on the device the same way. A step never reads a value
back from the device: the loss and a finiteness flag stay there and are checked every
``engine.log_every`` steps, at checkpoints and at epoch ends (a non-finite loss stops the
run naming its step; no checkpoint of that state is written). The time budget is read from
the host clock; a SIGTERM or SIGINT (Ctrl-C) stops the run the same way after the step in progress
(checkpoint, exit status 3; under DDP rank 0 decides, at log steps); a second one exits at once (status
143 / 130) with the last checkpoint left as it was. On CUDA: TF32 matmuls,
cudnn.benchmark, channels_last, bf16 autocast, ``torch.compile`` of fixed-shape batches
(the last ragged batch is dropped; the kNN monitor runs the uncompiled modules).

Distributed: when ``WORLD_SIZE > 1`` the process group is initialised from the environment
(gloo on CPU, nccl on CUDA); each rank takes its slice of every global batch, augmentation
parameters are drawn for the whole global batch from a per-step seed (so results do not
depend on the number of processes), and the loss is built with ``gather_distributed=True``
(the loss gathers; nothing else does).
"""
import contextlib
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .augment import TwoViewAugment, slice_params
from .checkpoint import load_checkpoint, rng_state, run_lock, save_checkpoint, set_rng_state
from .config import dump_config
from .data import DataError, EpochShuffler, error_line, load_images, shard
from .device import autocast, resolve_precision, reuse_freed_memory
from .distributed import setup_distributed
from .from_release import apply_release
from .hardware import add_hardware_span, describe_hardware, hardware_string
from .methods import build_method
from .metrics import plot_curves
from .monitor import effective_rank, knn_top1, monitor_features
from .optim import build_optimizer, warmup_cosine
from .stream import BatchStream, StreamedImages, default_workers, open_train_images

__all__ = ["train", "Trainer", "NonFiniteLossError", "EXIT_TIME_BUDGET", "seed_everything"]

EXIT_TIME_BUDGET = 3
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # both stop after the step in progress, state saved


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; training stopped without checkpointing that state."""


# ---------------------------------------------------------------- training

def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed % (1 << 20)) * (1 << 40) + step)


def _utc_ms(t: float) -> str:
    """UTC time to the millisecond: a session's identity (two tiny runs can start in the same second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (1 << 32))


def _configure_backends(e: dict, device: torch.device) -> None:
    if e["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not e["deterministic"]
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside autocast (losses)
        torch.backends.cudnn.allow_tf32 = True
    if e["threads"]:
        torch.set_num_threads(int(e["threads"]))
    if e["reuse_memory"] and device.type == "cpu":
        reuse_freed_memory()


class Trainer:
    """One pretraining run; :meth:`run` returns 0 when complete, EXIT_TIME_BUDGET when stopped (time
    budget, ``stop_after_epoch``, SIGTERM or SIGINT; state saved).

    Parts, in the order :meth:`run` uses them: setup (``__init__``: device, data, model,
    optimizer, restored state), :meth:`train_step` (no host sync), :meth:`log_step`,
    :meth:`checkpoint` / :meth:`should_stop`, :meth:`end_epoch`, :meth:`write_artifacts`.
    Raises :class:`NonFiniteLossError` when the loss is NaN/inf (no checkpoint of that state).
    """

    def __init__(self, cfg: dict, output_dir, *, resume: bool = False, time_budget_s: Optional[float] = None,
                 command: Optional[str] = None, stop_after_epoch: Optional[int] = None, init=None,
                 resume_from=None, milestone_every: Optional[int] = None):
        self.session_start = time.time()
        self.restarts = []  # continuations from a release: {"from", "step", "rewarmup_steps"}
        self.cfg, self.out, self.time_budget_s, self.command = cfg, Path(output_dir), time_budget_s, command
        self.stop_after_epoch, self.milestone_every = stop_after_epoch, milestone_every
        self.e, self.seed = cfg["engine"], int(cfg["seed"])
        self.info = setup_distributed(self.e["device"])
        self.device = self.info.device
        seed_everything(self.seed)
        _configure_backends(self.e, self.device)
        self.precision = resolve_precision(self.e["precision"], self.device)
        self._setup_data()
        self._setup_model()
        self.init = init.record(apply_release(self.method, init)) if init is not None else None
        self.step, self.wall_prev, self.records, self.past_hardware = 0, 0.0, [], []
        self.epoch_loss = (0.0, 0)  # (sum, steps) of the epoch in progress; a mid-epoch resume continues it
        if resume:
            self._restore()
        elif resume_from is not None:
            self._continue_from(resume_from)
        self.hardware, self.first_step = hardware_string(self.info, self.precision), self.step
        self._open_metrics()
        self.log({"event": "session", "step": self.step, "resumed": resume, "hardware": self.hardware,
                  "started_at": _utc_ms(self.session_start),
                  "elapsed_s": round(self.wall_prev, 1)})
        self._reset_trackers()
        self.knn_data, self.lr = None, self.optimizer.param_groups[0]["lr"]
        self.curves_title = f"{self.out.name}: {cfg['method']}, {cfg['arch']}, {cfg['dataset']}"
        self.t_log, self.s_log, self.last_ckpt = time.time(), self.step, time.time()
        self.terminated = False

    # ------------------------------------------------------------ setup
    def autocast(self):
        return autocast(self.device, self.precision)

    def _setup_data(self) -> None:
        cfg, d = self.cfg, self.cfg["data"]
        local_procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        self.data = open_train_images(cfg["dataset"], d, self.device, local_procs)
        self.global_batch = int(cfg["batch_size"])
        self.local_slice = shard(self.global_batch, self.info.rank, self.info.world_size)
        self.shuffler = EpochShuffler(len(self.data), self.global_batch, self.seed)
        self.stream = None
        if isinstance(self.data.images, StreamedImages):  # each step's images decoded ahead of it by workers
            workers = d["workers"] if d["workers"] is not None else default_workers(local_procs)
            self.stream = BatchStream(self.data.images, self.shuffler, self.local_slice, workers,
                                      pin=self.device.type == "cuda")
        else:
            self.images = self.data.images.to(self.device)  # uint8; augmented on the device
        self.spe, self.epochs = self.shuffler.steps_per_epoch, int(cfg["epochs"])
        self.total_steps = self.spe * self.epochs
        self.aug = TwoViewAugment.from_config(cfg["aug"], d["mean"], d["std"])
        self.height, self.width = self.data.images.shape[-2:]

    def _setup_model(self) -> None:
        cfg, e, o, info = self.cfg, self.e, self.cfg["optim"], self.info
        method = build_method(cfg, gather_distributed=info.world_size > 1).to(self.device)
        method.loss_fn.check_finite = False  # the step's finiteness flag replaces the loss's host-side check
        if cfg["model"]["sync_bn"] and info.world_size > 1 and self.device.type == "cuda":
            method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
        self.memory_format = torch.channels_last if e["channels_last"] else torch.contiguous_format
        self.method = method.to(memory_format=self.memory_format)
        self.optimizer = build_optimizer(self.method, o, self.global_batch)
        warmup = int(round(o["warmup_epochs"] * self.spe))
        self.schedule = warmup_cosine(warmup, self.total_steps, o["min_lr_ratio"])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.net = self.method
        if info.world_size > 1:
            ids = [info.local_rank] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.method, device_ids=ids)
        if e["compile"]:  # in place (state-dict keys unchanged); the loss stays eager
            for name in self.method.compiled_parts:
                getattr(self.method, name).compile()

    def lr_factor(self, step: int) -> float:
        """The recipe's schedule, times a linear re-warmup after each continuation from a release (the optimizer's
        momentum starts again from zero there)."""
        factor = self.schedule(step)
        for r in self.restarts:
            if r["step"] <= step < r["step"] + r["rewarmup_steps"]:
                factor *= (step - r["step"] + 1) / r["rewarmup_steps"]
        return factor

    def _continue_from(self, state) -> None:
        """Continue the run that produced release ``state`` at its recorded step: its backbone and heads (the fp16
        release's values as fp32 masters), the data order and augmentation as if never stopped (both follow the
        step), the schedule at that step, the optimizer's momentum rebuilt from zero under a one-epoch linear
        re-warmup; recorded as a restart."""
        apply_release(self.method, state, heads_required=True)
        budget = state.cfg.get("budget") or {}
        self.step, self.wall_prev = int(budget["steps"]), float(budget.get("wall_time_s") or 0.0)
        self.shuffler.epoch, self.shuffler.position = divmod(self.step, self.spe)
        self.past_hardware = budget.get("hardware_spans") or [
            {"hardware": budget.get("hardware"), "steps": [0, self.step], "wall_time_s": self.wall_prev}]
        self.restarts.append({"from": state.name, "sha256": state.cfg["sha256"], "step": self.step,
                              "rewarmup_steps": self.spe})
        self.scheduler.last_epoch = self.step
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * self.lr_factor(self.step)
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def _restore(self) -> None:
        state = load_checkpoint(self.out / "checkpoint.pt")
        self.method.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.shuffler.load_state_dict(state["data"])
        set_rng_state(state["rng"])
        self.step, self.wall_prev = int(state["step"]), float(state["wall_time_s"])
        self.epoch_loss = tuple(state.get("epoch_loss") or (0.0, 0))  # older checkpoints: from the resume on
        self.init, self.restarts[:] = state.get("init"), state.get("restarts") or []
        unrecorded = [{"hardware": None, "steps": [0, self.step], "wall_time_s": self.wall_prev}]
        self.past_hardware = state.get("hardware_spans") or (unrecorded if self.step else [])
        self.command = state.get("command") or self.command
        metrics = self.out / "metrics.jsonl"
        if self.info.main and metrics.is_file():  # drop records written after the checkpoint
            records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            self.records = [r for r in records if r.get("step", 0) <= self.step]

    def _open_metrics(self) -> None:
        self.metrics_file = None
        if self.info.main:
            self.out.mkdir(parents=True, exist_ok=True)
            dump_config(self.cfg, self.out / "config.yaml")
            with open(self.out / "metrics.jsonl", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in self.records)
            self.metrics_file = open(self.out / "metrics.jsonl", "a")

    def _reset_trackers(self) -> None:
        """Device-side running values: loss sum of the epoch, last loss, first non-finite step."""
        zero = torch.zeros((), device=self.device)
        self.loss_sum, self.loss_count, self.last_loss = zero + self.epoch_loss[0], self.epoch_loss[1], zero.clone()
        self.bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self.bad_value, self.bad_embedding = zero.clone(), torch.zeros((), dtype=torch.bool, device=self.device)

    # ------------------------------------------------------------ one step
    def train_step(self) -> None:
        """One optimizer step on the next global batch; reads nothing back from the device."""
        state = (self.shuffler.epoch, self.shuffler.position)
        idx = self.shuffler.next_batch()
        params = self.aug.sample(self.global_batch, self.height, self.width, _step_generator(self.seed, self.step))
        lo, hi = self.local_slice
        x = self.batch_images(idx[lo:hi], state)
        v1, v2 = (v.contiguous(memory_format=self.memory_format)
                  for v in self.aug.apply(x, slice_params(params, lo, hi)))
        with self.autocast():
            loss, out = self.net(v1, v2)
        self._track(loss.detach(), out)
        self.lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self.method.after_step(self.step, self.total_steps)

    def batch_images(self, idx: torch.Tensor, state) -> torch.Tensor:
        """This rank's images ``idx`` (uint8, on the device), of the batch the shuffler gave from ``state``.
        A streamed image that cannot be decoded puts the shuffler back at ``state`` (the step did not happen) and
        raises :class:`DataError`."""
        if self.stream is None:
            return self.images[idx.to(self.device, non_blocking=True)]
        try:
            return self.stream.take(idx, state).to(self.device, non_blocking=True)
        except DataError:
            self.shuffler.epoch, self.shuffler.position = state
            raise

    def _track(self, loss: torch.Tensor, out: dict) -> None:
        embedding_ok = torch.isfinite(out["z1"]).all() & torch.isfinite(out["z2"]).all()
        fresh = ~(torch.isfinite(loss) & embedding_ok) & (self.bad_step < 0)
        self.bad_step = torch.where(fresh, self.step, self.bad_step)
        self.bad_value = torch.where(fresh, loss.float(), self.bad_value)
        self.bad_embedding = torch.where(fresh, ~embedding_ok, self.bad_embedding)
        self.loss_sum += loss.float()
        self.loss_count += 1
        self.last_loss = loss.float()

    def raise_if_nonfinite(self) -> None:
        """Host sync: raise :class:`NonFiniteLossError` naming the first non-finite step."""
        bad = int(self.bad_step)
        if bad < 0:
            return
        if self.metrics_file is not None:
            self.metrics_file.close()
        why = " (the model's embeddings are NaN/inf)" if bool(self.bad_embedding) else ""
        ckpt = self.out / "checkpoint.pt"
        good = f"the last good checkpoint is {ckpt}" if ckpt.is_file() else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"loss is {float(self.bad_value)}{why} at step {bad} (epoch {bad // self.spe + 1}, batch "
            f"{bad % self.spe + 1}/{self.spe}) with method {self.cfg['method']!r}; stopped without saving this "
            f"state ({good}). Lower optim.lr, add warmup (optim.warmup_epochs) or use engine.precision=fp32, "
            "then resume or restart.")

    # ------------------------------------------------------------ logging, checkpoints, time budget
    def elapsed(self) -> float:
        return self.wall_prev + time.time() - self.session_start

    def hardware_spans(self) -> list:
        """Where the run's steps ran so far: the restored spans plus this session's."""
        return add_hardware_span(self.past_hardware, self.hardware, (self.first_step, self.step),
                                 time.time() - self.session_start)

    def log(self, record: dict) -> None:
        self.records.append(record)
        if self.metrics_file is not None:
            self.metrics_file.write(json.dumps(record) + "\n")
            self.metrics_file.flush()

    def log_step(self, epoch: int, bar) -> None:
        """Host sync every ``log_every`` steps: finiteness check, then a metrics record."""
        self.raise_if_nonfinite()
        now = time.time()
        vps = 2 * self.global_batch * (self.step - self.s_log) / max(now - self.t_log, 1e-9)
        self.t_log, self.s_log = now, self.step
        value = float(self.last_loss)
        self.log({"event": "step", "step": self.step, "epoch": epoch + 1, "loss": value, "lr": self.lr,
                  "views_per_s": round(vps, 1), "elapsed_s": round(self.elapsed(), 1)})
        eta = (self.total_steps - self.step) * 2 * self.global_batch / max(vps, 1e-9)
        bar.set_postfix(loss=f"{value:.4f}", views_s=f"{vps:.0f}", lr=f"{self.lr:.3g}",
                        eta=time.strftime("%H:%M:%S", time.gmtime(eta)), refresh=False)

    def checkpoint(self) -> None:
        self.raise_if_nonfinite()
        self.last_ckpt = time.time()
        if not self.info.main:
            return
        save_checkpoint({
            "format": 1, "model": self.method.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "data": self.shuffler.state_dict(), "rng": rng_state(), "step": self.step,
            "wall_time_s": self.elapsed(), "config": self.cfg, "command": self.command,
            "last_loss": float(self.last_loss), "hardware_spans": self.hardware_spans(),
            "epoch_loss": [float(self.loss_sum), self.loss_count], "init": self.init, "restarts": self.restarts,
        }, self.out / "checkpoint.pt")

    def _save_before_data_error(self) -> str:
        """Rank 0 saves the step an undecodable image stopped; another rank cannot (its peers are inside the step's
        collectives, which torchrun ends when this rank exits), so the run continues from its last checkpoint."""
        if self.info.world_size > 1 and not self.info.main:
            return f"Rank {self.info.rank} stopped at step {self.step}; the run's last checkpoint is kept"
        self.checkpoint()
        return f"The run's state is saved at step {self.step}"

    def should_stop(self) -> bool:
        """Time budget (host clock) spent or SIGTERM received; under DDP rank 0's decision is broadcast
        so every rank stops at one step."""
        budget = self.time_budget_s
        stop = bool(self.terminated) or (budget is not None and time.time() - self.session_start >= budget)
        if self.info.world_size > 1:
            flag = torch.tensor([float(stop)], device=self.device)
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    def at_stop_epoch(self) -> bool:
        """The run has completed the epoch it was asked to stop after (``--stop-after-epoch``)."""
        return self.stop_after_epoch is not None and self.shuffler.epoch >= self.stop_after_epoch

    def passing_milestone(self) -> bool:
        """An epoch end ``--milestone-every`` asks to keep as a milestone folder on the way (the stop's own
        epoch is written by :meth:`run`)."""
        every = self.milestone_every
        return bool(every) and self.info.main and self.shuffler.epoch % every == 0 and not self.at_stop_epoch()

    # ------------------------------------------------------------ end of epoch
    def knn_monitor(self) -> dict:
        """kNN top-1 on a subset and the effective rank of its test features, through the uncompiled
        backbone (no recompiles, any batch size), at the size the views are (``aug.size``)."""
        cfg, d, e = self.cfg, self.cfg["data"], self.e
        if self.knn_data is None:
            idx = torch.linspace(0, len(self.data) - 1, min(e["knn_train"], len(self.data))).round().long()
            test = load_images(cfg["dataset"], "test", d["dir"], e["knn_test"], d["decode_size"], d["cache_dir"])
            self.knn_data = (self.data.images[idx], self.data.labels[idx], test.images, test.labels)
        bank, bank_y, test_x, test_y = self.knn_data
        backbone = self.method.backbone
        backbone.eval()
        try:
            fb, ft = (monitor_features(backbone.forward, x, d["mean"], d["std"], self.device, self.autocast,
                                       size=cfg["aug"]["size"]) for x in (bank, test_x))
        finally:
            backbone.train()
        return {"knn_top1": round(knn_top1(fb, bank_y, ft, test_y, e["knn_k"], e["knn_t"]), 2),
                "feature_rank": round(effective_rank(ft), 1)}

    def end_epoch(self, epoch: int) -> None:
        self.raise_if_nonfinite()
        self.shuffler.epoch, self.shuffler.position = epoch + 1, 0
        mean_loss = float(self.loss_sum) / self.loss_count if self.loss_count else None
        self.loss_sum.zero_()
        self.loss_count = 0
        record = {"event": "epoch", "step": self.step, "epoch": epoch + 1, "loss": mean_loss,
                  "elapsed_s": round(self.elapsed(), 1)}
        if self.e["knn_every"] and (epoch + 1) % self.e["knn_every"] == 0 and self.info.main:
            t = time.time()
            record.update(self.knn_monitor())
            record["knn_s"] = round(time.time() - t, 2)
        self.log(record)
        self.checkpoint()
        if self.info.main:
            plot_curves(self.records, self.out / "curves.png", self.curves_title)
            print(f"epoch {epoch + 1}/{self.epochs}: loss {record['loss']:.4f}"
                  + (f", kNN top-1 {record['knn_top1']:.2f}%, feature rank {record['feature_rank']:.1f}"
                     if "knn_top1" in record else ""), file=sys.stderr)

    # ------------------------------------------------------------ the loop
    def _on_stop_signal(self, signum, frame) -> None:
        """SIGTERM (a scheduler, ``kill``) or SIGINT (Ctrl-C): stop after the step in progress, state saved; a
        second one leaves at once (the step in progress may hang), the last complete checkpoint untouched."""
        name = signal.Signals(signum).name
        if self.terminated:
            last = self.out / "checkpoint.pt"
            left = (f"the last checkpoint stays ({last}, --resume continues from it)" if last.is_file() else
                    "no checkpoint was written yet: start again without --resume")
            print(f"second {name} after step {self.step}: stopping now; {left}.", file=sys.stderr)
            raise SystemExit(128 + signum)
        self.terminated = name

    def run(self) -> int:
        main_thread = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self._on_stop_signal) for s in STOP_SIGNALS} if main_thread else {}
        try:
            status = self._loop()
        except DataError as err:  # a streamed image: state saved at the step that needs it, which --resume retries
            raise DataError(f"{error_line(err)}. {self._save_before_data_error()}: with the file replaced, --resume "
                            "continues there (removing it changes the data: a new run)") from None
        finally:
            if self.stream is not None:
                self.stream.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
            if self.metrics_file is not None and not self.metrics_file.closed:
                self.metrics_file.close()
        if status == EXIT_TIME_BUDGET and self.info.main:
            plot_curves(self.records, self.out / "curves.png", self.curves_title)
            milestone = self.at_stop_epoch() and self.shuffler.position == 0 and not self.terminated
            why = (f"{self.terminated} received" if self.terminated else f"epoch {self.stop_after_epoch} reached"
                   if milestone else "time budget reached")
            print(f"{why} after step {self.step}/{self.total_steps}; state saved to "
                  f"{self.out / 'checkpoint.pt'}. Continue with the same command plus --resume.", file=sys.stderr)
            if milestone:
                print(f"milestone written to {self.write_milestone()} (export it with "
                      "`python -m training export --run <that folder>`)", file=sys.stderr)
        elif status == 0 and self.info.main:
            self.write_artifacts()
        if self.info.world_size > 1:
            dist.barrier()
        return status

    def _loop(self) -> int:
        from tqdm.auto import tqdm

        sh, spe, e = self.shuffler, self.spe, self.e
        self.method.train()
        if sh.position >= spe:
            sh.epoch, sh.position = sh.epoch + 1, 0
        if self.at_stop_epoch() and sh.epoch < self.epochs:
            return EXIT_TIME_BUDGET
        for epoch in range(sh.epoch, self.epochs):
            self.t_log, self.s_log = time.time(), self.step
            with tqdm(total=spe, initial=sh.position, desc=f"epoch {epoch + 1}/{self.epochs}", unit="step",
                      disable=not (self.info.main and e["progress"]), dynamic_ncols=True, mininterval=1.0,
                      file=sys.stderr) as bar:
                while sh.position < spe:
                    self.train_step()
                    bar.update(1)
                    logged = self.step % e["log_every"] == 0 or sh.position == spe
                    if logged:
                        self.log_step(epoch, bar)
                    if sh.position == spe:
                        break
                    if time.time() - self.last_ckpt >= 60.0 * e["checkpoint_minutes"]:
                        self.checkpoint()
                    if (logged or self.info.world_size == 1) and self.should_stop():
                        self.checkpoint()
                        return EXIT_TIME_BUDGET
            self.end_epoch(epoch)
            if epoch + 1 < self.epochs and self.passing_milestone():
                print(f"milestone written to {self.write_milestone()}; the run goes on", file=sys.stderr)
            if epoch + 1 < self.epochs and (self.should_stop() or self.at_stop_epoch()):
                return EXIT_TIME_BUDGET
        return 0

    # ------------------------------------------------------------ artifacts
    def write_artifacts(self, folder: Optional[Path] = None) -> None:
        """``backbone.safetensors`` (fp32), ``heads.safetensors`` (what pretraining needs besides the backbone:
        projector; BYOL's predictor and target) and ``run.json`` of a complete run in its folder, or of a
        milestone in ``folder``."""
        folder = folder or self.out
        folder.mkdir(parents=True, exist_ok=True)
        state = self.method.state_dict()
        backbone = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        heads = {k: v for k, v in state.items() if not k.startswith("backbone.")}
        meta = {"arch": self.cfg["arch"], "method": self.cfg["method"], "format": "pt"}
        for name, tensors in (("backbone", backbone), ("heads", heads)):
            _save_tensors(tensors, folder / f"{name}.safetensors", meta)
        tmp = folder / "run.json.tmp"
        tmp.write_text(json.dumps(self.run_record(milestone=folder != self.out), indent=2) + "\n")
        os.replace(tmp, folder / "run.json")

    def run_record(self, milestone: bool = False) -> dict:
        """What ``run.json`` says of the run: recipe, budget reached, where and how long it trained."""
        import otzoo

        cfg, info, source = self.cfg, self.info, self.data.source
        local = not source.startswith(("torchvision:", "synthetic"))
        variant = cfg["data"]["variant"] or (f"ImageFolder {Path(source).parent.name}/" if local
                                             else source.split("/")[0])
        spans = [dict(s, wall_time_s=round(s["wall_time_s"], 1)) for s in self.hardware_spans()]
        record = {
            "method": cfg["method"], "arch": cfg["arch"], "dataset": cfg["dataset"],
            "data_dir": str(Path(source).parent) if local else None,
            "data_variant": variant, "epochs": self.shuffler.epoch if milestone else cfg["epochs"],
            "steps": self.step, "views_seen": 2 * self.global_batch * self.step, "batch_size": self.global_batch,
            "world_size": info.world_size, "seed": cfg["seed"], "wall_time_s": round(self.elapsed(), 1),
            "hardware": describe_hardware(spans), "hardware_spans": spans, "otzoo_version": otzoo.__version__,
            "torch_version": torch.__version__, "command": self.command, "config": cfg,
            "final_loss": float(self.last_loss),
        }
        if self.init:  # started from a released weight (pretrain --init)
            record["init"] = self.init
        if self.restarts:  # continued from a release on another machine (pretrain --resume-from)
            record["restarts"] = self.restarts
        if milestone:  # a point inside a longer schedule: where it stands
            record["schedule"] = {"epochs": cfg["epochs"], "steps": self.total_steps}
        return record

    def write_milestone(self) -> Path:
        """``<run>/milestone-<epoch>/``: the run at ``--stop-after-epoch`` as a folder ``export`` reads like a
        finished run (weights, heads, run.json, the run's config, metrics and curves, and a model-only
        ``checkpoint.pt`` for the plan figure); the run itself continues with ``--resume``."""
        import shutil

        folder = self.out / f"milestone-{self.shuffler.epoch:03d}"
        self.write_artifacts(folder)
        for name in ("config.yaml", "metrics.jsonl", "curves.png"):
            if (self.out / name).is_file():
                shutil.copy2(self.out / name, folder / name)
        save_checkpoint({"format": 1, "model": self.method.state_dict(), "config": self.cfg, "step": self.step},
                        folder / "checkpoint.pt")
        return folder


def _save_tensors(tensors: dict, path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    sd = {k: (v.detach().float() if v.is_floating_point() else v.detach()).contiguous().cpu()
          for k, v in tensors.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(sd, str(tmp), metadata=meta)
    os.replace(tmp, path)


def train(cfg: dict, output_dir, *, resume: bool = False, time_budget_s: Optional[float] = None,
          command: Optional[str] = None, stop_after_epoch: Optional[int] = None, init=None,
          resume_from=None, milestone_every: Optional[int] = None) -> int:
    """Run (or resume) pretraining; returns 0 when complete, EXIT_TIME_BUDGET when stopped by the budget,
    a SIGTERM or the end of epoch ``stop_after_epoch`` (state saved). ``init``: a
    :class:`~training.run.from_release.ReleaseState` whose backbone (and heads) a new run starts from;
    ``resume_from``: one whose run this continues at its recorded step; ``milestone_every``: also keep the run
    at every such epoch's end as ``<run>/milestone-<epoch>/`` and go on (what a budget stop leaves to export).

    Raises :class:`NonFiniteLossError` when the loss is NaN/inf (no checkpoint of that state), and
    :class:`~training.run.checkpoint.RunLocked` when another live process holds ``output_dir``.
    """
    lock = run_lock(output_dir) if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext()
    with lock:  # before the Trainer touches the folder: a second process is refused (RunLocked)
        return Trainer(cfg, output_dir, resume=resume, time_budget_s=time_budget_s, command=command,
                       stop_after_epoch=stop_after_epoch, init=init, resume_from=resume_from,
                       milestone_every=milestone_every).run()
