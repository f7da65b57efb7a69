"""Streaming vs in-memory input (``data.stream``): training views/s, and peak memory as the data grows.

1. ``speed``: ``python -m training pretrain`` on an ImageFolder tree (default: Imagenette at 128 px with
   ``imagenette_cpu.yaml``), in memory and streamed with ``--workers`` decoding processes, alternated
   ``--rounds`` times in one run; views/s is the median of the step records after the first ``--skip`` (warm-up,
   compile, the workers' start). Target: streamed >= 0.9x in memory with 2 workers.
2. ``memory``: peak memory (PSS, the run's process and its workers summed, sampled every 0.1 s; also each
   part's own peak) of a short run on synthetic trees of small JPEGs of growing size (default 25,000 and
   100,000 images, made once under ``--tree-dir``), both modes, at each ``--memory-batch`` (the step's
   activations grow with the batch, not with the images). Target: streamed flat in the number of images
   and under 2 GB.
3. ``decode``: images/s one core decodes as a streamed run does (PIL, then the shorter side resized to
   ``decode_size`` and center-cropped), on the Imagenette copy's JPEGs and on synthetic ImageNet-sized ones
   (``--full-size``, quality 90; ILSVRC-2012's average is about 400x350): how many cores a GPU's rate needs.

    python benchmarks/stream.py speed --data-dir ../shared/data/imagenette
    python benchmarks/stream.py memory --tree-dir /tmp/otzoo_jpeg_trees
    python benchmarks/stream.py decode --data-dir ../shared/data/imagenette
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def own_pss(pid: int) -> int:
    """PSS of one process (its shared pages split among the processes sharing them)."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    return sum(int(line.split()[1]) * 1024 for line in lines if line.startswith("Pss:"))


def children(pid: int) -> list:
    try:
        return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []


def pss_bytes(pid: int) -> tuple:
    """(PSS of ``pid``, PSS of its descendants summed): the run's process and its decoding workers."""
    descendants = sum(sum(pss_bytes(c)) for c in children(pid))
    return own_pss(pid), descendants


