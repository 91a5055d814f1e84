"""The protocol registry: a protocol fixes the feature space, the sample count and the k of P/R.

As in stylegan2-ada's metric names, a number is never quoted without its protocol: every metric
key is `PROTOCOL/metric` (`p0/fid`, `proxy/recall_k5`), and reports print the protocol beside it.
Reported numbers are against the 10,000 MNIST test images; choices made from scores (a model's default
latent spread) are made against MNIST train's held-out tail instead, so the test set stays unseen by them.
"""

from __future__ import annotations

from dataclasses import dataclass

REFERENCE_SET = "MNIST test (10,000 images)"
# Bump when the pixels fed to a feature network change: it is part of every cached reference's key.
PREPROCESSING_VERSION = 1


@dataclass(frozen=True)
class Protocol:
    name: str
    features: str  # the feature extractor's registry name (features.EXTRACTORS)
    summary: str
    samples: int = 10_000  # generated images scored
    ks: tuple[int, ...] = (3, 5)  # k of improved precision/recall, density and coverage

    @property
    def min_samples(self) -> int:
        """k-NN radii need k neighbours besides the point itself."""
        return max(self.ks) + 1

    def key(self, metric: str) -> str:
        return f"{self.name}/{metric}"


PROTOCOLS: dict[str, Protocol] = {
    "p0": Protocol(
        "p0",
        "inception-pool3",
        "P0: pytorch-fid Inception pool3 (2048-d) on grey repeated to 3 channels, [0, 1], "
        "pytorch-fid's resize; 10,000 samples vs MNIST test 10k",
    ),
    "proxy": Protocol(
        "proxy",
        "mnist-classifier",
        "proxy: features (64-d) of the project's MNIST classifier; for monitoring, not comparable with P0",
    ),
}
