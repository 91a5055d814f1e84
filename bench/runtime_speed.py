"""The torch-free runtime against a PyTorch-eager script on the same weights; prints one JSON object.

    python bench/runtime_speed.py RUN_DIR [--artifact artifacts/NAME] [--rounds 5] [--repeats 3]

RUN_DIR is a train-gan run; it is exported to a temporary artifact unless --artifact names its
export. Each side runs in its own process (no thread pools shared between torch and onnxruntime),
and the two sides alternate round by round, so that on a shared machine both see the same load;
ratios are taken per round and the median is reported.

- cold start: wall time from process start to a 100-image grid PNG written and the process gone
  (`gan-runtime sample --n 100` vs a script that imports torch, loads the checkpoint, generates,
  writes the PNG), with the peak RSS of those processes (and of `gan-runtime sample --n 10000 --npy`);
- throughput at batch 1, 64, 256, 1024: images/s of `GanModel.generate` (numpy noise, generator graph,
  uint8) vs the eager generator doing the same (numpy noise, G, uint8), and vs eager G + critic +
  DRS head (the work the exported generator graph does); best of --repeats within a round;
- DRS at a 20 % target: time for 4,096 images with DRS over the time without (default batch).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

BATCH_SIZES = (1, 64, 256, 1024)  # 256: the runtime's default
IMAGES_PER_TIMING = {1: 256, 64: 4096, 256: 8192, 1024: 8192}
DRS_IMAGES = 4096
REPO = Path(__file__).resolve().parents[1]

EAGER_COLD_START = """
import sys
from pathlib import Path
import torch
from common.images import grid_png, unit_to_uint8
from training.run import load_trained
run = load_trained(Path(sys.argv[1]))
with torch.inference_mode():
    eps = torch.randn(100, run.cfg.latent_dim)
    labels = torch.arange(100) % max(run.generator.prior.num_labels, 1)
    images = (run.generator(eps, labels) + 1) / 2
Path(sys.argv[2]).write_bytes(grid_png(unit_to_uint8(images[:, 0].numpy()), rows=10))
"""


def timed_process(command: list[str]) -> tuple[float, float]:
    """(wall seconds from start to exit, peak RSS in MB) of one process."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)  # wait4: the rusage of this child alone
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{command[:3]} failed: {errors.read().decode()[-500:]}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KB


