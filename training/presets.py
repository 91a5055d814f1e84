"""One preset per variant: its hyperparameters, its prior and its objective, stated once.

Each preset lists only what differs from `TrainConfig`'s defaults (the course template), as
StudioGAN's YAMLs do. Defaults are the seeds' settings (docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    summary: str
    overrides: dict = field(default_factory=dict)


# The WGAN family shares Gulrajani et al.'s Adam settings.
_WGAN = dict(objective="wasserstein", lr_g=1e-4, lr_d=1e-4, beta1=0.5, beta2=0.9)

PRESETS: dict[str, Preset] = {
    "vanilla": Preset(
        "course template: N(0,I) prior, BCE, non-saturating G loss, 1 D step per G step",
        dict(prior="normal", objective="bce"),
    ),
    "gmgan_static": Preset(
        "static GM-GAN: fixed uniform mixture of K Gaussians, mu_k ~ U[-c,c]^d, sigma^2 I",
        dict(prior="gmm_static", num_components=10, mixture_radius=0.1, mixture_sigma=0.15, epochs=90),
    ),
    "gmgan_dynamic": Preset(
        "dynamic GM-GAN: mixture means and per-dimension sigmas learned by reparameterisation",
        dict(prior="gmm_dynamic", num_components=10, mixture_radius=0.1, mixture_sigma=0.15),
    ),
    "wgan_wc": Preset(
        "WGAN with weight clipping to [-c, c], RMSProp (logs the share of weights at +-c, per critic layer)",
        # Arjovsky et al.'s Algorithm 1: RMSProp at lr 5e-5 (docs/training.md: the c sweep with RMSProp and Adam).
        dict(_WGAN, lipschitz="clip", clip_value=0.09, n_critic=5, optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5),
    ),
    "wgan_gp": Preset(
        "WGAN-GP: gradient penalty lambda (||grad D(x_hat)|| - 1)^2 on interpolates",
        dict(_WGAN, lipschitz="gp", gp_lambda=10.0, n_critic=5),
    ),
    "wgan_sn": Preset(
        "WGAN with a spectrally normalised critic, no penalty",
        # 300 epochs: its SN critic learns slowly (proxy FID 90 at epoch 100, 37 at 200, 23 at 300).
        dict(_WGAN, lipschitz="sn", n_critic=5, epochs=300),
    ),
    "wgan_gp_cond": Preset(
        "WGAN-GP with a per-digit learnable prior N(a_i, b_i^2 I); G unchanged; critic D(x, i)",
        dict(
            _WGAN, lipschitz="gp", gp_lambda=10.0, n_critic=3, epochs=600, prior="class_gaussian", condition_critic=True
        ),
    ),
    "wgan_gp_gmm_cond": Preset(
        "WGAN-GP with a learned K-component mixture whose index (the digit) is fed to G and D",
        dict(
            _WGAN,
            lipschitz="gp",
            gp_lambda=10.0,
            n_critic=5,
            prior="gmm_indexed",
            num_components=10,
            condition_generator=True,
            condition_critic=True,
        ),
    ),
}
