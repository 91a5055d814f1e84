"""Feature extractors, one per protocol feature space; each maps uint8 [N, 28, 28] to float32 [N, D].

Both networks compute in IEEE float32 on any device (`ieee_float32`), so their outputs agree across devices to
float rounding; distances and Gaussian fits are taken in float64 downstream.
"""

from __future__ import annotations

import functools
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from tqdm import tqdm

from common.validation import INT8_INCEPTION, check_device, check_inception_runtime

from . import EvaluationError
from .inception_onnx import CheckImages, Int8Pool3, OnnxPool3
from .proxy_classifier import classify, load_classifier

INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_BATCH = {"cpu": 100, "cuda": 500}  # images per torch forward pass; 500 fits any GPU this project meets


@dataclass
class Features:
    vectors: np.ndarray  # float32 [N, D]
    predicted_digits: np.ndarray | None  # int64 [N], from the proxy classifier only


@contextmanager
def ieee_float32():
    """Convolutions and matrix products in IEEE float32 while features are computed, the caller's setting restored
    after. On Ampere and later GPUs torch runs cuDNN convolutions in TF32 (a 10-bit mantissa) by default, which
    would move the features far past the 1e-4 that CPU and CUDA must agree to."""
    backends = torch.backends
    if hasattr(backends.cudnn, "conv"):  # torch >= 2.9 (mixing in the older switches is an error there)
        switches = [(backends.cudnn.conv, "fp32_precision", "ieee"), (backends.cuda.matmul, "fp32_precision", "ieee")]
    else:
        switches = [(backends.cudnn, "allow_tf32", False), (backends.cuda.matmul, "allow_tf32", False)]
    saved = [getattr(owner, name) for owner, name, _ in switches]
    for owner, name, value in switches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for (owner, name, _), value in zip(switches, saved, strict=True):
            setattr(owner, name, value)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def torch_device(name: str) -> torch.device:
    """Where the feature networks run: cpu, cuda, or auto (CUDA when torch sees a GPU, else the CPU). The device
    is not part of a protocol: features, caches and scores are the same on either (to float rounding)."""
    check_device(name, "--device")
    if name == "cuda" and not torch.cuda.is_available():
        raise EvaluationError("--device cuda: torch sees no CUDA device on this machine (use cpu or auto)")
    return torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")


def inception_runtime(name: str, device: torch.device) -> str:
    """What runs Inception: onnxruntime (CPU only, the faster there) or torch (any device); auto picks onnx on
    the CPU and torch on CUDA. Either computes the same features (to float rounding): the cache key holds neither."""
    check_inception_runtime(name, "--inception")
    if name.startswith("onnx") and device.type != "cpu":
        raise EvaluationError(f"--inception {name} runs on the CPU only; use --inception torch (or auto) on CUDA")
    if name == "auto":
        return "onnx" if device.type == "cpu" else "torch"
    return name


class InceptionPool3:
    """pytorch-fid's InceptionV3 pool3 (2048-d) on grey repeated to 3 channels, [0, 1], its own resize; run by
    torch or by onnxruntime (evaluation/inception_onnx.py)."""

    name = "inception-pool3"

    def __init__(
        self, device: torch.device = torch.device("cpu"), runtime: str = "auto", check_images: CheckImages | None = None
    ):
        """check_images: what an int8 Inception is calibrated and checked on, when it has to be built."""
        self.device = device
        self.runtime = inception_runtime(runtime, device)
        import pytorch_fid.inception
        from pytorch_fid.inception import InceptionV3

        weights = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
        # pytorch-fid loads the weights from TORCH_HOME (downloading them when they are absent) with
        # torch.hub's default weights_only=False, which unpickles whatever that file holds: tensors only.
        tensors_only = functools.partial(torch.hub.load_state_dict_from_url, weights_only=True)
        try:
            with mock.patch.object(pytorch_fid.inception, "load_state_dict_from_url", tensors_only):
                self.model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
        except Exception as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise EvaluationError(
                f"the FID Inception weights are not at {weights} and could not be downloaded ({reason}); "
                f"set TORCH_HOME to a folder holding hub/checkpoints/{INCEPTION_WEIGHTS}, or go online"
            ) from None
        # Channels-last convolutions: 1.5x faster on CPU here, features equal to ~5e-6 (float rounding).
        self.model = self.model.to(device, memory_format=torch.channels_last)
        self.fingerprint = {
            "extractor": self.name,
            "weights": INCEPTION_WEIGHTS,
            "bytes": weights.stat().st_size,
            "sha256": _file_sha256(weights),
        }
        if self.runtime == INT8_INCEPTION:
            if check_images is None:
                raise ValueError("an int8 Inception needs its calibration and check images")
            onnx = Int8Pool3(self.model, self.fingerprint["sha256"], check_images)
            # Its features are not P0's: a reference of its own, under another key.
            self.fingerprint["graph"] = onnx.path.name
            self.pool3, self.batch_size = onnx, onnx.batch
        elif self.runtime == "onnx":
            onnx = OnnxPool3(self.model, self.fingerprint["sha256"])
            self.pool3, self.batch_size = onnx, onnx.batch
        else:
            self.pool3, self.batch_size = self._torch_pool3, INCEPTION_BATCH[device.type]

    @torch.inference_mode()
    @ieee_float32()
    def _torch_pool3(self, images_uint8: np.ndarray) -> np.ndarray:
        batch = torch.as_tensor(images_uint8).to(self.device).float().div(255.0)
        grey3 = batch.unsqueeze(1).expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
        return self.model(grey3)[0][:, :, 0, 0].cpu().numpy()  # [B, 2048, 1, 1] -> [B, 2048]

    def __call__(self, images_uint8: np.ndarray, progress: bool = False) -> Features:
        out = np.empty((len(images_uint8), 2048), dtype=np.float32)
        for start in tqdm(
            range(0, len(images_uint8), self.batch_size),
            desc="Inception features",
            unit="batch",
            disable=not progress,
            leave=False,
        ):
            out[start : start + self.batch_size] = self.pool3(images_uint8[start : start + self.batch_size])
        return Features(out, None)


class ClassifierFeatures:
    """The shipped MNIST classifier's 64-d penultimate features, and its predicted digits."""

    name = "mnist-classifier"

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.model, manifest = load_classifier()
        self.model = self.model.to(device)
        self.device = device
        self.fingerprint = {"extractor": self.name, **manifest["files"]}

    @ieee_float32()
    def __call__(self, images_uint8: np.ndarray, progress: bool = False) -> Features:
        return Features(*classify(self.model, images_uint8, progress, self.device))


EXTRACTORS = {extractor.name: extractor for extractor in (InceptionPool3, ClassifierFeatures)}
