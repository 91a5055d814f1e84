"""Intensity matching: a monotone tone curve on the generator's output, fitted so that the pixel values
of its samples follow MNIST train's (histogram matching, T = F_real^-1 o F_generated).

Why: a tanh generator leaves a faint haze where MNIST's background is exactly 0 and seldom reaches
MNIST's saturated strokes (252..255): w96 samples have 7.7 % of pixels at 1..19 against 1.4 % in MNIST
train, and 4.6 % at >= 250 against 7.4 %. Inception features see that texture. The curve is a
pixel-wise map fitted on training data only (MNIST train and the model's own samples), baked into the
graphs, so what P0 scores on MNIST test is still what the exported model generates.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.models import GeneratorBundle

from .drs import sample_labels

KNOTS = 257  # a knot every 1/128 of [-1, 1]: finer than the uint8 level (1/127.5) a PNG keeps
FIT_SAMPLES = 10_000
UINT8_LEVELS = 256


class ToneCurve(nn.Module):
    """Piecewise-linear map of [-1, 1] onto itself, knots evenly spaced, values `levels` (non-decreasing)."""

    def __init__(self, levels: torch.Tensor):
        super().__init__()
        self.register_buffer("levels", levels.to(torch.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        intervals = self.levels.shape[0] - 1
        position = ((image + 1) * (intervals / 2)).clamp(0, intervals)
        left = position.floor().clamp(max=intervals - 1)
        index = left.long()
        low, high = self.levels[index], self.levels[index + 1]
        return low + (position - left) * (high - low)


class MatchedGenerator(nn.Module):
    """A generator bundle whose images go through a tone curve; exposes the bundle's prior like the bundle."""

    def __init__(self, generator: GeneratorBundle, curve: ToneCurve):
        super().__init__()
        self.bundle, self.curve = generator, curve
        self.prior = generator.prior

    def forward(self, eps: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.curve(self.bundle(eps, label))


def real_quantiles(real_uint8: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Quantiles in [-1, 1] of the real pixels, each uint8 level v spread evenly over [v - 0.5, v + 0.5] / 255
    (clipped to [0, 1]): a continuous inverse CDF within a level, which rounds back to v where v's mass
    lies, and a jump over levels no pixel takes."""
    counts = np.bincount(np.asarray(real_uint8, dtype=np.uint8).ravel(), minlength=UINT8_LEVELS)
    shares = counts / counts.sum()
    held = np.flatnonzero(counts)
    cdf = np.cumsum(shares)
    probability_knots = np.stack([cdf[held] - shares[held], cdf[held]], axis=1).ravel()
    value_knots = np.clip(np.stack([held - 0.5, held + 0.5], axis=1).ravel() / 255.0, 0.0, 1.0)
    return np.interp(probabilities, probability_knots, value_knots) * 2 - 1


@torch.no_grad()
def fit_tone_curve(
    generator: GeneratorBundle,
    real_uint8: np.ndarray,
    latent_dim: int,
    seed: int,
    samples: int = FIT_SAMPLES,
    batch: int = 1000,
) -> tuple[ToneCurve, dict]:
    """The curve T with T(x) = F_real^-1(F_generated(x)) at every knot, and what the manifest says of the fit."""
    rng = torch.Generator().manual_seed(seed)
    prior = generator.prior
    weights = prior.label_weights() if prior.num_labels else None
    labels = sample_labels(
        prior.labels_are_digits, weights, samples, rng
    )  # the model's own class sampling, as DRS calibration's
    values = (
        torch.cat(
            [
                generator(torch.randn(len(chunk), latent_dim, generator=rng), chunk).flatten()
                for chunk in labels.split(batch)
            ]
        )
        .sort()
        .values
    )
    knots = torch.linspace(-1, 1, KNOTS, dtype=values.dtype)
    below = torch.searchsorted(values, knots, right=True).double().numpy() / values.numel()
    levels = torch.from_numpy(real_quantiles(real_uint8, below))
    fit = {
        "method": "histogram matching of pixel values to MNIST train (T = F_real^-1 o F_generated)",
        "knots": KNOTS,
        "generated_samples": samples,
        "seed": seed,
        "real_images": int(len(real_uint8)),
        "zero_share_before": float((values <= -1 + 1 / 255).double().mean()),
        "zero_share_real": float((np.asarray(real_uint8) == 0).mean()),
    }
    return ToneCurve(levels), fit
