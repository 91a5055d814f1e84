"""The DRS heads (export/drs.py) on a tiny conditional run with a conv critic: each kind trains and exports with
ONNX = PyTorch, a head rejects what is plainly not a digit, and a shipped-style model re-exported with a new head
(export/reexport.py) keeps its image bytes."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from common.drs import acceptance_probability, drs_f, interpolate_gamma
from common.manifest import SHARED_WEIGHTS_NAME, read_manifest
from common.mnist import load_holdout_set, load_mnist_uint8
from export.artifact import export_run
from export.drs import calibrate, generator_sampler, logits_of
from export.graphs import DrsF, build_graphs, freeze_, onnx_bytes, share_common_weights
from runtime.model import GanModel
from training.data import to_signed_unit
from training.run import load_trained

from ..conftest import DATA_ROOT
from .conftest import single_torch_thread, train_tiny_run
from .test_export import run_export_cli

REAL_IMAGES = 600  # held-out images the heads train on here: 420 train, 90 selection, 90 report
BURN_IN = 2000


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_torch_thread():
        yield


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("runs"), "wgan_gp_cond", critic_arch="conv", conv_width=8)


@pytest.fixture(scope="module")
def frozen(conv_run):
    trained = load_trained(conv_run)
    return trained, freeze_(trained.generator), freeze_(trained.critic)


def real_set():
    images, labels = load_holdout_set(DATA_ROOT)
    return images[:REAL_IMAGES], labels[:REAL_IMAGES]


def is_noise(n: int) -> np.ndarray:
    """Which of n proposals the bad generator replaces: every other run of ten, so half of every digit's."""
    return np.arange(n) // 10 % 2 == 1


def half_noise_sampler():
    """A deliberately bad generator: every other image is uniform noise, the others are perfect (MNIST train images
    outside the held-out tail, of the digit asked for)."""
    images, digits = load_mnist_uint8(DATA_ROOT, train=True)
    pool = to_signed_unit(images[:5000])
    by_digit = [torch.from_numpy(np.flatnonzero(digits[:5000] == digit)) for digit in range(10)]

    def draw(n, rng):
        labels = torch.arange(n) % 10
        rows = torch.stack([by_digit[d][torch.randint(len(by_digit[d]), (), generator=rng)] for d in labels.tolist()])
        noise = torch.from_numpy(is_noise(n))
        drawn = torch.where(noise[:, None, None, None], torch.rand(n, 1, 28, 28, generator=rng) * 2 - 1, pool[rows])
        return drawn, labels

    return draw


@pytest.mark.parametrize("kind", ["features", "finetuned", "classifier"])
def test_a_head_trains_and_exports_with_onnx_equal_to_pytorch(frozen, kind):
    trained, generator, critic = frozen
    sample = generator_sampler(generator, trained.cfg.latent_dim)
    tuned, head, calibration = calibrate(critic, sample, *real_set(), True, 10, kind, BURN_IN, seed=0)
    assert calibration.head_kind == kind and list(calibration.candidates) == [kind]
    assert (calibration.scale is None) == (kind != "finetuned")  # MLP heads have no scale and bias
    assert (tuned is critic) == (kind != "finetuned")  # a fine-tuned head brings its own copy of the critic
    assert 0.5 <= calibration.fit["auc"] <= 1.0 and calibration.fit["real_images"] == 90

    graphs = build_graphs(generator, tuned, head, DrsF(calibration.max_logit))
    files = share_common_weights(
        {role: onnx_bytes(graph, role, trained.cfg.latent_dim, {}) for role, graph in graphs.items()}
    )
    options = ort.SessionOptions()
    shared = files[SHARED_WEIGHTS_NAME]
    options.add_external_initializers_from_files_in_memory([SHARED_WEIGHTS_NAME], [shared], [len(shared)])
    sessions = {role: ort.InferenceSession(files[role], options) for role in graphs}

    rng = np.random.default_rng(0)
    eps = rng.standard_normal((300, trained.cfg.latent_dim), dtype=np.float32)
    labels = np.arange(300) % 10
    with torch.no_grad():
        images = generator(torch.from_numpy(eps), torch.from_numpy(labels))
    # The generator graph caps D~ at D~_M (export/graphs.py DrsF), so the runtime's running maximum stays put; the
    # critic graph (`score`) does not.
    uncapped = logits_of(tuned, head, images, torch.from_numpy(labels))
    expected = np.minimum(uncapped, np.float32(calibration.max_logit))
    image, logit, f = sessions["generator"].run(None, {"eps": eps, "label": labels})
    assert np.abs(image - ((images + 1) / 2).numpy()).max() <= 1e-5
    # F is checked against F of the graph's own logit: near D~_M, F's slope turns a float32 ulp of D~ into ~1e-5.
    assert np.abs(logit - expected).max() <= 1e-5
    assert np.abs(f - drs_f(logit, calibration.max_logit)).max() <= 1e-5
    critic_logit, critic_f = sessions["critic"].run(None, {"image": image, "label": labels})
    assert np.abs(critic_logit - uncapped).max() <= 1e-5
    assert np.abs(critic_f - drs_f(critic_logit, calibration.max_logit)).max() <= 1e-5


