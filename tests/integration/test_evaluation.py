"""Evaluation metrics against their reference implementations, sources, the cache and the proxy classifier."""

from __future__ import annotations

import json
import math
import urllib.error

import numpy as np
import onnxruntime as ort
import prdc as prdc_reference
import pytest
import torch
from PIL import Image
from pytorch_fid.fid_score import calculate_fid_given_paths

from common.images import unit_to_uint8
from common.mnist import load_mnist_uint8
from evaluation import EvaluationError
from evaluation.cache import FLOOR_FILE, load_reference, shipped_floor
from evaluation.features import InceptionPool3
from evaluation.fid import frechet_distance, gaussian_stats
from evaluation.prdc import neighbour_radii, precision_recall, realism_scores
from evaluation.protocols import PROTOCOLS, Protocol
from evaluation.proxy_classifier import (
    ONNX_NAME,
    classification_accuracy,
    classifier_dir,
    classify,
    load_classifier,
)
from evaluation.samples import digit_counts, read_png_folder
from evaluation.scoring import Evaluator, class_statistics
from runtime.registry import ARTIFACTS_ENV
from training.config import resolve
from training.models import build_models
from training.priors import build_prior
from training.sampling import generate

UNIFORM = np.full(10, 0.1)


def save_pngs(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    return folder


# ---------------------------------------------------------------- precision / recall / density / coverage
@pytest.mark.parametrize("block_rows", [1, 37, 1024])
def test_prdc_equals_the_reference_implementation(block_rows):
    rng = np.random.default_rng(block_rows)
    real = rng.normal(size=(300, 16)).astype(np.float32)
    fake = rng.normal(0.3, 1.2, size=(250, 16)).astype(np.float32)
    ours = precision_recall(real, fake, (3, 5), block_rows=block_rows)
    for k in (3, 5):
        reference = prdc_reference.compute_prdc(real.astype(np.float64), fake.astype(np.float64), k)
        for name in ("precision", "recall", "coverage"):
            assert ours[k][name] == reference[name], (k, name)
        assert ours[k]["density"] == pytest.approx(reference["density"], rel=1e-12)
        assert 0 < ours[k]["precision"] < 1 and 0 < ours[k]["recall"] < 1


def test_cached_real_radii_give_the_same_scores():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(200, 8)), rng.normal(size=(120, 8))
    assert precision_recall(real, fake, (3, 5), real_radii=neighbour_radii(real, (3, 5))) == precision_recall(
        real, fake, (3, 5)
    )


def test_identical_sets_score_perfectly_and_disjoint_clouds_score_zero():
    rng = np.random.default_rng(2)
    cloud = rng.normal(size=(400, 8))
    same = precision_recall(cloud, cloud, (3, 5))
    assert all(same[k][m] == 1.0 for k in (3, 5) for m in ("precision", "recall", "coverage"))
    assert frechet_distance(gaussian_stats(cloud), gaussian_stats(cloud)) == pytest.approx(0.0, abs=1e-6)
    far = precision_recall(cloud, cloud + 100.0, (3, 5))
    assert all(far[k][m] == 0.0 for k in (3, 5) for m in ("precision", "recall", "density", "coverage"))
    assert frechet_distance(gaussian_stats(cloud), gaussian_stats(cloud + 100.0)) == pytest.approx(
        8 * 100.0**2, rel=1e-3
    )


def test_radii_exclude_the_point_itself_and_balls_are_open():
    line = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert neighbour_radii(line, (1,))[1].tolist() == [1.0, 1.0, 1.0, 1.0]  # 0 if a point were its own neighbour
    assert neighbour_radii(line, (3,))[3].tolist() == [3.0, 2.0, 2.0, 3.0]
    far = [[100.0], [200.0], [300.0]]
    on_the_sphere = precision_recall(line, np.array([[6.0], *far]), (3,))  # exactly 3 from the point at 3
    inside = precision_recall(line, np.array([[5.999], *far]), (3,))
    assert on_the_sphere[3]["precision"] == 0.0 and inside[3]["precision"] == 0.25


@pytest.mark.parametrize("block_rows", [1, 7, 1024])
def test_realism_score_is_the_papers_ratio_over_the_typical_half_of_the_real_balls(block_rows):
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(60, 5)), rng.normal(0.2, 1.5, size=(40, 5))
    radii = neighbour_radii(real, (3,))[3]
    typical = radii <= np.median(radii)  # the lower 30 of 60, as with torch's median (the lower middle value)
    distances = np.linalg.norm(fake[:, None] - real[None, typical], axis=2)
    expected = (radii[typical][None] / distances).max(axis=1)
    assert realism_scores(real, fake, 3, block_rows=block_rows) == pytest.approx(expected, rel=1e-12)
    # Above 1 exactly when the point lies inside some typical real ball (precision's test, narrowed).
    inside = (distances < radii[typical][None]).any(axis=1)
    assert ((expected > 1) == inside).all() and 0 < inside.mean() < 1


