"""Latent priors: each maps standard-normal noise `eps` (and a label) to a latent code `z`.

Noise is always drawn as eps ~ N(0, I) outside the prior, so an exported graph can take `eps`
as an input and stay reproducible across runtimes; the prior's own parameters (mixture means,
per-class a_i / b_i) are module parameters or buffers that export reads and bakes in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from common.validation import NUM_DIGITS


class Prior(nn.Module):
    """z = prior(eps, labels). `num_labels` is how many discrete labels the prior draws from."""

    kind: str = "normal"  # the registry name, set by build_prior
    num_labels: int = 0
    # True when labels are MNIST digits (fakes reuse the real batch's labels while training).
    labels_are_digits: bool = False

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    def label_weights(self) -> torch.Tensor:
        """Probability of each label when sampling freely (uniform mixtures / uniform digits)."""
        count = max(self.num_labels, 1)
        return torch.full((count,), 1.0 / count)

    def sample_labels(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        if self.num_labels == 0:
            return torch.zeros(n, dtype=torch.long, device=device)
        return torch.randint(self.num_labels, (n,), generator=generator, device=device)

    def forward(self, eps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return eps


class GaussianMixturePrior(Prior):
    """Uniform mixture of K Gaussians N(mu_k, sigma_k^2 I), mu_k ~ U[-c, c]^d at init (GM-GAN).

    Static: mu_k and a scalar sigma are fixed buffers. Dynamic: mu_k and a per-dimension sigma_k
    are parameters learned by reparameterisation z = mu_k + sigma_k * eps.
    """

    def __init__(
        self,
        latent_dim: int,
        num_components: int,
        radius: float,
        sigma: float,
        learnable: bool,
        labels_are_digits: bool = False,
    ):
        super().__init__(latent_dim)
        self.num_labels = num_components
        self.labels_are_digits = labels_are_digits
        means = (torch.rand(num_components, latent_dim) * 2 - 1) * radius
        log_sigma = torch.full((num_components, latent_dim), math.log(sigma))
        if learnable:
            self.means = nn.Parameter(means)
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("means", means)
            self.register_buffer("log_sigma", log_sigma)

    def forward(self, eps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.means[labels] + self.log_sigma[labels].exp() * eps


class ClassGaussianPrior(Prior):
    """Per-digit learnable N(a_i, b_i^2 I) (Nano Kiwi section 4); a_i, b_i trained via the G loss."""

    num_labels = NUM_DIGITS
    labels_are_digits = True

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.means = nn.Parameter(torch.randn(NUM_DIGITS, latent_dim))
        self.log_sigma = nn.Parameter(torch.zeros(NUM_DIGITS, latent_dim))

    def forward(self, eps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.means[labels] + self.log_sigma[labels].exp() * eps


PriorFactory = Callable[..., Prior]

# name -> factory(latent_dim, num_components, radius, sigma); one line per prior.
PRIORS: dict[str, PriorFactory] = {
    "normal": lambda d, k, c, s: Prior(d),
    "gmm_static": lambda d, k, c, s: GaussianMixturePrior(d, k, c, s, learnable=False),
    "gmm_dynamic": lambda d, k, c, s: GaussianMixturePrior(d, k, c, s, learnable=True),
    "class_gaussian": lambda d, k, c, s: ClassGaussianPrior(d),
    # GANibal 5.3: a learned mixture whose component index is a digit, also fed to G and D.
    "gmm_indexed": lambda d, k, c, s: GaussianMixturePrior(d, k, c, s, learnable=True, labels_are_digits=True),
}


def build_prior(name: str, latent_dim: int, num_components: int, radius: float, sigma: float) -> Prior:
    prior = PRIORS[name](latent_dim, num_components, radius, sigma)
    prior.kind = name
    return prior
