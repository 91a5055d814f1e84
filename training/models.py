"""Generators and critics: the course template's MLPs (`mlp`) and a small DCGAN-style pair (`conv`).

Conditioning is by a label embedding concatenated to the input (G: to z; critic: to the image for
the MLP, to the conv features before the non-linear head for the conv critic, so the label can
interact with the image and not only shift the score).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from .priors import Prior

IMAGE_SHAPE = (1, 28, 28)
IMAGE_SIZE = 28 * 28
# SN-GAN's one power iteration per training forward; the estimate then lags the weights by a few
# percent (Adam's updates grow the top singular values quickly), so `converge_spectral_norms`
# re-runs the iteration to convergence at init and before a critic is evaluated or exported.
SN_POWER_ITERATIONS = 1
SN_CONVERGE_FORWARDS = 500


def spectral_norm(layer: nn.Module) -> nn.Module:
    return _spectral_norm(layer, n_power_iterations=SN_POWER_ITERATIONS)


def converge_spectral_norms(critic: nn.Module) -> None:
    """Power-iterate every spectral-norm layer to convergence (each train-mode forward does one step)."""
    was_training = critic.training
    critic.train()
    with torch.no_grad():
        probe, labels = torch.zeros(1, *IMAGE_SHAPE), torch.zeros(1, dtype=torch.long)
        probe = probe.to(next(critic.parameters()).device)
        for _ in range(SN_CONVERGE_FORWARDS):
            critic(probe, labels.to(probe.device))
    critic.train(was_training)


class LabelConcat(nn.Module):
    """Concatenates an embedding of the label to a flat input; identity when num_labels == 0."""

    def __init__(self, num_labels: int, embed_dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_labels, embed_dim) if num_labels else None
        self.extra_features = embed_dim if num_labels else 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return x if self.embed is None else torch.cat([x, self.embed(labels)], dim=1)


class MLPGenerator(nn.Module):
    """Linear(100,256) LReLU Linear(256,512) LReLU Linear(512,1024) LReLU Linear(1024,784) tanh."""

    def __init__(self, latent_dim: int, num_labels: int = 0, embed_dim: int = 10):
        super().__init__()
        self.condition = LabelConcat(num_labels, embed_dim)
        self.net = nn.Sequential(
            nn.Linear(latent_dim + self.condition.extra_features, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, 512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 1024),
            nn.LeakyReLU(0.2),
            nn.Linear(1024, IMAGE_SIZE),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(self.condition(z, labels)).view(-1, *IMAGE_SHAPE)


class AffineInputCritic(nn.Module):
    """A critic whose first operation is affine in the image: D(x) = rest(input_layer(x)).

    Because input_layer is affine, input_layer(e x + (1 - e) y) = e input_layer(x) + (1 - e) input_layer(y),
    so WGAN-GP's interpolates reuse the real and fake activations instead of another pass through the
    largest layer, and grad_x D = input_layer_vjp(grad of rest).
    """

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.rest(self.input_layer(x, labels), labels)

    def input_layer(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def rest(self, activations: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def input_layer_vjp(self, grad_activations: torch.Tensor) -> torch.Tensor:
        """grad_x from grad_{input_layer(x)}: the transpose of the input layer's linear part."""
        raise NotImplementedError


