"""P0's Inception run by onnxruntime (the CPU default) computes pytorch-fid's features: equal to the torch path's
to float rounding, the same FID, the same reference key; its export is cached and redone when its key changes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from common.errors import UserError
from common.mnist import load_mnist_uint8
from evaluation import inception_onnx
from evaluation.features import InceptionPool3, inception_runtime
from evaluation.fid import frechet_distance, gaussian_stats
from evaluation.scoring import Evaluator

from ..conftest import DATA_ROOT, REPO

COUNT = 150  # per set; Inception costs ~0.1-0.3 s per image on 2 CPU cores


@pytest.fixture(scope="module")
def two_sets() -> tuple[np.ndarray, np.ndarray]:
    return load_mnist_uint8(DATA_ROOT, train=False)[0][:COUNT], load_mnist_uint8(DATA_ROOT, train=True)[0][:COUNT]


@pytest.fixture(scope="module")
def features(two_sets) -> dict[str, list[np.ndarray]]:
    """Each runtime's pool3 features of both sets."""
    return {
        runtime: [extractor(images).vectors for images in two_sets]
        for runtime, extractor in (("onnx", InceptionPool3(runtime="onnx")), ("torch", InceptionPool3(runtime="torch")))
    }


def test_onnx_features_equal_pytorch_fids_to_1e_4(features):
    for onnx_vectors, torch_vectors in zip(features["onnx"], features["torch"], strict=True):
        assert np.abs(onnx_vectors - torch_vectors).max() <= 1e-4
        assert np.abs(torch_vectors).max() > 1  # features, not zeros


def test_onnx_fid_equals_torch_fid_to_0_01(features):
    fids = {runtime: frechet_distance(*(gaussian_stats(v) for v in vectors)) for runtime, vectors in features.items()}
    assert abs(fids["onnx"] - fids["torch"]) <= 0.01, fids
    assert fids["torch"] > 1.0  # two different sets of digits


def test_the_cpu_default_is_onnx_and_the_reference_key_does_not_depend_on_the_runtime():
    assert Evaluator("p0", DATA_ROOT).inception == "onnx"
    assert Evaluator("p0", DATA_ROOT, inception="torch").inception == "torch"
    keys = {runtime: Evaluator("p0", DATA_ROOT, inception=runtime).key for runtime in ("onnx", "torch")}
    assert keys["onnx"] == keys["torch"]


def test_a_bad_runtime_and_onnx_on_cuda_are_one_line_errors():
    for runtime, device, fragment in (
        ("tensorrt", "cpu", "--inception must be one of auto, onnx, torch, onnx-int8"),
        ("onnx", "cuda", "--inception onnx runs on the CPU only"),
    ):
        with pytest.raises(UserError, match=fragment) as refused:
            inception_runtime(runtime, torch.device(device))
        assert "\n" not in str(refused.value)
    assert inception_runtime("auto", torch.device("cuda")) == "torch"


def test_eval_gan_refuses_an_unknown_inception_runtime_in_one_line(run_eval):
    result = run_eval("floor", "--protocol", "p0", "--n", "100", "--inception", "tensorrt")
    assert result.returncode == 2 and "--inception must be one of auto, onnx, torch, onnx-int8" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_export_is_cached_and_redone_when_unreadable_or_its_key_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_CACHE_DIR", str(tmp_path))
    first = InceptionPool3(runtime="onnx").pool3
    assert first.exported and first.path.parent == tmp_path and first.path.suffix == ".onnx"
    written = first.path.stat().st_mtime_ns
    again = InceptionPool3(runtime="onnx").pool3
    assert not again.exported and again.path == first.path and first.path.stat().st_mtime_ns == written

    first.path.write_bytes(b"half a file")
    repaired = InceptionPool3(runtime="onnx").pool3
    assert repaired.exported and repaired.path == first.path and first.path.stat().st_size > 50_000_000

    monkeypatch.setattr(inception_onnx, "PREPROCESSING_VERSION", inception_onnx.PREPROCESSING_VERSION + 1)
    changed = InceptionPool3(runtime="onnx").pool3
    assert changed.exported and changed.path != first.path
    assert [p.name for p in tmp_path.glob("*.onnx")] == [changed.path.name]  # the older definition is removed


def test_the_int8_inception_is_opt_in_labelled_cached_apart_and_prints_its_deviation(tmp_path, monkeypatch, run_eval):
    """Small calibration and check sets keep it quick; the deviation is measured on them, as it is on the full
    ones, and the features stay near fp32's (they are not P0's: another reference, never recorded)."""
    monkeypatch.setenv("GAN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(inception_onnx, "CALIBRATION_IMAGES", 20)
    monkeypatch.setattr(inception_onnx, "CHECK_IMAGES", 60)
    evaluator = Evaluator("p0", DATA_ROOT, inception="onnx-int8")
    assert evaluator.int8 and not Evaluator("p0", DATA_ROOT).int8
    int8 = evaluator.extractor.pool3
    assert int8.exported and int8.path.name.startswith(inception_onnx.INT8_STEM)
    deviation = json.loads(int8.path.with_suffix(".json").read_text())
    assert deviation == int8.deviation and deviation["images"] == [60, 60]
    assert deviation["fid_difference"] == pytest.approx(deviation["fid_int8"] - deviation["fid_fp32"])
    assert deviation["fid_fp32"] > 1 and deviation["max_feature_difference"] > 0
    assert "not P0" in int8.summary() and f"{deviation['fid_int8']:.3f}" in int8.summary()
    assert evaluator.key != Evaluator("p0", DATA_ROOT).key

    images = load_mnist_uint8(DATA_ROOT, train=False)[0][:50]
    fp32_vectors = InceptionPool3(runtime="onnx")(images).vectors
    int8_vectors = evaluator.extractor(images).vectors
    # Quantised, so not equal; near: within a tenth of the features' own spread, on average.
    assert 0 < np.abs(int8_vectors - fp32_vectors).mean() <= 0.1 * fp32_vectors.std()

    again = Evaluator("p0", DATA_ROOT, inception="onnx-int8").extractor.pool3
    assert not again.exported and again.deviation == deviation  # cached with its measurement

    refused = run_eval(
        "score", REPO / "artifacts" / "wgan_gp_mlp", "--n", "100", "--inception", "onnx-int8", "--record"
    )
    assert refused.returncode == 2 and "--inception onnx-int8 is not P0" in refused.stderr
    assert refused.stderr.count("\n") == 1
