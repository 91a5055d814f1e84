"""Every preset trains on real MNIST; resume is exact; priors, constraints and presets behave."""

from __future__ import annotations

import json
import math

import pytest
import torch

from training.checkpoint import load_checkpoint
from training.config import load_run_config, resolve
from training.models import (
    AffineInputCritic,
    ConvCritic,
    ConvGenerator,
    MLPCritic,
    MLPGenerator,
    converge_spectral_norms,
)
from training.objectives import GradientPenalty, gradient_penalty
from training.presets import PRESETS
from training.trainer import CHECKPOINT_NAME, Trainer, TrainingError, learning_rate_scale, train

from .conftest import tiny_overrides


def make_trainer(tmp_path, data_root, variant, **extra):
    cfg = resolve(variant, tiny_overrides(**extra))
    run_dir = tmp_path / variant
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, run_dir, data_root, quiet=True)


@pytest.mark.parametrize("variant", list(PRESETS))
def test_every_preset_trains_with_finite_losses_and_a_checkpoint(tmp_path, data_root, variant):
    trainer = make_trainer(tmp_path, data_root, variant)
    record = train(trainer)
    for key in ("loss_d", "loss_g", "wasserstein", "d_real", "d_fake", "g_grad_norm"):
        assert math.isfinite(record[key]), (key, record)
    assert record["g_grad_norm"] > 0
    tensors, state = load_checkpoint(trainer.run_dir / CHECKPOINT_NAME)
    assert state["epoch"] == 1 and state["config"]["variant"] == variant
    assert any(name.startswith("generator.") for name in tensors)
    assert (trainer.run_dir / "samples" / "epoch_0001.png").stat().st_size > 0
    assert (trainer.run_dir / "plots" / "diagnostics.png").exists()
    lines = (trainer.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]


@pytest.mark.parametrize(
    "variant, arch, critic_arch, critic_depth",
    [("wgan_gp_cond", "conv", "same", 2), ("wgan_sn", "conv", "same", 1), ("wgan_gp_cond", "mlp", "conv", 1)],
)
def test_conv_architecture_trains(tmp_path, data_root, variant, arch, critic_arch, critic_depth):
    trainer = make_trainer(
        tmp_path,
        data_root,
        variant,
        arch=arch,
        critic_arch=critic_arch,
        conv_width=8,
        ema_decay=0.9,
        critic_depth=critic_depth,
    )
    assert isinstance(trainer.critic, ConvCritic)
    convs = [m for m in trainer.critic.features if isinstance(m, torch.nn.Conv2d)]
    assert [conv.kernel_size for conv in convs] == [(4, 4), *[(3, 3)] * (critic_depth - 1)] * 2
    assert isinstance(trainer.generator.network, ConvGenerator if arch == "conv" else MLPGenerator)
    record = train(trainer)
    assert math.isfinite(record["loss_d"]) and math.isfinite(record["loss_g"])
    images = trainer.sampling_generator()(torch.randn(5, 100), torch.arange(5))
    assert images.shape == (5, 1, 28, 28) and images.abs().max() <= 1


def _weights(run_dir):
    tensors, state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    return tensors, state


