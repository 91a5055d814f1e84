"""DRS calibration (Azadi et al. 2019; docs/artifacts.md) of a trained model, before export.

1. The critic is frozen. A sigmoid head D~(x) = scale * s(x) + bias on its raw score s(x) is fitted
   with BCE on held-out real MNIST images (label 1: the run's held-out tail of MNIST train, never
   trained on and never the test set P0 scores against) against as many generated images (label 0).
2. D~_M = max D~ over a burn-in of generated images (>= 10,000 from the CLI).
3. F = D~ - D~_M - log(1 - exp(D~ - D~_M - eps)) on the burn-in sample; for each target acceptance
   rate, gamma is solved so the mean of sigmoid(F - gamma) over the burn-in equals the rate
   (per digit as well for conditional models, so `--digit 3 --drs 0.2` accepts 20 % of threes).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from common.drs import EPSILON, RATE_GRID, drs_f, gamma_table
from common.manifest import DrsCalibration
from training.data import to_signed_unit
from training.models import GeneratorBundle
from training.priors import NUM_DIGITS

MIN_BURN_IN = 10_000  # SPEC: D~_M over a burn-in of at least 10k samples
# A little L2 on the standardised slope keeps the fit finite when real and fake separate perfectly.
HEAD_L2 = 1e-4
_BATCH = 1000
HEAD = "logit = scale * raw critic score + bias (BCE fit, frozen critic)"  # what the manifest says the head is


@torch.no_grad()
def critic_scores(critic: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Raw critic scores (float64) of images in [-1, 1], in batches."""
    return (
        torch.cat([critic(images[i : i + _BATCH], labels[i : i + _BATCH]) for i in range(0, len(images), _BATCH)])
        .double()
        .numpy()
    )


def sample_labels(generator: GeneratorBundle, n: int, rng: torch.Generator) -> torch.Tensor:
    """Labels as the runtime samples freely: every digit equally often, mixture weights, or none."""
    prior = generator.prior
    if prior.labels_are_digits:
        return torch.arange(n) % NUM_DIGITS
    if prior.num_labels:
        return torch.multinomial(prior.label_weights(), n, replacement=True, generator=rng)
    return torch.zeros(n, dtype=torch.long)


@torch.no_grad()
def generated_scores(
    generator: GeneratorBundle, critic: nn.Module, n: int, rng: torch.Generator, latent_dim: int, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(raw critic scores, labels) of n generated images."""
    labels = sample_labels(generator, n, rng)
    scores = []
    for start in tqdm(range(0, n, _BATCH), desc="DRS calibration", unit="batch", disable=not progress, leave=False):
        batch = labels[start : start + _BATCH]
        eps = torch.randn(len(batch), latent_dim, generator=rng)
        scores.append(critic(generator(eps, batch), batch))
    return torch.cat(scores).double().numpy(), labels.numpy()


def fit_logistic_head(real_scores: np.ndarray, fake_scores: np.ndarray) -> tuple[float, float, dict]:
    """(scale, bias, fit statistics) of the BCE-trained head sigmoid(scale * s + bias): real 1, fake 0."""
    scores = torch.from_numpy(np.concatenate([real_scores, fake_scores]))
    targets = torch.cat([torch.ones(len(real_scores)), torch.zeros(len(fake_scores))]).double()
    center, spread = scores.mean(), scores.std().clamp_min(1e-12)
    standard = (scores - center) / spread  # standardised so one L2 weight suits every critic's scale
    weights = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # slope, intercept
    optimizer = torch.optim.LBFGS(
        [weights], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def loss_fn():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(weights[0] * standard + weights[1], targets)
        loss = loss + HEAD_L2 * weights[0] ** 2
        loss.backward()
        return loss

    optimizer.step(loss_fn)
    slope, intercept = weights.detach().tolist()
    scale = slope / float(spread)
    bias = intercept - scale * float(center)
    logits = scale * scores + bias
    fit = {
        "real_images": len(real_scores),
        "generated_images": len(fake_scores),
        "bce": float(F.binary_cross_entropy_with_logits(logits, targets)),
        "accuracy": float(((logits > 0).double() == targets).double().mean()),
        "mean_logit_real": float(logits[: len(real_scores)].mean()),
        "mean_logit_generated": float(logits[len(real_scores) :].mean()),
    }
    return scale, bias, fit


def calibrate(
    generator: GeneratorBundle,
    critic: nn.Module,
    real_images: np.ndarray,
    real_labels: np.ndarray,
    latent_dim: int,
    burn_in: int = MIN_BURN_IN,
    seed: int = 0,
    progress: bool = False,
) -> DrsCalibration:
    """Fit the head, estimate D~_M and solve the gamma tables. `critic` must already be frozen.

    real_images: uint8 [N, 28, 28] held-out MNIST train images; real_labels: their digits.
    """
    rng = torch.Generator().manual_seed(seed)
    real_scores = critic_scores(critic, to_signed_unit(real_images), torch.from_numpy(real_labels).long())
    fake_scores, _ = generated_scores(generator, critic, len(real_images), rng, latent_dim, progress)
    scale, bias, fit = fit_logistic_head(real_scores, fake_scores)

    burn_scores, burn_labels = generated_scores(generator, critic, burn_in, rng, latent_dim, progress)
    logits = scale * burn_scores + bias
    max_logit = float(logits.max())
    f = drs_f(logits, max_logit, EPSILON)
    by_digit = None
    if generator.prior.labels_are_digits:
        by_digit = [gamma_table(f[burn_labels == digit]) for digit in range(NUM_DIGITS)]
    return DrsCalibration(
        HEAD, scale, bias, max_logit, EPSILON, burn_in, list(RATE_GRID), gamma_table(f), by_digit, fit
    )
