"""Intensity matching: the tone curve, its fit to MNIST train's pixel histogram, and its export."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from common.images import unit_to_uint8
from common.mnist import load_mnist_uint8
from export.artifact import export_run
from export.graphs import freeze_
from export.intensity import KNOTS, MatchedGenerator, ToneCurve, fit_tone_curve, real_quantiles
from runtime.model import GanModel
from training.run import load_trained

from ..conftest import DATA_ROOT
from .conftest import single_torch_thread, train_tiny_run, untrained_models


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_torch_thread():
        yield


@pytest.fixture(scope="module")
def mnist_train() -> np.ndarray:
    return load_mnist_uint8(DATA_ROOT, train=True)[0]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """What P0 scores: (x + 1) / 2, rounded to uint8 as a PNG keeps it."""
    return unit_to_uint8((images.numpy() + 1) / 2)


def pixel_shares(images: np.ndarray) -> tuple[float, float, float]:
    """Shares of pixels at 0 (background), at 1..19 (haze) and at >= 250 (saturated stroke)."""
    return float((images == 0).mean()), float(((images > 0) & (images < 20)).mean()), float((images >= 250).mean())


def test_tone_curve_passes_through_its_knots_and_is_linear_between_them():
    grid = torch.linspace(-1, 1, KNOTS)
    assert torch.allclose(
        ToneCurve(grid)(torch.tensor([-1.0, -0.3, 0.0, 0.77, 1.0])),
        torch.tensor([-1.0, -0.3, 0.0, 0.77, 1.0]),
        atol=1e-6,
    )
    curve = ToneCurve(grid**3)
    assert torch.allclose(curve(grid), grid**3, atol=1e-6)
    step = 2 / (KNOTS - 1)
    midpoint = grid[100] + step / 2
    assert curve(midpoint[None]).item() == pytest.approx(((grid[100] ** 3 + grid[101] ** 3) / 2).item(), abs=1e-6)
    assert curve(torch.tensor([-5.0, 5.0])).tolist() == pytest.approx([-1.0, 1.0])  # held at its ends


def test_real_quantiles_round_back_to_the_levels_that_hold_the_mass():
    images = np.zeros((10, 28, 28), dtype=np.uint8)
    images[8:] = 255  # 80 % black, 20 % white, no grey
    quantiles = real_quantiles(images, np.array([0.0, 0.4, 0.79, 0.81, 0.99, 1.0]))
    levels = np.rint((quantiles + 1) / 2 * 255)
    assert levels.tolist() == [0, 0, 0, 255, 255, 255]
    assert np.all(np.diff(quantiles) >= 0)


class SpreadGenerator(torch.nn.Module):
    """A stand-in for a trained generator: pixel values spread over [-1, 1] (an untrained one paints grey,
    all within one knot interval of the curve), with a real prior."""

    def __init__(self, prior, latent_dim: int):
        super().__init__()
        self.prior = prior
        self.register_buffer("projection", torch.randn(latent_dim, 784, generator=torch.Generator().manual_seed(0)) / 4)

    def forward(self, eps: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return torch.tanh(eps @ self.projection - 1).view(-1, 1, 28, 28)


def test_matching_gives_fresh_samples_the_real_pixel_histogram(mnist_train):
    cfg, untrained, _ = untrained_models("wgan_gp_cond")
    generator = SpreadGenerator(untrained.prior, cfg.latent_dim)
    curve, fit = fit_tone_curve(generator, mnist_train, cfg.latent_dim, seed=0, samples=500, batch=250)
    assert torch.all(curve.levels.diff() >= 0) and curve.levels.shape == (KNOTS,)
    assert fit["knots"] == KNOTS and fit["generated_samples"] == 500 and fit["real_images"] == len(mnist_train)
    fresh = torch.Generator().manual_seed(99)  # not the samples the curve was fitted on
    eps, labels = torch.randn(500, cfg.latent_dim, generator=fresh), torch.arange(500) % 10
    with torch.no_grad():
        before = to_uint8(generator(eps, labels))
        after = to_uint8(MatchedGenerator(generator, curve)(eps, labels))
    real = pixel_shares(mnist_train)
    assert abs(pixel_shares(before)[0] - real[0]) > 0.5  # almost no pixel at exactly 0 before
    for got, want in zip(pixel_shares(after), real, strict=True):
        assert got == pytest.approx(want, abs=0.02)


def test_export_bakes_the_curve_into_the_generator_graph(tmp_path, mnist_train):
    run_dir = train_tiny_run(tmp_path, "wgan_gp_cond")
    out = tmp_path / "matched"
    manifest = export_run(
        run_dir, "onnx", out, DATA_ROOT, burn_in=1000, match_intensities=True, head_kind="score"
    ).to_json()
    assert manifest["intensity_matching"]["knots"] == KNOTS and manifest["intensity_matching"]["seed"] == 0

    trained = load_trained(run_dir)
    generator = freeze_(trained.generator)
    curve, _ = fit_tone_curve(generator, mnist_train, trained.cfg.latent_dim, seed=0)  # the export's fit
    eps = np.random.default_rng(3).standard_normal((300, trained.cfg.latent_dim), dtype=np.float32)
    labels = np.arange(300) % 10
    with torch.no_grad():
        expected = (MatchedGenerator(generator, curve)(torch.from_numpy(eps), torch.from_numpy(labels)) + 1) / 2
    session = ort.InferenceSession(str(out / "generator.onnx"), providers=["CPUExecutionProvider"])
    image, _, _ = session.run(None, {"eps": eps, "label": labels})
    assert np.abs(image - expected.numpy()).max() <= 1e-5

    plain = export_run(run_dir, "onnx", tmp_path / "plain", DATA_ROOT, burn_in=1000, head_kind="score").to_json()
    assert plain["intensity_matching"] is None
    matched_images, _ = GanModel.load(out).generate(300, seed=1)
    plain_images, _ = GanModel.load(tmp_path / "plain").generate(300, seed=1)
    real_zero = pixel_shares(mnist_train)[0]  # one epoch paints grey: closer to MNIST's black, not at it
    assert abs(pixel_shares(matched_images)[0] - real_zero) < abs(pixel_shares(plain_images)[0] - real_zero)
