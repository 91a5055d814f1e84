"""Load on the runtime: concurrent requests on one shared GanModel, and concurrent `gan-runtime sample`
processes; prints one JSON object.

    python bench/runtime_load.py --model FOLDER_OR_NAME [--requests 100] [--samples 64] [--drs 0.2]
                                 [--processes 100]

Threads: one GanModel (its onnxruntime sessions opened by a warm-up request) shared by --requests
threads that start together; request i generates --samples images with seed i (through DRS at
--drs, 0 = off) and scores them. Processes: --processes `gan-runtime sample` commands started
together, each writing the grid of seed i. A request fails when it raises, exits non-zero, or
returns anything but the bytes a lone, sequential request gives for the same seed (checked for every
request). Latency is per request, from its start to its result (queueing for the cores included).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import typer
from machine import cpu_name, latency_summary, together

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.images import grid_png  # noqa: E402
from runtime.model import GanModel  # noqa: E402


def shared_model_load(model: GanModel, requests: int, samples: int, drs_rate: float | None) -> dict:
    def request(seed: int, gan: GanModel):
        images, _ = gan.generate(samples, seed=seed, drs_rate=drs_rate)
        return images, gan.score(images, drs_rate=drs_rate or 0.2).logit

    lone = GanModel(model.manifest, "cpu")  # its own sessions: the sequential reference
    expected = {seed: request(seed, lone) for seed in range(1, requests + 1)}
    request(0, model)  # warm-up: opens the shared sessions

    def concurrent(seed: int) -> str | None:
        images, logits = request(seed, model)
        same = np.array_equal(images, expected[seed][0]) and np.array_equal(logits, expected[seed][1])
        return None if same else f"seed {seed}: not what a lone request returns"

    outcomes, wall = together(requests, concurrent)
    return {
        "kind": "threads sharing one GanModel",
        "samples_per_request": samples,
        "drs_rate": drs_rate,
        **latency_summary(outcomes, wall),
    }


def process_load(model: GanModel, processes: int, samples: int) -> dict:
    expected = {
        seed: grid_png(model.generate(samples, seed=seed)[0], rows=max(1, math.isqrt(samples)))
        for seed in range(1, processes + 1)
    }
    with tempfile.TemporaryDirectory() as folder:

        def one_process(seed: int) -> str | None:
            out = Path(folder) / f"grid_{seed}.png"
            result = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from runtime.cli import main; main()",
                    "sample",
                    "--model",
                    str(model.manifest.folder),
                    "--n",
                    str(samples),
                    "--seed",
                    str(seed),
                    "--device",
                    "cpu",
                    "--out",
                    str(out),
                ],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                return f"seed {seed}: exit {result.returncode}: {result.stderr.strip()[-200:]}"
            return None if out.read_bytes() == expected[seed] else f"seed {seed}: grid differs from a lone run's"

        outcomes, wall = together(processes, one_process)
    return {
        "kind": "gan-runtime sample processes",
        "samples_per_request": samples,
        **latency_summary(outcomes, wall),
    }


def main(
    model: str | None = typer.Option(
        None, help="model name under artifacts/ or a folder [the best shipped]", show_default=False
    ),
    requests: int = typer.Option(100, help="concurrent requests on the shared model"),
    samples: int = typer.Option(64, help="images per request"),
    drs: float = typer.Option(0.2, help="DRS target rate of the threaded requests (0 = off)"),
    processes: int = typer.Option(100, help="concurrent gan-runtime processes (0 = none)"),
) -> None:
    gan = GanModel.load(model, "cpu")
    results = [shared_model_load(gan, requests, samples, drs or None)]
    if processes:
        results.append(process_load(gan, processes, samples))
    print(
        json.dumps(
            {
                "benchmark": "runtime_load",
                "model": gan.name,
                "results": results,
                "machine": {
                    "cpu": cpu_name(),
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "onnxruntime": onnxruntime.__version__,
                    "load_average_1min": round(os.getloadavg()[0], 2),
                },
            }
        )
    )


if __name__ == "__main__":
    typer.run(main)
