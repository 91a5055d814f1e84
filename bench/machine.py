"""What the benchmarks ran on, for their JSON, and how the load benchmarks fire their requests (bench/ scripts run
with this folder on sys.path)."""

from __future__ import annotations

import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def together(count: int, work) -> tuple[list, float]:
    """Run work(i) for i in 1..count on `count` threads released at once; (outcomes, wall seconds)."""
    start = threading.Barrier(count)

    def timed(index: int):
        start.wait()
        began = time.perf_counter()
        try:
            problem = work(index)
        except Exception as error:  # a failed request is what this benchmark counts
            problem = f"{type(error).__name__}: {error}"
        return time.perf_counter() - began, problem

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        outcomes = list(pool.map(timed, range(1, count + 1)))
    return outcomes, time.perf_counter() - began


def latency_summary(outcomes: list[tuple[float, str | None]], wall: float) -> dict:
    """The JSON of a load run: (seconds, problem or None) per request and the run's wall seconds."""
    latencies = np.array([seconds for seconds, _ in outcomes])
    failures = [problem for _, problem in outcomes if problem is not None]
    return {
        "requests": len(latencies),
        "failures": len(failures),
        "failure_examples": failures[:3],
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 3),
        "latency_max_s": round(float(latencies.max()), 3),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 2),
    }
