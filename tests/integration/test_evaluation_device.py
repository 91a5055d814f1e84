"""Evaluation on any device: the feature networks run where `--device` says, and what they compute does not
depend on it (the cache key holds no device; CPU and CUDA features agree to float rounding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.errors import UserError
from common.mnist import load_mnist_uint8
from evaluation.cache import reference_key
from evaluation.features import ClassifierFeatures, InceptionPool3, torch_device
from evaluation.protocols import PROTOCOLS
from evaluation.scoring import Evaluator

from ..conftest import DATA_ROOT

HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return load_mnist_uint8(DATA_ROOT, train=False)[0][:64]


def test_auto_is_the_cpu_without_a_gpu_and_cuda_without_one_is_one_line():
    assert torch_device("cpu").type == "cpu"
    assert torch_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    for bad, fragment in (("tpu", "--device must be one of auto, cpu, cuda"), ("cuda", "no CUDA device")):
        if bad == "cuda" and HAS_CUDA:
            continue
        with pytest.raises(UserError, match=fragment) as refused:
            Evaluator("proxy", DATA_ROOT, device=bad)
        assert "\n" not in str(refused.value)


def test_the_cache_key_does_not_depend_on_the_device(images):
    cpu = Evaluator("proxy", DATA_ROOT, device="cpu")
    auto = Evaluator("proxy", DATA_ROOT, device="auto")
    assert cpu.extractor.fingerprint == auto.extractor.fingerprint
    assert reference_key(PROTOCOLS["proxy"], cpu.extractor.fingerprint, images) == reference_key(
        PROTOCOLS["proxy"], auto.extractor.fingerprint, images
    )


def test_eval_gan_refuses_cuda_without_a_gpu_in_one_line(run_eval, tmp_path):
    if HAS_CUDA:
        pytest.skip("this machine has CUDA")
    result = run_eval("floor", "--protocol", "proxy", "--n", "100", "--device", "cuda")
    assert result.returncode == 2 and "no CUDA device" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("extractor", [InceptionPool3, ClassifierFeatures])
def test_features_are_computed_in_ieee_float32_and_the_callers_setting_is_kept(images, extractor):
    """torch's default on a GPU is TF32 convolutions: features would then differ from the CPU's by far more than
    1e-4. Checked on the CPU by reading the setting the networks run under."""
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    features = extractor(torch.device("cpu"), runtime="torch") if extractor is InceptionPool3 else extractor()
    network, seen = features.model, []

    def spy(*args):
        seen.append((conv.fp32_precision, matmul.fp32_precision))
        return type(network).forward(network, *args)

    network.forward = spy
    saved = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "tf32"
    try:
        features(images)
        after = conv.fp32_precision, matmul.fp32_precision
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved
    assert seen and set(seen) == {("ieee", "ieee")}
    assert after == ("tf32", "tf32")


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("extractor", [InceptionPool3, ClassifierFeatures])
def test_cpu_and_cuda_features_agree(images, extractor):
    on_cpu = extractor(torch.device("cpu"))(images)
    on_gpu = extractor(torch.device("cuda"))(images)
    assert np.abs(on_cpu.vectors - on_gpu.vectors).max() <= 1e-4
