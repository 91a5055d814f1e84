"""The seeds' studies: the σ sweep of a mixture prior, uniform vs MNIST-frequency class sampling, and
the real-vs-real floor; and ours: which generated images a rejection rule should drop, and which latent
spread a model should sample at by default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.manifest import read_manifest
from common.mnist import HOLDOUT_IMAGES, load_holdout_set, load_mnist_uint8
from common.validation import check_spread
from runtime.model import GanModel

from . import EvaluationError
from .cache import write_floor
from .features import ClassifierFeatures, Features
from .prdc import check_enough, realism_scores
from .samples import CLASS_SAMPLINGS, Samples, sample_artifact
from .scoring import Evaluator

STRIP_LENGTH = 10  # images per σ in the sweep's figure
REALISM_K = 3
SPREAD_RULE = "the highest min(precision, recall) at k=3"


def sigma_sweep(
    samplers: dict[float, Callable[[], Samples]], evaluator: Evaluator
) -> tuple[list[dict], list[np.ndarray]]:
    """One record per σ (each sampler draws the same latent noise at its σ), and the first images of each as a strip."""
    records, strips = [], []
    for sigma, sample in samplers.items():
        samples = sample()
        records.append({"sigma": sigma, **evaluator.score(samples)})
        strips.append(samples.images[:STRIP_LENGTH])
    return records, strips


def class_sampling_study(sample_with: Callable[[str], Samples], evaluator: Evaluator) -> list[dict]:
    """The same conditional model scored with each class sampling (uniform digits, MNIST train frequencies)."""
    return [evaluator.score(sample_with(class_sampling)) for class_sampling in CLASS_SAMPLINGS]


def real_vs_real_floor(evaluator: Evaluator, data_root: Path, n: int, seed: int) -> dict:
    """n random MNIST train images (chosen by `seed`) scored against MNIST test: the best any model can do.

    Stored beside the protocol's cached reference when n is the protocol's sample count, so that
    every later report prints it."""
    images, labels = load_mnist_uint8(data_root, train=True)
    if n > len(images):
        raise EvaluationError(f"--n {n} exceeds the {len(images)} MNIST train images")
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), size=n, replace=False))
    samples = Samples(
        images[chosen],
        labels[chosen],
        {
            "source": f"MNIST train ({n:,} random images, seed {seed})",
            "samples": n,
            "seed": seed,
            "class_sampling": "mnist",
        },
    )
    record = evaluator.score(samples)
    if n == evaluator.protocol.samples:
        write_floor(evaluator.protocol, evaluator.key, record)
    return record


def critic_logits(model: GanModel, images: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """The exported DRS head's calibrated logit D~ of each image (under its own digit for conditional models)."""
    if labels is None:
        return model.score(images).logit
    logits = np.empty(len(images))
    for digit in np.unique(labels):
        chosen = labels == digit
        logits[chosen] = model.score(images[chosen], digit=int(digit)).logit
    return logits


def keep_highest(scores: np.ndarray, labels: np.ndarray | None, keep: float) -> np.ndarray:
    """Sorted indices of the highest-scoring share `keep` of the samples; within each digit for conditional
    samples, so that every digit keeps its count (as DRS gives each digit its own threshold)."""
    groups = [np.arange(len(scores))] if labels is None else [np.flatnonzero(labels == d) for d in np.unique(labels)]
    return np.sort(
        np.concatenate(
            [group[np.argsort(-scores[group], kind="stable")[: round(len(group) * keep)]] for group in groups]
        )
    )


def rejection_study(
    folder: Path, evaluator: Evaluator, n: int, seed: int, keeps: list[float], data_root: Path
) -> list[dict]:
    """n samples of an exported model, then for each share in `keeps` the same number of them kept by each
    rule and scored: at random (the baseline: what a smaller sample scores), by the highest realism score
    (Kynkäänniemi et al. 2019) in the MNIST classifier's feature space against MNIST train's held-out
    images (never trained on by a model trained with the default --holdout), and by the highest calibrated
    critic logit (what DRS accepts by). Comparing at equal counts matters: recall depends on how many samples
    are scored."""
    for keep in keeps:
        if not 0 < keep < 1:
            raise EvaluationError(f"--keep must be a share of the samples in (0, 1), got {keep:g}")
        check_enough(round(n * keep), evaluator.protocol.ks, f"kept ({keep:g} of {n})")
    samples = sample_artifact(folder, n, seed, None, data_root)
    features = evaluator.extractor(samples.images, evaluator.progress)
    classifier = ClassifierFeatures(evaluator.device)
    bank = classifier(load_holdout_set(data_root, HOLDOUT_IMAGES)[0]).vectors
    scores = {
        "random": np.random.default_rng(seed).random(n),
        "realism": realism_scores(bank, classifier(samples.images).vectors, REALISM_K),
        "critic logit": critic_logits(GanModel.load(folder), samples.images, samples.labels),
    }
    records = [{"rule": "none", "keep": 1.0, **evaluator.score(samples, features)}]
    for keep in keeps:
        for rule, rule_scores in scores.items():
            kept = keep_highest(rule_scores, samples.labels, keep)
            subset = Samples(
                samples.images[kept],
                None if samples.labels is None else samples.labels[kept],
                {**samples.description, "samples": len(kept), "proposals": n},
            )
            subset_features = Features(
                features.vectors[kept], None if features.predicted_digits is None else features.predicted_digits[kept]
            )
            records.append({"rule": rule, "keep": keep, **evaluator.score(subset, subset_features)})
    return records


def balanced_spread(records: list[dict], protocol_name: str) -> float:
    """The scored spread with the highest min(precision, recall) at k=3; a tie goes to the one nearest 1."""

    def balance(record: dict) -> tuple[float, float]:
        metrics = record["metrics"]
        return (
            min(metrics[f"{protocol_name}/precision_k3"], metrics[f"{protocol_name}/recall_k3"]),
            -abs(record["spread"] - 1.0),
        )

    return max(records, key=balance)["spread"]


def spread_selection(
    folder: Path, evaluator: Evaluator, spreads: list[float], n: int, seed: int, data_root: Path
) -> tuple[list[dict], float]:
    """Each latent spread of an exported model scored against MNIST train's held-out tail (same seed, so
    the same noise scaled), and the balanced one (`SPREAD_RULE`). The test set never enters the choice;
    a model that trained on those held-out images is refused."""
    if not evaluator.holdout:
        raise EvaluationError("a default spread is chosen against the held-out images, not the test set")
    for spread in spreads:
        check_spread(spread, "--spreads")
    holdout = read_manifest(folder).training.get("config", {}).get("holdout")
    if holdout is None:
        raise EvaluationError(
            f"{folder}'s manifest records no training holdout, so the {HOLDOUT_IMAGES:,} held-out "
            "images its spread would be chosen on may have been trained on"
        )
    if holdout < HOLDOUT_IMAGES:
        raise EvaluationError(
            f"{folder} was trained with holdout {holdout}: it saw some of the "
            f"{HOLDOUT_IMAGES:,} held-out images its spread would be chosen on"
        )
    records = [evaluator.score(sample_artifact(folder, n, seed, None, data_root, spread=spread)) for spread in spreads]
    return records, balanced_spread(records, evaluator.protocol.name)