@pytest.mark.parametrize("variant", ["wgan_gp_cond", "gmgan_dynamic", "wgan_wc"])  # wgan_wc: RMSProp state
def test_resume_is_bit_identical(tmp_path, data_root, variant):
    extra = dict(epochs=2, ema_decay=0.5)
    straight = make_trainer(tmp_path / "straight", data_root, variant, **extra)
    train(straight)

    first = make_trainer(tmp_path / "resumed", data_root, variant, **extra)
    first.cfg.epochs = 1
    train(first)
    second = make_trainer(tmp_path / "resumed", data_root, variant, **extra)
    train(second, resume=True)

    a, state_a = _weights(straight.run_dir)
    b, state_b = _weights(second.run_dir)
    assert state_a["epoch"] == state_b["epoch"] == 2
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("stop_after_blocks", [4, 6], ids=["at-epoch-boundary", "mid-epoch"])
def test_stop_signal_checkpoints_and_resumes_exactly(tmp_path, data_root, stop_after_blocks):
    # 8 critic steps = 4 blocks per epoch; the mid-epoch stop falls inside the learning-rate decay
    extra = dict(epochs=2, n_critic=2, lr_decay_start=1)
    straight = make_trainer(tmp_path / "straight", data_root, "wgan_gp", **extra)
    train(straight)

    interrupted = make_trainer(tmp_path / "stopped", data_root, "wgan_gp", **extra)
    blocks = {"count": 0}
    original = interrupted._generator_step

    def stop_after(labels):
        original(labels)
        blocks["count"] += 1
        if blocks["count"] == stop_after_blocks:
            interrupted.stop_signal = 15

    interrupted._generator_step = stop_after
    from training.trainer import Interrupted

    with pytest.raises(Interrupted):
        train(interrupted)
    _, state = _weights(interrupted.run_dir)
    assert state["epoch"] == 1 and state["step"] == (0 if stop_after_blocks == 4 else 4)

    resumed = make_trainer(tmp_path / "stopped", data_root, "wgan_gp", **extra)
    train(resumed, resume=True)
    a, _ = _weights(straight.run_dir)
    b, _ = _weights(resumed.run_dir)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    epochs = [json.loads(line)["epoch"] for line in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


@pytest.mark.parametrize(
    "progress, decay_start, epochs, expected",
    [
        (0.0, 0, 10, 1.0),
        (9.9, 0, 10, 1.0),  # no decay
        (6.0, 6, 10, 1.0),
        (7.0, 6, 10, 0.75),
        (9.5, 6, 10, 0.125),
        (10.0, 6, 10, 0.0),
    ],
)
def test_learning_rate_is_constant_then_falls_linearly_to_zero(progress, decay_start, epochs, expected):
    assert learning_rate_scale(progress, decay_start, epochs) == pytest.approx(expected)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data_root):
    trainer = make_trainer(tmp_path, data_root, "wgan_gp", epochs=1)
    train(trainer)
    good = (trainer.run_dir / CHECKPOINT_NAME).read_bytes()

    again = make_trainer(tmp_path, data_root, "wgan_gp", epochs=3)
    loss = again.objective.critic_loss
    again.objective.critic_loss = lambda d_real, d_fake: loss(d_real, d_fake) * float("nan")
    with pytest.raises(TrainingError, match="non-finite loss in epoch 2"):
        train(again, resume=True)
    assert (trainer.run_dir / CHECKPOINT_NAME).read_bytes() == good


def test_static_mixture_means_stay_in_box_and_fixed(tmp_path, data_root):
    trainer = make_trainer(tmp_path, data_root, "gmgan_static")
    means = trainer.prior.means.clone()
    c = trainer.cfg.mixture_radius
    assert means.shape == (10, 100) and means.abs().max() <= c
    assert means.std() > c / 10  # spread over the box, not all zero
    train(trainer)
    assert torch.equal(trainer.prior.means, means)
    assert torch.allclose(trainer.prior.log_sigma.exp(), torch.full((10, 100), 0.15))


@pytest.mark.parametrize("variant", ["gmgan_dynamic", "wgan_gp_cond", "wgan_gp_gmm_cond"])
def test_learned_prior_parameters_receive_gradients(tmp_path, data_root, variant):
    trainer = make_trainer(tmp_path, data_root, variant)
    before = {name: p.detach().clone() for name, p in trainer.prior.named_parameters()}
    assert set(before) == {"means", "log_sigma"}
    labels = torch.arange(10).repeat(4)
    trainer._generator_step(labels)
    for name, param in trainer.prior.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        assert not torch.equal(param.detach(), before[name]), name


def test_weight_clipping_keeps_every_critic_weight_in_bounds(tmp_path, data_root):
    trainer = make_trainer(tmp_path, data_root, "wgan_wc", lr_d=0.05)  # a large lr pushes weights out
    record = train(trainer)
    c = trainer.cfg.clip_value
    for param in trainer.critic.parameters():
        assert param.abs().max() <= c
    assert 0 < record["clip_saturation"] <= 1
    # Per layer: the MLP critic's four Linear layers, input first, each its own share of weights at +-c.
    linears = [m for m in trainer.critic.modules() if isinstance(m, torch.nn.Linear)]
    per_layer = [record[f"clip_saturation_layer{i}"] for i in range(1, len(linears) + 1)]
    assert len(linears) == 4 and f"clip_saturation_layer{len(linears) + 1}" not in record
    for share, layer in zip(per_layer, linears, strict=True):
        at_bound = sum(int((p.abs() >= c * (1 - 1e-6)).sum()) for p in layer.parameters())
        assert share == at_bound / sum(p.numel() for p in layer.parameters())
    sizes = [sum(p.numel() for p in layer.parameters()) for layer in linears]
    assert record["clip_saturation"] == pytest.approx(
        sum(s * n for s, n in zip(per_layer, sizes, strict=True)) / sum(sizes)
    )


