"""The seeds' studies: the σ sweep of a mixture prior, uniform vs MNIST-frequency class sampling, and
the real-vs-real floor."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from training.data import load_mnist_uint8
from training.models import GeneratorBundle
from training.priors import GaussianMixturePrior

from . import EvaluationError
from .cache import write_floor
from .scoring import Evaluator
from .sources import CLASS_SAMPLINGS, Samples, is_conditional, sample_run

STRIP_LENGTH = 10  # images per σ in the sweep's figure


def with_sigma(generator: GeneratorBundle, sigma: float) -> GeneratorBundle:
    """A copy of the generator whose mixture components all have standard deviation `sigma`."""
    if not isinstance(generator.prior, GaussianMixturePrior):
        raise EvaluationError(f"the σ sweep needs a Gaussian-mixture prior (gmm_static, gmm_dynamic, gmm_indexed); "
                              f"this run's prior is {generator.prior.kind}")
    if not sigma > 0:
        raise EvaluationError(f"σ must be > 0, got {sigma}")
    swept = copy.deepcopy(generator)
    with torch.no_grad():
        swept.prior.log_sigma.fill_(math.log(sigma))
    return swept


def sigma_sweep(generator: GeneratorBundle, source: str, sigmas: list[float], evaluator: Evaluator, n: int,
                seed: int, data_root: Path) -> tuple[list[dict], list[np.ndarray]]:
    """One record per σ (same seed, so the same latent draws), and the first images of each as a strip."""
    swept = [with_sigma(generator, sigma) for sigma in sigmas]  # validate every σ before the long part
    records, strips = [], []
    for sigma, model in zip(sigmas, swept):
        samples = sample_run(model, source, n, seed, None, data_root, evaluator.progress)
        records.append({"sigma": sigma, **evaluator.score(samples)})
        strips.append(samples.images[:STRIP_LENGTH])
    return records, strips


def class_sampling_study(generator: GeneratorBundle, source: str, evaluator: Evaluator, n: int, seed: int,
                         data_root: Path) -> list[dict]:
    """The same conditional model scored with uniform digits and with MNIST train frequencies."""
    if not is_conditional(generator):
        raise EvaluationError(f"class sampling compares digit distributions of conditional models; this run's prior "
                              f"({generator.prior.kind}) draws no digits")
    return [evaluator.score(sample_run(generator, source, n, seed, sampling, data_root, evaluator.progress))
            for sampling in CLASS_SAMPLINGS]


def real_vs_real_floor(evaluator: Evaluator, data_root: Path, n: int, seed: int) -> dict:
    """n random MNIST train images (chosen by `seed`) scored against MNIST test: the best any model can do.

    Stored beside the protocol's cached reference when n is the protocol's sample count, so that
    every later report prints it."""
    images, labels = load_mnist_uint8(data_root, train=True)
    if n > len(images):
        raise EvaluationError(f"--n {n} exceeds the {len(images)} MNIST train images")
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), size=n, replace=False))
    samples = Samples(images.numpy()[chosen], labels.numpy()[chosen],
                      {"source": f"MNIST train ({n:,} random images, seed {seed})", "samples": n, "seed": seed,
                       "class_sampling": "mnist"})
    record = evaluator.score(samples)
    if n == evaluator.protocol.samples:
        write_floor(evaluator.protocol, evaluator.key, record)
    return record