def _seconds(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def best_rate(work, images: int, repeats: int) -> float:
    work()  # warm-up: sessions, allocations, lazy initialisation
    return images / min(_seconds(work) for _ in range(repeats))


def runtime_worker(artifact: Path, repeats: int) -> dict:
    from common.manifest import read_manifest
    from runtime.model import GanModel

    model = GanModel(read_manifest(artifact), "cpu")
    rates = {
        b: best_rate(
            lambda b=b: model.generate(IMAGES_PER_TIMING[b], seed=0, batch_size=b), IMAGES_PER_TIMING[b], repeats
        )
        for b in BATCH_SIZES
    }
    ratios, achieved = [], []
    for seed in range(repeats):  # plain and DRS alternate, so each ratio compares like moments
        plain = _seconds(lambda seed=seed: model.generate(DRS_IMAGES, seed=seed))
        started = time.perf_counter()
        _, stats = model.generate(DRS_IMAGES, seed=seed, drs_rate=0.2)
        ratios.append((time.perf_counter() - started) / plain)
        achieved.append(stats.acceptance_rate)
    return {"images_per_s": rates, "drs_cost": statistics.median(ratios), "drs_achieved": statistics.median(achieved)}


def eager_worker(run_dir: Path, artifact: Path, repeats: int) -> dict:
    import numpy as np
    import torch

    from common.images import unit_to_uint8
    from common.manifest import read_manifest
    from export.drs import ScoreHead
    from export.graphs import DrsF
    from training.run import load_trained

    run = load_trained(run_dir)
    generator, critic = run.generator, run.critic
    calibration = read_manifest(artifact).drs
    # The run's own critic with a score head: what any head costs to within its small MLP (a features head's 256x64).
    head = ScoreHead(calibration.scale or 1.0, calibration.bias or 0.0)
    drs = DrsF(calibration.max_logit, calibration.epsilon)
    labels_count = max(generator.prior.num_labels, 1)

    def generate(n: int, batch: int, with_head: bool) -> None:
        rng = np.random.default_rng(0)
        eps = rng.standard_normal((n, run.cfg.latent_dim), dtype=np.float32)
        labels = rng.integers(0, labels_count, n)
        with torch.inference_mode():
            for start in range(0, n, batch):
                z, y = torch.from_numpy(eps[start : start + batch]), torch.from_numpy(labels[start : start + batch])
                image = generator(z, y)
                if with_head:  # what the exported generator graph also computes: D~ and F
                    drs(head(critic, image, y), cap=True)
                unit_to_uint8(((image + 1) / 2)[:, 0].numpy())

    return {
        name: {
            b: best_rate(lambda b=b, h=with_head: generate(IMAGES_PER_TIMING[b], b, h), IMAGES_PER_TIMING[b], repeats)
            for b in BATCH_SIZES
        }
        for name, with_head in (("eager_generator", False), ("eager_generator_and_head", True))
    }


def worker(side: str, run_dir: Path, artifact: Path, repeats: int) -> dict:
    command = [
        sys.executable,
        __file__,
        str(run_dir),
        "--artifact",
        str(artifact),
        "--worker",
        side,
        "--repeats",
        str(repeats),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{side} worker failed: {result.stderr[-1000:]}")
    return json.loads(result.stdout)


def median_of(rounds: list[dict], *keys) -> float:
    values = []
    for entry in rounds:
        for key in keys:
            entry = entry[key]
        values.append(entry)
    return statistics.median(values)


def compare(run_dir: Path, artifact: Path, scratch: Path, rounds: int, repeats: int) -> dict:
    png = scratch / "grid.png"
    sample = [
        str(Path(sys.executable).with_name("gan-runtime")),
        "sample",
        "--model",
        str(artifact),
        "--seed",
        "0",
        "--device",
        "cpu",
    ]
    cold_commands = {
        "runtime": [*sample, "--n", "100", "--out", str(png)],
        "eager": [sys.executable, "-c", EAGER_COLD_START, str(run_dir), str(png)],
    }
    cold = {side: [] for side in cold_commands}
    speed = []
    for _ in range(rounds):
        for side, command in cold_commands.items():
            cold[side].append(timed_process(command))
        runtime = worker("runtime", run_dir, artifact, repeats)
        eager = worker("eager", run_dir, artifact, repeats)
        speed.append({**runtime, **eager})
    _, rss_10k = timed_process([*sample, "--n", "10000", "--npy", str(scratch / "x.npy")])

    sides = ("runtime", "eager_generator", "eager_generator_and_head")
    per_round_ratio = {
        baseline: {
            b: statistics.median(r["images_per_s"][str(b)] / r[baseline][str(b)] for r in speed) for b in BATCH_SIZES
        }
        for baseline in sides[1:]
    }
    return {
        "cold_start_to_png_s": {
            side: {"median": statistics.median(s for s, _ in runs), "best": min(s for s, _ in runs)}
            for side, runs in cold.items()
        }
        | {"target": 0.5},
        "peak_rss_mb": {
            "runtime_sample_100": max(m for _, m in cold["runtime"]),
            "runtime_sample_10000_npy": rss_10k,
            "eager_sample_100": max(m for _, m in cold["eager"]),
            "target": 150,
        },
        "throughput_images_per_s_median": {
            side: {b: median_of(speed, "images_per_s" if side == "runtime" else side, str(b)) for b in BATCH_SIZES}
            for side in sides
        },
        "runtime_speedup_median_of_rounds": {f"vs_{baseline}": ratios for baseline, ratios in per_round_ratio.items()}
        | {"target_at_1024": 1.5},
        "drs_at_20_percent": {
            "cost_vs_plain": median_of(speed, "drs_cost"),
            "achieved_rate": median_of(speed, "drs_achieved"),
            "images": DRS_IMAGES,
            "target": 6.0,
        },
    }


def main(
    run_dir: Path = typer.Argument(..., help="a train-gan run folder"),
    artifact: Path | None = typer.Option(None, help="its export (else exported to a temporary folder)"),
    rounds: int = typer.Option(5, help="alternating runtime / eager rounds"),
    repeats: int = typer.Option(3, help="timed runs per measurement within a round (best is kept)"),
    worker_side: str | None = typer.Option(None, "--worker", hidden=True),
) -> None:
    if worker_side == "runtime":
        typer.echo(json.dumps(runtime_worker(artifact, repeats)))
        return
    if worker_side == "eager":
        typer.echo(json.dumps(eager_worker(run_dir, artifact, repeats)))
        return
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        if artifact is None:
            from common.mnist import resolve_data_root
            from export.artifact import export_run

            artifact = Path(scratch) / "model"
            export_run(run_dir, "onnx", artifact, resolve_data_root(None))
        results = compare(run_dir, artifact, Path(scratch), rounds, repeats)
        manifest = json.loads((artifact / "manifest.json").read_text())
    typer.echo(
        json.dumps(
            {
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average_1min": [load_before, os.getloadavg()[0]],
                },
                "model": {
                    "variant": manifest["variant"],
                    "architecture": manifest["architecture"],
                    "run_dir": str(run_dir),
                },
                **results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    typer.run(main)