def test_realism_score_of_a_real_point_is_infinite_and_far_points_score_near_zero():
    line = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    scores = realism_scores(line, np.array([[2.0], [1000.0]]), 1)
    assert scores[0] == np.inf and 0 < scores[1] < 0.01
    with pytest.raises(EvaluationError, match="generated features must be"):
        realism_scores(line, np.zeros((2, 3)), 1)


def test_fewer_samples_than_k_plus_one_is_an_error():
    with pytest.raises(EvaluationError, match="has 5 samples; .* k=5 needs at least 6"):
        precision_recall(np.zeros((50, 4)), np.ones((5, 4)), (3, 5))


# ---------------------------------------------------------------- FID against pytorch-fid itself
def test_fid_equals_pytorch_fid_on_the_same_png_folders(tmp_path, data_root):
    count = 100  # Inception costs ~0.2 s per image on 2 CPU cores
    test_images = load_mnist_uint8(data_root, train=False)[0][:count]
    train_images = load_mnist_uint8(data_root, train=True)[0][:count]
    folder_a, folder_b = save_pngs(tmp_path / "a", test_images), save_pngs(tmp_path / "b", train_images)
    inception = InceptionPool3()
    ours = frechet_distance(
        *(gaussian_stats(inception(read_png_folder(f).images).vectors) for f in (folder_a, folder_b))
    )
    theirs = calculate_fid_given_paths(
        [str(folder_a), str(folder_b)], batch_size=50, device="cpu", dims=2048, num_workers=0
    )
    assert abs(ours - theirs) <= 1e-3, (ours, theirs)
    assert ours > 1.0  # two different sets of digits


def test_missing_inception_weights_offline_name_the_fix(tmp_path, monkeypatch):
    import pytorch_fid.inception

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(pytorch_fid.inception, "load_state_dict_from_url", offline)
    with pytest.raises(
        EvaluationError,
        match="could not be downloaded .*set TORCH_HOME .*hub/checkpoints/"
        "pt_inception-2015-12-05-6726825d.pth, or go online",
    ) as error:
        InceptionPool3()
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- cache
def test_reference_is_computed_once_and_recomputed_when_the_protocol_changes(evaluation_cache):
    protocol = Protocol("unit", "none", "a protocol for this test", ks=(3,))
    calls = []

    def compute():
        calls.append(1)
        return np.random.default_rng(len(calls)).normal(size=(40, 3)).astype(np.float32)

    first = load_reference(protocol, "aaaa", compute)
    again = load_reference(protocol, "aaaa", compute)
    assert len(calls) == 1 and np.array_equal(first.features, again.features)
    assert np.array_equal(again.radii[3], neighbour_radii(first.features, (3,))[3])
    assert np.allclose(again.stats.cov, np.cov(first.features.astype(np.float64), rowvar=False))
    changed = load_reference(protocol, "bbbb", compute)
    assert len(calls) == 2 and not np.array_equal(changed.features, first.features)
    assert sorted(p.name for p in evaluation_cache.glob("unit-*")) == ["unit-bbbb.npz"]  # the stale one is gone
    cached = evaluation_cache / "unit-bbbb.npz"
    cached.write_bytes(cached.read_bytes()[:500])  # truncated, as by a full disk
    load_reference(protocol, "bbbb", compute)
    assert len(calls) == 3  # an unreadable cache file is recomputed, not trusted

    # The held-out reference of the same protocol lives beside it: neither replaces the other.
    load_reference(protocol, "cccc", compute, holdout=True)
    load_reference(protocol, "bbbb", compute)
    assert len(calls) == 4
    assert sorted(p.name for p in evaluation_cache.glob("unit*")) == ["unit-bbbb.npz", "unit_holdout-cccc.npz"]


# ---------------------------------------------------------------- the proxy classifier
@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


def test_shipped_classifier_scores_99_percent_on_mnist_test(classifier, data_root):
    model, manifest = classifier
    images, labels = load_mnist_uint8(data_root, train=False)
    accuracy = classification_accuracy(model, images, labels)
    assert accuracy >= 0.99
    assert accuracy == pytest.approx(manifest["test_accuracy"], abs=1e-9)
    assert manifest["test_images"] == 10_000 and (classifier_dir() / "classifier.safetensors").stat().st_size < 400_000


def test_onnx_export_matches_the_torch_classifier(classifier, data_root):
    model, _ = classifier
    images = load_mnist_uint8(data_root, train=False)[0][:64]
    session = ort.InferenceSession(str(classifier_dir() / ONNX_NAME), providers=["CPUExecutionProvider"])
    logits, features = session.run(["logits", "features"], {"images": (images[:, None] / 255.0).astype(np.float32)})
    torch_features, torch_digits = classify(model, images)
    assert np.array_equal(logits.argmax(axis=1), torch_digits)
    assert np.allclose(features, torch_features, atol=1e-4)


