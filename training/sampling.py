"""Sampling a training run's torch generator for evaluation: the `Samples` that evaluation scores.

Evaluation knows nothing of torch runs; this module turns a run folder (or a generator in training)
into Samples, and builds the generators the seeds' studies sample from (σ sweep, class sampling).
Generated images are quantised exactly as a PNG stores them (unit_to_uint8 on (x + 1) / 2).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common.images import unit_to_uint8
from common.validation import NUM_DIGITS
from evaluation import EvaluationError
from evaluation.samples import Samples, digit_counts, digit_weights, resolve_class_sampling

from .models import GeneratorBundle
from .priors import GaussianMixturePrior
from .run import CHECKPOINT_NAME, load_trained

GENERATE_BATCH = 1000


def is_conditional(generator: GeneratorBundle) -> bool:
    return generator.prior.labels_are_digits


@torch.no_grad()
def generate(
    generator: GeneratorBundle, n: int, seed: int, digit_weights: np.ndarray, progress: bool = False
) -> Samples:
    """n images from noise seeded by `seed` (a generator of its own, never the training RNG).

    Conditional models get `digit_weights` as exact per-digit counts; mixture priors draw their
    components as the model samples them.
    """
    prior = generator.prior
    rng = torch.Generator().manual_seed(seed)
    if is_conditional(generator):
        labels = torch.from_numpy(np.repeat(np.arange(NUM_DIGITS), digit_counts(n, digit_weights)))
    else:
        labels = prior.sample_labels(n, rng, torch.device("cpu"))
    eps = torch.randn(n, prior.latent_dim, generator=rng)
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    images = np.empty((n, 28, 28), dtype=np.uint8)
    for start in tqdm(range(0, n, GENERATE_BATCH), desc="sampling", unit="batch", disable=not progress, leave=False):
        rows = slice(start, start + GENERATE_BATCH)
        out = generator(eps[rows].to(device), labels[rows].to(device)).float().cpu().numpy()
        images[rows] = unit_to_uint8((out[:, 0] + 1.0) / 2.0)
    generator.train(was_training)
    return Samples(images, labels.numpy() if is_conditional(generator) else None)


def run_dir_of(path: Path) -> Path | None:
    """The run folder `path` names (the folder, or its checkpoint file); None when it is not one."""
    path = Path(path)
    if path.is_file() and path.name == CHECKPOINT_NAME:
        return path.parent
    return path if (path / CHECKPOINT_NAME).is_file() else None


def load_generator(path: Path, raw_generator: bool = False) -> GeneratorBundle:
    """The generator of a run folder (or of its checkpoint file); EMA weights when the run kept them, unless
    `raw_generator` (to study the generator that was exported with `export-gan --raw-generator`)."""
    run_dir = run_dir_of(path)
    if run_dir is None:
        raise EvaluationError(f"{path} is not a run folder (no {CHECKPOINT_NAME})")
    return load_trained(run_dir, raw_generator=raw_generator).generator


def sample_run(
    generator: GeneratorBundle,
    source: str,
    n: int,
    seed: int,
    class_sampling: str | None,
    data_root: Path,
    progress: bool = False,
) -> Samples:
    """n samples with `class_sampling` resolved for this model, described for the report."""
    class_sampling = resolve_class_sampling(is_conditional(generator), class_sampling)
    samples = generate(generator, n, seed, digit_weights(class_sampling, data_root), progress)
    samples.description = {"source": source, "samples": n, "seed": seed, "class_sampling": class_sampling}
    return samples


def with_sigma(generator: GeneratorBundle, sigma: float) -> GeneratorBundle:
    """A copy of the generator whose mixture components all have standard deviation `sigma`."""
    if not isinstance(generator.prior, GaussianMixturePrior):
        raise EvaluationError(
            f"the σ sweep needs a Gaussian-mixture prior (gmm_static, gmm_dynamic, gmm_indexed); "
            f"this run's prior is {generator.prior.kind}"
        )
    if not sigma > 0:
        raise EvaluationError(f"σ must be > 0, got {sigma}")
    swept = copy.deepcopy(generator)
    with torch.no_grad():
        swept.prior.log_sigma.fill_(math.log(sigma))
    return swept


def sigma_samplers(
    generator: GeneratorBundle,
    source: str,
    sigmas: list[float],
    n: int,
    seed: int,
    data_root: Path,
    progress: bool = False,
) -> dict[float, Callable[[], Samples]]:
    """For each σ, what samples the generator with every mixture component at σ (same seed, so the same latent
    draws); every σ is checked before anything is sampled."""
    swept = {sigma: with_sigma(generator, sigma) for sigma in sigmas}
    return {
        sigma: (lambda model=model: sample_run(model, source, n, seed, None, data_root, progress))
        for sigma, model in swept.items()
    }


def class_samplers(
    generator: GeneratorBundle, source: str, n: int, seed: int, data_root: Path, progress: bool = False
) -> Callable[[str], Samples]:
    """What samples a conditional model with a given class sampling (uniform digits or MNIST frequencies)."""
    if not is_conditional(generator):
        raise EvaluationError(
            f"class sampling compares digit distributions of conditional models; this run's prior "
            f"({generator.prior.kind}) draws no digits"
        )
    return lambda class_sampling: sample_run(generator, source, n, seed, class_sampling, data_root, progress)