@pytest.mark.parametrize("kind", ["features", "finetuned", "classifier"])
def test_drs_at_half_rejects_the_noise_of_a_bad_generator_and_keeps_its_rate(frozen, kind):
    trained, generator, critic = frozen
    sample = half_noise_sampler()
    tuned, head, calibration = calibrate(critic, sample, *real_set(), True, 10, kind, BURN_IN, seed=0)

    images, labels = sample(4000, torch.Generator().manual_seed(7))  # fresh proposals, not the burn-in
    f = drs_f(logits_of(tuned, head, images, labels), calibration.max_logit)
    noise = is_noise(len(f))
    for rate in (0.5, 0.2):
        gamma = np.array([interpolate_gamma(calibration.rates, table, rate) for table in calibration.gamma_by_digit])
        accepted = acceptance_probability(f, gamma[labels.numpy()])
        assert accepted.mean() == pytest.approx(rate, abs=0.05)
        if rate == 0.5:
            assert 1 - accepted[noise].mean() >= 0.9  # at least 90 % of the noise images rejected


def test_reexport_gives_a_shipped_model_a_new_head_and_keeps_its_images(conv_run, tmp_path):
    old = tmp_path / "old"
    export_run(conv_run, "onnx", old, DATA_ROOT, burn_in=1000, head_kind="score")
    with_drs = {"protocol": "proxy", "seed": 0, "drs_rate": 0.2, "metrics": {"proxy/fid": 9.0}}
    plain = {"protocol": "proxy", "seed": 0, "drs_rate": None, "metrics": {"proxy/fid": 8.0}}
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["evaluation"] = [plain, with_drs]
    manifest["training"]["config"]["holdout"] = REAL_IMAGES  # the heads train on the last 600 images only: fast
    (old / "manifest.json").write_text(json.dumps(manifest))  # no sha256 covers the manifest itself

    new = tmp_path / "new"
    result = run_export_cli(old, "--out", new, "--drs-head", "features", "--data-root", DATA_ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["drs_head"] == "features"
    after = read_manifest(new)
    assert after.drs.head_kind == "features" and after.drs.scale is None and "auc" in after.drs.fit
    assert after.evaluation == [plain]  # what DRS measured with the old head no longer holds
    assert after.training == manifest["training"] and after.prior == read_manifest(old).prior
    assert sorted(after.sha256) == ["critic.onnx", SHARED_WEIGHTS_NAME, "generator.onnx"]

    before_model, after_model = GanModel(read_manifest(old), "cpu"), GanModel(after, "cpu")
    for digit in (None, 3):
        before_images, _ = before_model.generate(300, seed=5, digit=digit)
        after_images, stats = after_model.generate(300, seed=5, digit=digit)
        assert np.array_equal(before_images, after_images)  # the image path is spliced in unchanged
    # The generator graph's D~ is the critic graph's on the same images, and DRS keeps its rate.
    eps = np.random.default_rng(1).standard_normal((200, after.latent_dim), dtype=np.float32)
    labels = np.arange(200) % 10
    image, logit, _ = after_model._session("generator").run(None, {"eps": eps, "label": labels})
    critic_logit, _ = after_model._session("critic").run(None, {"image": image, "label": labels})
    assert np.abs(logit - critic_logit).max() <= 1e-5
    _, stats = after_model.generate(400, seed=2, digit=3, drs_rate=0.5)
    assert stats.acceptance_rate == pytest.approx(0.5, abs=0.05)
    assert stats.max_logit == pytest.approx(after.drs.max_logit, abs=1e-6) and logit.max() <= stats.max_logit

    again = run_export_cli(old, "--out", new, "--drs-head", "score")
    assert again.returncode == 2 and "already exists" in again.stderr
    raw = run_export_cli(old, "--out", tmp_path / "raw", "--raw-generator")  # a run's option, not a model's
    assert raw.returncode == 2 and "re-exporting a model folder takes only" in raw.stderr
    assert not (tmp_path / "raw").exists()
