"""Evaluation time for N generated samples under each protocol, and for P0 under each Inception runtime and
device. Prints JSON.

    python bench/eval_speed.py --data-root ../shared/data [--n 10000] [--protocols proxy,p0] [--run SOURCE]
        [--inception auto|onnx,torch,onnx-int8] [--device cpu|cuda,cpu] [--cold-reference]

Each protocol's real reference (MNIST test 10k) is loaded first and timed apart (a cache hit takes
about a second; a miss computes it once, which for p0 is 10k Inception passes; --cold-reference
makes it a miss in a fresh temporary cache, so that pass is timed). The timed part is what
`eval-gan score SOURCE` does after that: sample N images, quantise, extract features (timed apart:
the feature pass), FID, precision/recall/density/coverage at k=3 and 5 (and the proxy's class
statistics). SOURCE is a run folder or an exported artifact; without it, a freshly initialised
`vanilla` MLP generator is sampled: the timing is the same as for a trained one, the scores are
meaningless. Each protocol runs on every `--device` in turn (onnxruntime's Inception on the CPU only). With several
P0 setups (runtimes or devices), `p0_parity` compares each with the first: the largest feature difference (real
and generated) and each metric's difference.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import typer
from machine import cpu_name  # noqa: E402  (bench/ is run as a script folder)

from common.mnist import resolve_data_root
from evaluation.cache import CACHE_ENV
from evaluation.cli import open_source
from evaluation.scoring import Evaluator
from training.config import resolve
from training.models import build_models
from training.priors import build_prior
from training.sampling import sample_run


def untrained_generator(seed: int):
    cfg = resolve("vanilla", {"device": "cpu", "seed": seed})
    torch.manual_seed(seed)
    prior = build_prior(cfg.prior, cfg.latent_dim, cfg.num_components, cfg.mixture_radius, cfg.mixture_sigma)
    return build_models(cfg, prior, use_spectral_norm=False)[0].eval()


def timed_score(name: str, inception: str, device: str, root: Path, sample, cold_reference: bool) -> dict:
    """Score `sample()` under protocol `name` on `device`; the reference, sampling and feature pass timed apart."""
    with (
        tempfile.TemporaryDirectory(prefix="eval-speed-") as cache,
        mock.patch.dict(os.environ, {CACHE_ENV: cache} if cold_reference else {}),
    ):
        started = time.perf_counter()
        evaluator = Evaluator(name, root, device=device, inception=inception)
        reference = evaluator.reference
        reference_seconds = time.perf_counter() - started
        started = time.perf_counter()
        samples = sample()
        sampled = time.perf_counter()
        features = evaluator.extractor(samples.images)
        extracted = time.perf_counter()
        record = evaluator.score(samples, features)
        finished = time.perf_counter()
    inception_runtime = evaluator.inception if evaluator.protocol.features == "inception-pool3" else None
    return {
        "inception": inception_runtime,
        "device": evaluator.device.type,
        # a setup's name in the JSON's keys: the runtime, and the device where it is not the CPU
        "setup": "_".join(part for part in (inception_runtime, evaluator.device.type) if part and part != "cpu"),
        "seconds": round(finished - started, 2),
        "sampling_seconds": round(sampled - started, 2),
        "feature_seconds": round(extracted - sampled, 2),
        "scoring_seconds": round(finished - sampled, 2),
        "reference_load_seconds": round(reference_seconds, 2),
        "metrics": record["metrics"],
        "_features": (reference.features, features.vectors),
    }


def parity(results: list[dict], cold_reference: bool) -> list[dict]:
    """Each setup's features and metrics against the first setup's (the real features only when each setup
    computed its own reference: otherwise they share the cached one, whatever the device)."""
    base = results[0]
    return [
        {
            "runtimes": f"{other['inception']} on {other['device']} vs {base['inception']} on {base['device']}",
            "max_abs_feature_diff_real": float(np.abs(other["_features"][0] - base["_features"][0]).max())
            if cold_reference
            else None,
            "max_abs_feature_diff_generated": float(np.abs(other["_features"][1] - base["_features"][1]).max()),
            "metric_diffs": {key: other["metrics"][key] - value for key, value in base["metrics"].items()},
        }
        for other in results[1:]
    ]


def main(
    data_root: Path = typer.Option(None, help="MNIST root (default: $GAN_DATA_ROOT or the user cache)"),
    n: int = typer.Option(10_000, help="generated samples scored per protocol"),
    protocols: str = typer.Option("proxy,p0", help="comma-separated protocols, timed in this order"),
    run: Path = typer.Option(None, help="a run folder or exported artifact to sample [an untrained vanilla generator]"),
    inception: str = typer.Option("auto", help="comma-separated Inception runtimes for p0, timed in this order"),
    device: str = typer.Option("cpu", help="comma-separated devices (cpu, cuda, auto), each timed in this order"),
    cold_reference: bool = typer.Option(False, help="compute each real reference anew (timed) in a temporary cache"),
    seed: int = typer.Option(0),
):
    root = resolve_data_root(data_root)
    source = str(run or "untrained vanilla")
    generator = None if run else untrained_generator(seed)

    def sample():
        if run is None:
            return sample_run(generator, source, n, seed, None, root)
        return open_source(run, n, seed, None, root, n)

    load_before = os.getloadavg()
    results = {}
    for name in protocols.split(","):
        runtimes = inception.split(",") if name == "p0" else ["auto"]
        results[name] = [
            timed_score(name, runtime, where, root, sample, cold_reference)
            for where in device.split(",")
            for runtime in runtimes
        ]
    p0_parity = parity(results["p0"], cold_reference) if len(results.get("p0", [])) > 1 else None
    for runs in results.values():
        for result in runs:
            del result["_features"]
    print(
        json.dumps(
            {
                "benchmark": "eval_speed",
                "samples": n,
                "seed": seed,
                "source": source,
                "cold_reference": cold_reference,
                **{
                    f"{name}_{result['setup']}_seconds" if result["setup"] else f"{name}_seconds": result["seconds"]
                    for name, runs in results.items()
                    for result in runs
                },
                "proxy_target_seconds": 10.0,
                "p0_feature_pass_target_seconds": 300.0,
                "details": results,
                "p0_parity": p0_parity,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "cores": len(os.sched_getaffinity(0)),
                "cpu": cpu_name(),
            }
        )
    )


if __name__ == "__main__":
    typer.run(main)
