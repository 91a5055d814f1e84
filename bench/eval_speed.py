"""Evaluation time for N generated samples under each protocol, real reference cached. Prints JSON.

    python bench/eval_speed.py --data-root ../shared/data [--n 10000] [--protocols proxy,p0] [--run RUN_DIR]

Each protocol's real reference (MNIST test 10k) is loaded first and timed apart (a cache hit takes
about a second; a miss computes it once, which for p0 is 10k Inception passes). The timed part is
what `eval-gan score RUN` does after that: sample N images, quantise, extract features, FID,
precision/recall/density/coverage at k=3 and 5 (and the proxy's class statistics). Without
--run, a freshly initialised `vanilla` MLP generator is sampled: the timing is the same as for a
trained one, the scores are meaningless.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import typer
from machine import cpu_name  # noqa: E402  (bench/ is run as a script folder)

from common.mnist import resolve_data_root
from evaluation.scoring import Evaluator
from training.config import resolve
from training.models import build_models
from training.priors import build_prior
from training.sampling import load_generator, sample_run


def untrained_generator(seed: int):
    cfg = resolve("vanilla", {"device": "cpu", "seed": seed})
    torch.manual_seed(seed)
    prior = build_prior(cfg.prior, cfg.latent_dim, cfg.num_components, cfg.mixture_radius, cfg.mixture_sigma)
    return build_models(cfg, prior, use_spectral_norm=False)[0].eval()


def main(
    data_root: Path = typer.Option(None, help="MNIST root (default: $GAN_DATA_ROOT or the user cache)"),
    n: int = typer.Option(10_000, help="generated samples scored per protocol"),
    protocols: str = typer.Option("proxy,p0", help="comma-separated protocols, timed in this order"),
    run: Path = typer.Option(None, help="a run folder to sample (default: an untrained vanilla generator)"),
    seed: int = typer.Option(0),
):
    root = resolve_data_root(data_root)
    generator = load_generator(run) if run else untrained_generator(seed)
    results = {}
    for name in protocols.split(","):
        started = time.perf_counter()
        evaluator = Evaluator(name, root)
        evaluator.reference  # noqa: B018  (load or build the cached reference outside the timed part)
        reference_seconds = time.perf_counter() - started
        started = time.perf_counter()
        samples = sample_run(generator, str(run or "untrained vanilla"), n, seed, None, root)
        sampled = time.perf_counter()
        record = evaluator.score(samples)
        finished = time.perf_counter()
        results[name] = {
            "seconds": round(finished - started, 2),
            "sampling_seconds": round(sampled - started, 2),
            "scoring_seconds": round(finished - sampled, 2),
            "reference_load_seconds": round(reference_seconds, 2),
            "fid": record["metrics"][f"{name}/fid"],
        }
    print(
        json.dumps(
            {
                "benchmark": "eval_speed",
                "samples": n,
                "seed": seed,
                "source": str(run or "untrained vanilla"),
                **{f"{name}_seconds": result["seconds"] for name, result in results.items()},
                "proxy_target_seconds": 10.0,
                "details": results,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "cpu": cpu_name(),
            }
        )
    )


if __name__ == "__main__":
    typer.run(main)