def run_pretrain(recipe: str, overrides: list, env: dict) -> tuple:
    """(step records, peak PSS in bytes of the whole tree, of the main process, of the workers) of one
    ``python -m training pretrain`` run."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "training", "pretrain", "--config", recipe, *overrides, "engine.progress=false",
               "engine.knn_every=0", "engine.checkpoint_minutes=1000", "--output-dir", str(Path(tmp) / "run")]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak, done = [0, 0, 0], threading.Event()

        def sample():
            while not done.is_set():
                main, workers = pss_bytes(proc.pid)
                peak[:] = max(peak[0], main + workers), max(peak[1], main), max(peak[2], workers)
                time.sleep(0.1)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        err = proc.communicate()[1].decode()
        done.set()
        sampler.join()
        if proc.returncode not in (0, 3):
            raise RuntimeError(f"pretrain exited {proc.returncode}: {err[-2000:]}")
        lines = (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == "step"], *peak


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def speed(args) -> dict:
    """views/s of each mode, the rounds alternated so a slower spell of the machine hits both."""
    base = [f"data.dir={args.data_dir}", f"batch_size={args.batch}", f"data.subset={args.batch * args.steps}",
            "epochs=1", f"engine.log_every={args.log_every}", f"engine.compile={args.compile}"]
    modes = {"in memory": ["data.stream=false"],
             f"streamed, {args.workers} workers": ["data.stream=true", f"data.workers={args.workers}"]}
    rates = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode, extra in modes.items():
            records = run_pretrain(args.recipe, base + extra, _env())[0]
            rates[mode] += [r["views_per_s"] for r in records[args.skip:]]
            print(f"{mode}: {statistics.median(rates[mode]):.1f} views/s so far", file=sys.stderr)
    medians = {m: statistics.median(r) for m, r in rates.items()}
    streamed, memory = medians[list(modes)[1]], medians["in memory"]
    return {"views_per_s": medians, "records": {m: len(r) for m, r in rates.items()},
            "streamed_over_in_memory": round(streamed / memory, 3)}


def make_tree(root: Path, n: int, side: int = 32, classes: int = 10) -> Path:
    """``n`` random JPEGs (``side`` px, quality 75) in ``classes`` folders under ``root/train`` (and 100 under
    ``root/test``), made once: an existing complete tree is reused."""
    import numpy as np
    from PIL import Image

    done = root / f".complete-{n}"
    if done.is_file():
        return root
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("test", 100)):
        for i in range(count):
            folder = root / split / f"c{i % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            low = rng.integers(0, 256, (side // 4, side // 4, 3), dtype=np.uint8)
            Image.fromarray(low).resize((side, side), Image.BILINEAR).save(folder / f"{i:07d}.jpg", quality=75)
    done.touch()
    return root


def memory(args) -> dict:
    """Peak PSS of a short run of each mode on trees of each size, at each batch size (the training step's
    activations grow with the batch, the input pipeline's memory with the images if it is not bounded)."""
    out = {}
    for n, batch in ((n, b) for n in args.images for b in args.memory_batch):
        tree = make_tree(Path(args.tree_dir) / f"jpeg{n}", n)
        for mode, extra in (("in memory", ["data.stream=false"]),
                            ("streamed", ["data.stream=true", f"data.workers={args.workers}"])):
            overrides = [f"data.dir={tree}", "dataset=folder", f"batch_size={batch}", "epochs=1",
                         f"engine.log_every={args.memory_steps}", "engine.compile=false", *extra]
            t = time.time()
            records, total, main, workers = run_pretrain(
                args.memory_recipe, overrides + ["--time-budget", str(args.memory_seconds)], _env())
            key = f"{mode}, {n} images, batch {batch}"
            out[key] = {"peak_pss_mib": round(total / 2**20), "main_process_mib": round(main / 2**20),
                        "workers_mib": round(workers / 2**20), "wall_s": round(time.time() - t, 1),
                        "steps": records[-1]["step"] if records else 0}
            print(f"{key}: {out[key]}", file=sys.stderr)
    return out


def _decode_rate(paths, size: int, seconds: float = 10.0) -> float:
    """Images/s of one thread decoding ``paths`` (cycled) at ``size`` as the streamed and in-memory paths do."""
    from training.run.data import _to_array
    from training.run.datasets import checked_loader

    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _to_array(checked_loader(str(paths[count % len(paths)])), size)
        count += 1
    return count / (time.perf_counter() - start)


def decode(args) -> dict:
    """One core's decoding rate of the Imagenette copy at 128 and 160 px, and of ImageNet-sized JPEGs."""
    import numpy as np
    from PIL import Image

    real = sorted(Path(args.data_dir, "train").rglob("*.JPEG"))[:: 40][:200] or sorted(
        Path(args.data_dir, "train").rglob("*.jp*g"))[:: 40][:200]
    w, h = args.full_size
    rng, folder = np.random.default_rng(0), Path(tempfile.mkdtemp())
    synthetic = []
    for i in range(50):
        low = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
        noisy = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC), dtype=np.int16)
        noisy = np.clip(noisy + rng.normal(0, 12, noisy.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{i}.jpg", quality=90)
        synthetic.append(folder / f"{i}.jpg")
    out = {f"{w}x{h} JPEG q90 (synthetic), mean {sum(p.stat().st_size for p in synthetic) // 50 // 1024} KiB":
           {f"{size} px": round(_decode_rate(synthetic, size), 1) for size in (160, 224)}}
    if real:
        out[f"{Path(args.data_dir).name} train JPEGs (every 40th)"] = {f"{size} px": round(_decode_rate(real, size), 1)
                                                     for size in (128, 160)}
    return {"images_per_s_one_core": out}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("speed", "memory", "decode"))
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "imagenette"))
    p.add_argument("--recipe", default="training/configs/imagenette_cpu.yaml")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=24, help="steps per speed run")
    p.add_argument("--log-every", type=int, default=2)
    p.add_argument("--skip", type=int, default=2, help="step records dropped at the start of each run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--compile", default="true")
    p.add_argument("--tree-dir", default=str(Path(tempfile.gettempdir()) / "otzoo_jpeg_trees"))
    p.add_argument("--images", type=int, nargs="+", default=[25_000, 100_000])
    p.add_argument("--memory-recipe", default="training/configs/cifar10_cpu.yaml")
    p.add_argument("--memory-batch", type=int, nargs="+", default=[64, 256], help="batch sizes of the memory runs")
    p.add_argument("--memory-steps", type=int, default=1, help="log interval of a memory run")
    p.add_argument("--full-size", type=int, nargs=2, default=[500, 375], help="synthetic JPEGs' width, height")
    p.add_argument("--memory-seconds", type=float, default=60.0, help="time budget of a memory run (setup included)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    import platform

    args = parse_args(argv)
    result = {"speed": speed, "memory": memory, "decode": decode}[args.what](args)
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    print(json.dumps({"what": args.what, "cpu": cpu, "cores": os.cpu_count(), **result}, indent=2))


if __name__ == "__main__":
    main()