class MLPCritic(AffineInputCritic):
    """Linear(784,1024) LReLU Linear(1024,512) LReLU Linear(512,256) LReLU -> h; D = Linear(h, 1), no sigmoid."""

    HIDDEN = 256

    def __init__(self, num_labels: int = 0, embed_dim: int = 10, use_spectral_norm: bool = False):
        super().__init__()
        self.condition = LabelConcat(num_labels, embed_dim)
        norm = spectral_norm if use_spectral_norm else (lambda layer: layer)
        self.net = nn.Sequential(
            norm(nn.Linear(IMAGE_SIZE + self.condition.extra_features, 1024)),
            nn.LeakyReLU(0.2),
            norm(nn.Linear(1024, 512)),
            nn.LeakyReLU(0.2),
            norm(nn.Linear(512, 256)),
            nn.LeakyReLU(0.2),
            norm(nn.Linear(256, 1)),
        )

    def input_layer(self, x, labels):
        return self.net[0](self.condition(x.flatten(1), labels))

    def rest(self, activations, labels):
        return self.net[1:](activations).squeeze(1)

    def hidden(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The last hidden layer h [N, HIDDEN], which the score is linear in (DRS feature heads read it)."""
        return self.net[1:-1](self.input_layer(x, labels))

    def input_layer_vjp(self, grad_activations):
        image_weight = self.net[0].weight[:, :IMAGE_SIZE]  # the label columns do not depend on x
        return (grad_activations @ image_weight).view(-1, *IMAGE_SHAPE)


class ConvGenerator(nn.Module):
    """DCGAN-style: z -> 4w x 7 x 7 -> 2w x 14 x 14 -> w x 28 x 28 -> 1 x 28 x 28, tanh."""

    def __init__(self, latent_dim: int, num_labels: int = 0, embed_dim: int = 10, width: int = 32):
        super().__init__()
        self.condition = LabelConcat(num_labels, embed_dim)
        self.width = width
        self.project = nn.Sequential(
            nn.Linear(latent_dim + self.condition.extra_features, 4 * width * 7 * 7),
            nn.BatchNorm1d(4 * width * 7 * 7),
            nn.ReLU(),
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 1, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = self.project(self.condition(z, labels))
        return self.net(features.view(-1, 4 * self.width, 7, 7))


class ConvCritic(AffineInputCritic):
    """Conv(1,w,4,2,1) LReLU Conv(w,2w,4,2,1) LReLU Linear(2w*7*7, 256) LReLU -> h; D = Linear(h, 1) + <e_y, h>.

    With depth > 1, each strided conv is followed by depth - 1 more 3x3 convs at its resolution (a
    deeper critic for the same receptive-field schedule); depth 1 is the DCGAN-style critic above.
    The label enters as a projection (Miyato & Koyama 2018, e_y a learned 256-d embedding) rather than
    concatenated to the features: with concatenation the conv critic ignored the label (a conditional
    run scored 14 % label accuracy after 10 epochs, the MLP critic 73 %). No batch norm: it would couple
    the rows of a batch and break the per-sample gradient penalty.
    """

    HIDDEN = 256

    def __init__(self, num_labels: int = 0, width: int = 32, use_spectral_norm: bool = False, depth: int = 1):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else (lambda layer: layer)

        def scale(channels_in: int, channels_out: int) -> list[nn.Module]:
            layers = [norm(nn.Conv2d(channels_in, channels_out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            for _ in range(depth - 1):
                layers += [norm(nn.Conv2d(channels_out, channels_out, 3, 1, 1)), nn.LeakyReLU(0.2)]
            return layers

        self.features = nn.Sequential(
            *scale(1, width),
            *scale(width, 2 * width),
            nn.Flatten(),
            norm(nn.Linear(2 * width * 7 * 7, self.HIDDEN)),
            nn.LeakyReLU(0.2),
        )
        self.output = norm(nn.Linear(self.HIDDEN, 1))
        self.label_projection = norm(nn.Embedding(num_labels, self.HIDDEN)) if num_labels else None

    def input_layer(self, x, labels):
        return self.features[0](x)

    def rest(self, activations, labels):
        hidden = self.features[1:](activations)
        score = self.output(hidden).squeeze(1)
        if self.label_projection is not None:
            score = score + (self.label_projection(labels) * hidden).sum(1)
        return score

    def hidden(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The last hidden layer h [N, HIDDEN], which the score is linear in (DRS feature heads read it)."""
        return self.features(x)

    def input_layer_vjp(self, grad_activations):
        conv = self.features[0]
        return F.conv_transpose2d(grad_activations, conv.weight, stride=conv.stride, padding=conv.padding)


class GeneratorBundle(nn.Module):
    """Prior + generator network: image = G(prior(eps, label), label). What EMA averages and export reads."""

    def __init__(self, prior: Prior, network: nn.Module):
        super().__init__()
        self.prior = prior
        self.network = network

    def forward(self, eps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.network(self.prior(eps, labels), labels)


def build_models(cfg, prior: Prior, use_spectral_norm: bool) -> tuple[GeneratorBundle, nn.Module]:
    """The generator bundle and critic for a resolved config."""
    g_labels = prior.num_labels if cfg.condition_generator else 0
    d_labels = prior.num_labels if cfg.condition_critic else 0
    if cfg.arch == "mlp":
        network = MLPGenerator(cfg.latent_dim, g_labels, cfg.label_embed_dim)
    else:
        network = ConvGenerator(cfg.latent_dim, g_labels, cfg.label_embed_dim, cfg.conv_width)
    if cfg.critic_architecture == "mlp":
        critic = MLPCritic(d_labels, cfg.label_embed_dim, use_spectral_norm)
    else:
        critic = ConvCritic(d_labels, cfg.conv_width, use_spectral_norm, cfg.critic_depth)
    if use_spectral_norm:
        converge_spectral_norms(critic)
    return GeneratorBundle(prior, network), critic
