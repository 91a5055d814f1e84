"""Score samples under a protocol: features, FID against the cached reference, P/R/D/C, class statistics."""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import numpy as np

from common.mnist import HOLDOUT_IMAGES, HOLDOUT_SET, load_holdout_set, load_mnist_uint8
from common.validation import INT8_INCEPTION, NUM_DIGITS

from . import EvaluationError
from .cache import Reference, cache_dir, load_reference, read_floor, reference_key, shipped_floor
from .features import EXTRACTORS, Features, InceptionPool3, inception_runtime, torch_device
from .fid import frechet_distance, gaussian_stats
from .inception_onnx import int8_check_images
from .prdc import check_enough, precision_recall
from .protocols import PROTOCOLS, REFERENCE_SET
from .report import INT8_NOTE
from .samples import Samples

# A digit counts as covered when at least this share of the samples is classified as it
# (a tenth of its share under uniform sampling).
COVERED_MIN_SHARE = 0.01


def class_statistics(predicted: np.ndarray, requested: np.ndarray | None) -> dict:
    """Histogram of predicted digits, digits covered, KL(histogram || uniform) in nats; for
    conditional samples also the share of samples of digit i classified as i."""
    share = np.bincount(predicted, minlength=NUM_DIGITS) / len(predicted)
    present = share > 0
    stats = {
        "class_histogram": share.tolist(),
        "digits_covered": int((share >= COVERED_MIN_SHARE).sum()),
        "kl_from_uniform": float(np.sum(share[present] * np.log(share[present] * NUM_DIGITS))),
    }
    if requested is not None:
        stats["label_accuracy"] = float((predicted == requested).mean())
        stats["digit_accuracy"] = [
            float((predicted[requested == d] == d).mean()) if (requested == d).any() else None
            for d in range(NUM_DIGITS)
        ]
    return stats


class Evaluator:
    """A protocol ready to score: its feature extractor and its cached real reference: MNIST test, or with
    `holdout` MNIST train's held-out tail (for choices that must not look at the test set).

    Everything expensive (network weights, the reference) is loaded on first use, so that bad
    input is reported before any long step.
    """

    def __init__(
        self,
        protocol: str,
        data_root: Path,
        progress: bool = False,
        holdout: bool = False,
        device: str = "cpu",
        inception: str = "auto",
    ):
        if protocol not in PROTOCOLS:
            raise EvaluationError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
        self.protocol = PROTOCOLS[protocol]
        self.data_root = data_root
        self.progress = progress
        self.holdout = holdout
        self.device = torch_device(device)  # checked now: bad input before any long step
        self.inception = inception_runtime(inception, self.device)

    @property
    def reference_set(self) -> str:
        return HOLDOUT_SET if self.holdout else REFERENCE_SET

    def sample_count(self, n: int | None) -> int:
        """n, or the protocol's sample count; checked before anything is sampled."""
        count = self.protocol.samples if n is None else n
        check_enough(count, self.protocol.ks, "generated")
        return count

    @functools.cached_property
    def extractor(self):
        if self.protocol.features == InceptionPool3.name:
            return InceptionPool3(self.device, self.inception, functools.partial(int8_check_images, self.data_root))
        return EXTRACTORS[self.protocol.features](self.device)

    @property
    def int8(self) -> bool:
        """Features from the int8 Inception (opt-in): not P0's, so cached and labelled apart."""
        return self.protocol.features == InceptionPool3.name and self.inception == INT8_INCEPTION

    @functools.cached_property
    def real_images(self) -> np.ndarray:
        if self.holdout:
            return load_holdout_set(self.data_root, HOLDOUT_IMAGES)[0]
        return load_mnist_uint8(self.data_root, train=False)[0]

    @functools.cached_property
    def key(self) -> str:
        return reference_key(self.protocol, self.extractor.fingerprint, self.real_images)

    @functools.cached_property
    def reference(self) -> Reference:
        def real_features() -> np.ndarray:
            if self.progress:
                print(
                    f"computing the {self.protocol.name} reference ({self.reference_set}) once; cached in "
                    f"{cache_dir()}",
                    file=sys.stderr,
                )
            return self.extractor(self.real_images, self.progress).vectors

        return load_reference(self.protocol, self.key, real_features, self.holdout, self.int8)

    def floor(self) -> dict | None:
        """The real-vs-real floor: measured on this machine (`eval-gan floor`), else the one shipped in artifacts/.
        None against the holdout: the floor is measured against MNIST test."""
        if self.holdout:
            return None
        return read_floor(self.protocol, self.key) or (None if self.int8 else shipped_floor(self.protocol))

    def score(self, samples: Samples, features: Features | None = None) -> dict:
        """One record: what was scored (source, samples, seed, class sampling), under which protocol, the metrics.

        features: the samples' features under this protocol when already extracted (a study scoring
        subsets of one sample)."""
        started = time.perf_counter()
        protocol = self.protocol
        check_enough(len(samples.images), protocol.ks, "generated")
        reference = self.reference
        if features is None:
            features = self.extractor(samples.images, self.progress)
        metrics = {"fid": frechet_distance(gaussian_stats(features.vectors), reference.stats)}
        pr = precision_recall(reference.features, features.vectors, protocol.ks, reference.radii)
        for k, values in pr.items():
            metrics.update({f"{name}_k{k}": value for name, value in values.items()})
        if features.predicted_digits is not None:
            metrics.update(class_statistics(features.predicted_digits, samples.labels))
        int8 = {"inception": {"runtime": INT8_INCEPTION, **self.extractor.pool3.deviation}} if self.int8 else {}
        return {
            "protocol": protocol.name,
            "protocol_summary": protocol.summary + (INT8_NOTE if self.int8 else ""),
            "reference": self.reference_set,
            **samples.description,
            "metrics": {protocol.key(name): value for name, value in metrics.items()},
            **int8,
            "seconds": round(time.perf_counter() - started, 3),
        }