def test_wgan_wc_trains_with_rmsprop_and_others_with_adam(tmp_path, data_root):
    assert isinstance(make_trainer(tmp_path, data_root, "wgan_wc").opt_d, torch.optim.RMSprop)
    adam = make_trainer(tmp_path, data_root, "wgan_gp").opt_d
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["betas"] == (0.5, 0.9)
    assert isinstance(make_trainer(tmp_path, data_root, "wgan_wc", optimizer="adam").opt_g, torch.optim.Adam)


def test_run_config_without_an_optimizer_field_was_trained_with_adam(tmp_path):
    saved = resolve("wgan_wc", {}).to_dict()
    del saved["optimizer"]  # config.json of a run from before the option existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert load_run_config(tmp_path).optimizer == "adam"


class LinearCritic(AffineInputCritic):
    """D(x) = w . x: its gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def input_layer(self, x, labels):
        return x.flatten(1) @ self.w[:, None]

    def rest(self, activations, labels):
        return activations.squeeze(1)

    def input_layer_vjp(self, grad_activations):
        return (grad_activations @ self.w[None, :]).view(-1, 1, 28, 28)


def _penalty(critic, real, fake, labels, seed=0):
    activations = critic.input_layer(torch.cat([real, fake]), labels.repeat(2)).split(real.shape[0])
    return GradientPenalty(10.0).penalty(
        critic,
        activations,
        labels,
        lambda rows: torch.rand(rows, generator=torch.Generator().manual_seed(seed)),
        torch.autocast("cpu", enabled=False),
    )


def test_gradient_penalty_matches_hand_computed_cases():
    torch.manual_seed(0)
    w = torch.randn(784)
    real, fake, labels = torch.randn(16, 1, 28, 28), torch.randn(16, 1, 28, 28), torch.zeros(16, dtype=torch.long)
    # D(x) = w . x: penalty = lambda (||w|| - 1)^2 whatever the interpolates
    assert torch.allclose(_penalty(LinearCritic(w), real, fake, labels), 10.0 * (w.norm() - 1) ** 2, rtol=1e-5)
    # D(x) = 0.5 ||x||^2 has gradient x: the reference formula gives mean (||x|| - 1)^2
    x = torch.randn(8, 3, requires_grad=True)
    expected = ((x.detach().norm(dim=1) - 1) ** 2).mean()
    assert torch.allclose(gradient_penalty(0.5 * (x**2).sum(dim=1), x), expected, rtol=1e-5)


def test_conv_critic_scores_depend_on_the_label_through_its_projection():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    conditional, plain = ConvCritic(num_labels=10, width=8), ConvCritic(width=8)
    zeros, nines = torch.zeros(4, dtype=torch.long), torch.full((4,), 9)
    assert not torch.allclose(conditional(images, zeros), conditional(images, nines))
    conditional(images, nines).sum().backward()
    assert conditional.label_projection.weight.grad[9].abs().sum() > 0
    assert conditional.label_projection.weight.grad[0].abs().sum() == 0
    assert plain.label_projection is None and torch.equal(plain(images, zeros), plain(images, nines))


@pytest.mark.parametrize(
    "critic_factory",
    [
        lambda: MLPCritic(),
        lambda: MLPCritic(num_labels=10),
        lambda: ConvCritic(num_labels=10, width=8),
        lambda: ConvCritic(num_labels=10, width=8, depth=3),
    ],
    ids=["mlp", "mlp-conditional", "conv-conditional", "conv-conditional-deeper"],
)
def test_gradient_penalty_from_activations_equals_explicit_interpolates(critic_factory):
    """The affine shortcut gives the textbook penalty and the same critic gradients."""
    torch.manual_seed(0)
    critic = critic_factory()
    real, fake = torch.rand(12, 1, 28, 28) * 2 - 1, torch.rand(12, 1, 28, 28) * 2 - 1
    labels = torch.randint(10, (12,))

    shortcut = _penalty(critic, real, fake, labels, seed=3)
    shortcut_grads = torch.autograd.grad(shortcut, list(critic.parameters()), allow_unused=True)

    mix = torch.rand(12, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    x_hat = (mix * real + (1 - mix) * fake).requires_grad_(True)
    textbook = 10.0 * gradient_penalty(critic(x_hat, labels), x_hat)
    textbook_grads = torch.autograd.grad(textbook, list(critic.parameters()), allow_unused=True)

    assert torch.allclose(shortcut, textbook, rtol=1e-5, atol=1e-6)
    for a, b in zip(shortcut_grads, textbook_grads, strict=True):
        if b is None:
            assert a is None or a.abs().max() == 0
        else:
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_spectral_norm_layers_have_unit_spectral_norm(tmp_path, data_root):
    for arch in ("mlp", "conv"):
        trainer = make_trainer(tmp_path / arch, data_root, "wgan_sn", arch=arch, conv_width=8)
        train(trainer)
        converge_spectral_norms(trainer.critic)  # what export does before it freezes the critic
        trainer.critic.eval()
        layers = [m for m in trainer.critic.modules() if hasattr(m, "parametrizations")]
        assert len(layers) == 4
        for layer in layers:
            weight = layer.weight.detach().flatten(1)
            assert torch.linalg.matrix_norm(weight, 2) <= 1 + 1e-3


def test_presets_carry_the_seed_values():
    def cfg(name):
        return resolve(name, {})

    vanilla = cfg("vanilla")
    assert (
        vanilla.prior,
        vanilla.objective,
        vanilla.lr_g,
        vanilla.lr_d,
        vanilla.batch_size,
        vanilla.epochs,
        vanilla.n_critic,
        vanilla.arch,
        vanilla.latent_dim,
    ) == ("normal", "bce", 2e-4, 2e-4, 64, 100, 1, "mlp", 100)
    static = cfg("gmgan_static")
    assert (static.prior, static.num_components, static.mixture_radius, static.mixture_sigma, static.epochs) == (
        "gmm_static",
        10,
        0.1,
        0.15,
        90,
    )
    assert (cfg("gmgan_dynamic").prior, cfg("gmgan_dynamic").num_components) == ("gmm_dynamic", 10)
    wc = cfg("wgan_wc")
    assert (wc.objective, wc.lipschitz, wc.clip_value, wc.n_critic) == ("wasserstein", "clip", 0.09, 5)
    gp = cfg("wgan_gp")
    assert (gp.lipschitz, gp.gp_lambda, gp.n_critic, gp.lr_g, gp.lr_d, gp.batch_size, gp.epochs) == (
        "gp",
        10.0,
        5,
        1e-4,
        1e-4,
        64,
        100,
    )
    assert (cfg("wgan_sn").lipschitz, cfg("wgan_sn").gp_lambda) == ("sn", 10.0)
    cond = cfg("wgan_gp_cond")
    assert (
        cond.prior,
        cond.n_critic,
        cond.gp_lambda,
        cond.lr_g,
        cond.batch_size,
        cond.epochs,
        cond.condition_critic,
        cond.condition_generator,
    ) == ("class_gaussian", 3, 10.0, 1e-4, 64, 600, True, False)
    gmm_cond = cfg("wgan_gp_gmm_cond")
    assert (gmm_cond.prior, gmm_cond.num_components, gmm_cond.condition_generator, gmm_cond.condition_critic) == (
        "gmm_indexed",
        10,
        True,
        True,
    )


def test_training_curves_expand_prefixed_keys_and_drop_panels_with_nothing_logged(tmp_path):
    from PIL import Image

    from training.plots import logged_series, plot_training_curves

    records = [
        {
            "epoch": e,
            "loss_d": 1.0 / e,
            "wasserstein": 2.0,
            "clip_saturation_layer1": 0.1 * e,
            "clip_saturation_layer2": 0.2,
        }
        for e in (1, 2)
    ]
    assert logged_series(["clip_saturation_layer*"], records) == {
        "clip_saturation_layer1": [(1, 0.1), (2, 0.2)],
        "clip_saturation_layer2": [(1, 0.2), (2, 0.2)],
    }
    assert logged_series(["penalty", "loss_d"], records) == {"loss_d": [(1, 1.0), (2, 0.5)]}
    with_clipping = plot_training_curves(records, tmp_path / "clip")[1]
    unclipped = [{k: v for k, v in r.items() if "clip" not in k} for r in records]
    without = plot_training_curves(unclipped, tmp_path / "gp")[1]
    # Two panels against one: the clipping panel (5 in at 100 dpi, ~390 px once tightly cropped) is left out.
    assert Image.open(with_clipping).width - Image.open(without).width > 300
