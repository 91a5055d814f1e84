"""Adversarial objectives, the critic's Lipschitz constraints and the optimisers, each a small registry entry.

The critic always outputs a raw score (a logit for BCE): the template's final sigmoid is folded
into the numerically stable `softplus` form of binary cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Objective:
    """Critic and generator losses from critic scores of real and generated images."""

    name = "base"

    def critic_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean_score(self, scores: torch.Tensor) -> torch.Tensor:
        """What the diagnostics call mean D(x): a probability for BCE, the raw score otherwise."""
        return scores.mean()


class BCEObjective(Objective):
    """The course template: BCE critic, non-saturating generator loss -log D(G(z))."""

    name = "bce"

    def critic_loss(self, d_real, d_fake):
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def generator_loss(self, d_fake):
        return F.softplus(-d_fake).mean()

    def mean_score(self, scores):
        return torch.sigmoid(scores).mean()


class WassersteinObjective(Objective):
    """L_D = E[D(G(z))] - E[D(x)], L_G = -E[D(G(z))]."""

    name = "wasserstein"

    def critic_loss(self, d_real, d_fake):
        return d_fake.mean() - d_real.mean()

    def generator_loss(self, d_fake):
        return -d_fake.mean()


OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (BCEObjective, WassersteinObjective)}


class LipschitzConstraint:
    """How the critic is kept (approximately) 1-Lipschitz. The default does nothing."""

    name = "none"
    spectral_norm = False  # models wrap their critic layers in spectral normalisation when True

    def penalty(self, critic, activations, labels, uniform, autocast) -> torch.Tensor | None:
        """A term added to the critic loss, from the input-layer activations of real and fake (none by default);
        `uniform(rows)` draws one U[0, 1) number per row from the training noise."""
        return None

    def after_critic_step(self, critic: nn.Module) -> None:
        pass

    def diagnostics(self, critic: nn.Module) -> dict[str, float]:
        return {}


class WeightClipping(LipschitzConstraint):
    """WGAN: every critic parameter clamped to [-c, c] after each critic step."""

    name = "clip"

    def __init__(self, clip_value: float):
        self.clip_value = clip_value

    @torch.no_grad()
    def after_critic_step(self, critic):
        for param in critic.parameters():
            param.clamp_(-self.clip_value, self.clip_value)

    @torch.no_grad()
    def diagnostics(self, critic):
        """Share of critic weights sitting at +-c (the seeds' clipping saturation), overall and per layer,
        input layer first: the seeds saw deeper layers saturate sooner."""
        bound = self.clip_value * (1 - 1e-6)
        layers = [params for module in critic.modules() if (params := list(module.parameters(recurse=False)))]
        at_bound = [sum(int((p.abs() >= bound).sum()) for p in params) for params in layers]
        sizes = [sum(p.numel() for p in params) for params in layers]
        shares = [n / size for n, size in zip(at_bound, sizes, strict=True)]
        per_layer = {f"clip_saturation_layer{i}": share for i, share in enumerate(shares, 1)}
        return {"clip_saturation": sum(at_bound) / sum(sizes), **per_layer}


def gradient_penalty(scores: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """E[(||grad_x D(x)||_2 - 1)^2] over the rows of `inputs` (which must require grad)."""
    (grad,) = torch.autograd.grad(scores.sum(), inputs, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


class GradientPenalty(LipschitzConstraint):
    """WGAN-GP: lambda * E[(||grad D(x_hat)||_2 - 1)^2], x_hat = eps x + (1 - eps) G(z)."""

    name = "gp"

    def __init__(self, weight: float):
        self.weight = weight

    def penalty(self, critic, activations, labels, uniform, autocast):
        """The interpolates' input-layer activations are the same mix of the real and fake ones
        (the layer is affine), so only the layers above it run again; grad_x D comes back
        through the input layer's transpose."""
        real, fake = activations
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        mix = uniform(real.shape[0]).view(shape)
        interpolated = mix * real + (1 - mix) * fake
        with autocast:
            scores = critic.rest(interpolated, labels).float()
        (grad_activations,) = torch.autograd.grad(scores.sum(), interpolated, create_graph=True)
        grad_images = critic.input_layer_vjp(grad_activations)
        return self.weight * (grad_images.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


class SpectralNorm(LipschitzConstraint):
    """SN-GAN: each critic layer divided by its spectral norm (power iteration), no penalty."""

    name = "sn"
    spectral_norm = True


CONSTRAINTS = {
    "none": lambda cfg: LipschitzConstraint(),
    "clip": lambda cfg: WeightClipping(cfg.clip_value),
    "gp": lambda cfg: GradientPenalty(cfg.gp_lambda),
    "sn": lambda cfg: SpectralNorm(),
}


OPTIMIZERS = {
    # Fused: one kernel per step for all parameters instead of one per tensor.
    "adam": lambda params, lr, cfg: torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), fused=True),
    # Arjovsky et al. (2017) train the clipped critic with RMSProp: momentum destabilised it.
    "rmsprop": lambda params, lr, cfg: torch.optim.RMSprop(params, lr=lr),
}