def test_class_statistics():
    uniform = class_statistics(np.arange(1000) % 10, None)
    assert uniform["class_histogram"] == [0.1] * 10 and uniform["digits_covered"] == 10
    assert uniform["kl_from_uniform"] == pytest.approx(0.0, abs=1e-12) and "label_accuracy" not in uniform
    collapsed = class_statistics(np.full(1000, 7), np.arange(1000) % 10)
    assert collapsed["digits_covered"] == 1 and collapsed["kl_from_uniform"] == pytest.approx(math.log(10))
    assert collapsed["label_accuracy"] == pytest.approx(0.1)
    assert collapsed["digit_accuracy"] == [0.0] * 7 + [1.0] + [0.0] * 2
    sparse = class_statistics(np.array([0] * 995 + [1] * 5), None)
    assert sparse["digits_covered"] == 1  # 0.5 % of the samples is below the 1 % that counts as covered


# ---------------------------------------------------------------- sources
def test_digit_counts_are_exact_and_proportional():
    assert digit_counts(10_000, UNIFORM).tolist() == [1000] * 10
    counts = digit_counts(1003, np.arange(1, 11))
    assert counts.sum() == 1003 and np.all(np.abs(counts - 1003 * np.arange(1, 11) / 55) < 1)


def test_generated_images_are_quantised_like_a_png_and_reproducible():
    cfg = resolve("wgan_gp_cond", {"device": "cpu"})
    prior = build_prior(cfg.prior, cfg.latent_dim, cfg.num_components, cfg.mixture_radius, cfg.mixture_sigma)
    generator = build_models(cfg, prior, False)[0].eval()
    samples = generate(generator, 30, seed=4, digit_weights=UNIFORM)
    assert samples.images.dtype == np.uint8 and samples.images.shape == (30, 28, 28)
    assert np.bincount(samples.labels).tolist() == [3] * 10
    eps = torch.randn(30, cfg.latent_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = unit_to_uint8((generator(eps, torch.from_numpy(samples.labels)).numpy()[:, 0] + 1) / 2)
    assert np.array_equal(samples.images, expected)
    assert np.array_equal(generate(generator, 30, seed=4, digit_weights=UNIFORM).images, samples.images)
    assert not np.array_equal(generate(generator, 30, seed=5, digit_weights=UNIFORM).images, samples.images)


def test_png_folder_accepts_grey_and_grey_rgb_and_rejects_the_rest(tmp_path):
    digits = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    folder = save_pngs(tmp_path / "ok", digits)
    Image.fromarray(np.repeat(digits[0][..., None], 3, axis=2)).save(folder / "rgb_grey.png")
    read = read_png_folder(folder)
    assert np.array_equal(read.images[:3], digits) and np.array_equal(read.images[3], digits[0])
    assert read.description == {"source": str(folder), "samples": 4, "seed": None, "class_sampling": None}
    assert read_png_folder(folder, n=2).images.shape == (2, 28, 28)

    (tmp_path / "empty").mkdir()
    colour = np.zeros((28, 28, 3), dtype=np.uint8)
    colour[..., 0] = 255
    cases = {
        "empty": ("holds no .png images", None),
        "big": ("is 32x32; images must be 28x28", Image.fromarray(np.zeros((32, 32), dtype=np.uint8))),
        "colour": ("is a colour .* must be greyscale", Image.fromarray(colour)),
        "broken": ("not a readable PNG", None),
    }
    for name, (message, image) in cases.items():
        (tmp_path / name).mkdir(exist_ok=True)
        if image is not None:
            image.save(tmp_path / name / "x.png")
        elif name == "broken":
            (tmp_path / name / "x.png").write_bytes(b"not a png")
        with pytest.raises(EvaluationError, match=message):
            read_png_folder(tmp_path / name)
    with pytest.raises(EvaluationError, match="more images than the 4 PNGs"):
        read_png_folder(folder, n=5)


def test_without_a_measured_floor_the_shipped_one_of_the_same_protocol_is_shown(tmp_path, monkeypatch, data_root):
    p0 = PROTOCOLS["p0"]
    shipped = {"protocol": "p0", "protocol_summary": p0.summary, "source": "MNIST train", "metrics": {"p0/fid": 1.5}}
    (tmp_path / FLOOR_FILE).write_text(json.dumps(shipped))
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path))
    evaluator = Evaluator("p0", data_root)
    evaluator.__dict__["key"] = "no-floor-measured-here"  # skips the Inception fingerprint; nothing is cached under it
    assert evaluator.floor() == shipped
    (tmp_path / FLOOR_FILE).write_text(json.dumps({**shipped, "protocol_summary": "P0 under another definition"}))
    assert evaluator.floor() is None  # a floor measured under another definition is not this protocol's
    assert shipped_floor(PROTOCOLS["proxy"], tmp_path) is None
