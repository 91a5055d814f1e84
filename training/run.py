"""Load a trained run (config + checkpoint) without its data or optimizers: for evaluation and export."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .checkpoint import CheckpointError, load_checkpoint, unprefixed
from .config import TrainConfig, load_run_config
from .models import GeneratorBundle, build_models
from .objectives import CONSTRAINTS
from .priors import build_prior

CHECKPOINT_NAME = "checkpoint.safetensors"
METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainedRun:
    cfg: TrainConfig
    generator: GeneratorBundle  # eval mode; weights as `generator_weights` says
    critic: nn.Module  # eval mode
    epoch: int  # completed epochs
    run_dir: Path
    generator_weights: str  # "ema" (the run's EMA of G) or "raw" (the trained G itself)


def load_trained(run_dir: Path, device: str | torch.device = "cpu", raw_generator: bool = False) -> TrainedRun:
    """The run's models; the generator is its EMA when the run kept one, unless `raw_generator` (an EMA lags
    a generator that still improves fast, so short runs can be better raw)."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    tensors, state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    prior = build_prior(cfg.prior, cfg.latent_dim, cfg.num_components, cfg.mixture_radius, cfg.mixture_sigma)
    generator, critic = build_models(cfg, prior, CONSTRAINTS[cfg.lipschitz](cfg).spectral_norm)
    ema = {} if raw_generator else unprefixed("ema.module", tensors)
    try:
        generator.load_state_dict(ema if ema else unprefixed("generator", tensors))
        critic.load_state_dict(unprefixed("critic", tensors))
    except RuntimeError:
        raise CheckpointError(f"checkpoint in {run_dir} does not match its config.json (different model)") from None
    return TrainedRun(
        cfg, generator.to(device).eval(), critic.to(device).eval(), state["epoch"], run_dir, "ema" if ema else "raw"
    )


def training_cost(run_dir: Path, epochs: int) -> dict:
    """What the first `epochs` epochs cost, from metrics.jsonl: wall seconds and CPU seconds (all threads;
    evaluation during training not included). An epoch stopped by SIGINT/SIGTERM and resumed counts both
    parts (logs written before that was kept count only the part after the resume; a SIGKILL loses the
    killed part, which the resumed run redoes and counts)."""
    path = Path(run_dir) / METRICS_NAME
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        raise CheckpointError(f"cannot read the training log {path}") from None
    records = [r for r in records if r.get("epoch", 0) <= epochs]
    # Epoch records from before the device was logged all come from CPU runs.
    devices = sorted({r.get("device", "cpu") for r in records})
    return {
        "wall_seconds": round(sum(r.get("epoch_seconds", 0.0) for r in records), 1),
        "cpu_seconds": round(sum(r.get("epoch_cpu_seconds", 0.0) for r in records), 1),
        "device": " + ".join(devices) or "cpu",
        "epochs_logged": len(records),
    }
