"""pytorch-fid's InceptionV3 pool3 run by onnxruntime on the CPU: the same network, faster than torch there.

The module pytorch-fid builds is exported to ONNX (torch's dynamo exporter) once per weights file, torch, onnx
and pytorch-fid version, opset and preprocessing version, and cached beside the real references. Two exact
rewrites are made before the export: the three identical grey channels are summed into the first convolution's
weights, and the /255 and [0, 1] -> [-1, 1] scaling into its weights and a bias (that convolution has no
padding, so the shift is a constant). The graph takes the uint8 images as they are; pytorch-fid's own resize
stays in it. Features equal the torch path's to float rounding (tests/integration/test_inception_onnx.py).

`--inception onnx-int8` (opt-in, not P0) runs an int8 copy of that graph: onnxruntime's static quantisation
(QDQ, per-channel int8 weights, uint8 activations calibrated on held-out MNIST train images) of its Conv, MatMul
and Gemm nodes, ~2.5x faster on this project's CPU. How far its FID moves is measured once, when it is built (the
FID of MNIST test images against held-out train images through both graphs), kept beside it and printed with
every score it gives.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytorch_fid
import torch
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf

from common.files import atomic_write_bytes, atomic_write_text
from common.mnist import HOLDOUT_IMAGES, load_holdout_set, load_mnist_uint8

from .cache import cache_dir
from .fid import frechet_distance, gaussian_stats
from .protocols import PREPROCESSING_VERSION

BATCH = 50  # images per run; 20-200 were within noise of each other in a probe on the loaded 2-core VM
OPSET = 18
CACHE_STEM = "inception-pool3"


class GreyPool3(torch.nn.Module):
    """pytorch-fid's InceptionV3 on uint8 [B, 28, 28] -> pool3 [B, 2048], its first convolution folded as above."""

    def __init__(self, inception: torch.nn.Module):
        super().__init__()
        self.inception = copy.deepcopy(inception).float().to("cpu", memory_format=torch.contiguous_format)
        first = self.inception.blocks[0][0].conv  # Conv2d(3, 32, 3, stride 2), no bias, no padding
        assert first.padding == (0, 0) and first.bias is None and self.inception.normalize_input
        grey = first.weight.detach().sum(dim=1, keepdim=True)  # 3 identical channels -> 1
        folded = torch.nn.Conv2d(1, first.out_channels, first.kernel_size, first.stride, bias=True)
        # conv(2 * u / 255 - 1) = conv_{2W/255}(u) - sum(W): the resize is linear, so it commutes with the scaling.
        folded.weight = torch.nn.Parameter(grey * (2.0 / 255.0))
        folded.bias = torch.nn.Parameter(-grey.sum(dim=(1, 2, 3)))
        self.inception.blocks[0][0].conv = folded
        self.inception.normalize_input = False
        self.eval()

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.inception(images_uint8.unsqueeze(1).float())[0].flatten(1)


def model_key(weights_sha256: str) -> str:
    """What the exported graph depends on; a change of any of them exports anew."""
    definition = {
        "weights_sha256": weights_sha256,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "pytorch_fid": pytorch_fid.__version__,
        "opset": OPSET,
        "preprocessing": PREPROCESSING_VERSION,
    }
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


def model_path(weights_sha256: str) -> Path:
    return cache_dir() / f"{CACHE_STEM}-{model_key(weights_sha256)}.onnx"


def export(inception: torch.nn.Module, path: Path) -> None:
    """Write pytorch-fid's network as ONNX to `path` (atomically), removing exports of older definitions."""
    batch = torch.export.Dim("batch", min=1)
    with torch.inference_mode(False), torch.no_grad():  # torch.export refuses inference-mode tensors
        program = torch.onnx.export(
            GreyPool3(inception),
            (torch.zeros(2, 28, 28, dtype=torch.uint8),),
            input_names=["images"],
            output_names=["pool3"],
            dynamic_shapes={"images_uint8": {0: batch}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    buffer = io.BytesIO()
    program.save(buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    for older in path.parent.glob(f"{CACHE_STEM}-*.onnx"):
        if older != path:
            older.unlink(missing_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def session(model: bytes) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    # One thread per core this process may use (not the machine's: containers and taskset pin fewer).
    options.intra_op_num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: several evaluations side by side (one per core) would otherwise burn
    # each other's cores; Inception's operators are long, so waking a thread costs next to nothing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxPool3:
    """The cached export of `inception` (exported now when absent), ready to run."""

    batch = BATCH

    def __init__(self, inception: torch.nn.Module, weights_sha256: str):
        self.path = model_path(weights_sha256)
        self.exported = False
        try:
            self.session = session(self.path.read_bytes())
        except (OSError, Fail, InvalidGraph, InvalidProtobuf):  # absent or unreadable: export it (again)
            export(inception, self.path)
            self.exported = True
            self.session = session(self.path.read_bytes())

    def __call__(self, images_uint8: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"images": np.ascontiguousarray(images_uint8, dtype=np.uint8)})[0]


INT8_STEM = "inception-int8-pool3"  # not CACHE_STEM-*: exporting the fp32 graph anew removes those
INT8_RECIPE = 1  # the quantisation below; a change quantises anew
CALIBRATION_IMAGES = 200
CHECK_IMAGES = 1000  # per side of the FID check that measures the int8 graph's deviation

# () -> (calibration images, check images A, check images B): uint8 [N, 28, 28] each
CheckImages = Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]


def int8_check_images(data_root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An int8 Inception's calibration images (held-out MNIST train) and the two sets its FID deviation is measured
    on (MNIST test, and other held-out train images)."""
    held_out = load_holdout_set(data_root, HOLDOUT_IMAGES)[0]
    test = load_mnist_uint8(data_root, train=False)[0]
    return (
        held_out[:CALIBRATION_IMAGES],
        test[:CHECK_IMAGES],
        held_out[CALIBRATION_IMAGES : CALIBRATION_IMAGES + CHECK_IMAGES],
    )


def int8_path(weights_sha256: str) -> Path:
    definition = {
        "fp32": model_key(weights_sha256),
        "onnxruntime": onnxruntime.__version__,
        "recipe": INT8_RECIPE,
        "calibration_images": CALIBRATION_IMAGES,
        "check_images": CHECK_IMAGES,
    }
    key = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"{INT8_STEM}-{key}.onnx"


def quantise(fp32_path: Path, path: Path, calibration: np.ndarray) -> None:
    """Write the int8 copy of the fp32 graph at `fp32_path` to `path` (atomically), removing older int8 copies."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"images": calibration[i : i + BATCH]} for i in range(0, len(calibration), BATCH)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as work:
        prepared, quantised = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(
            str(prepared),
            str(quantised),
            Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"],
        )
        for older in path.parent.glob(f"{INT8_STEM}-*"):
            older.unlink(missing_ok=True)
        atomic_write_bytes(path, quantised.read_bytes())


def fid_deviation(fp32: OnnxPool3, int8: OnnxPool3, first: np.ndarray, second: np.ndarray) -> dict:
    """FID of `first` against `second` through each graph, and the largest feature difference."""

    def pool3_of(graph: OnnxPool3, images: np.ndarray) -> np.ndarray:
        return np.concatenate([graph(images[i : i + BATCH]) for i in range(0, len(images), BATCH)])

    graphs = {"fp32": fp32, "int8": int8}
    features = {name: [pool3_of(graph, first), pool3_of(graph, second)] for name, graph in graphs.items()}
    fids = {name: frechet_distance(*(gaussian_stats(v) for v in vectors)) for name, vectors in features.items()}
    return {
        "images": [len(first), len(second)],
        "fid_fp32": fids["fp32"],
        "fid_int8": fids["int8"],
        "fid_difference": fids["int8"] - fids["fp32"],
        "max_feature_difference": float(
            max(np.abs(a - b).max() for a, b in zip(features["fp32"], features["int8"], strict=True))
        ),
    }


class Int8Pool3(OnnxPool3):
    """The cached int8 copy of OnnxPool3's graph (quantised and checked now when absent) and its measured deviation."""

    def __init__(self, inception: torch.nn.Module, weights_sha256: str, check_images: CheckImages):
        self.path = int8_path(weights_sha256)
        deviation_path = self.path.with_suffix(".json")
        self.exported = False
        try:
            self.session = session(self.path.read_bytes())
            self.deviation = json.loads(deviation_path.read_text())
        except (OSError, ValueError, Fail, InvalidGraph, InvalidProtobuf):  # absent or unreadable: build it (again)
            fp32 = OnnxPool3(inception, weights_sha256)
            calibration, first, second = check_images()
            quantise(fp32.path, self.path, calibration)
            self.exported = True
            self.session = session(self.path.read_bytes())
            self.deviation = fid_deviation(fp32, self, first, second)
            atomic_write_text(deviation_path, json.dumps(self.deviation, indent=2) + "\n")

    def summary(self) -> str:
        d = self.deviation
        return (
            f"Inception int8 (opt-in, not P0): on {d['images'][0]:,} MNIST test against {d['images'][1]:,} held-out "
            f"train images its FID is {d['fid_int8']:.3f} against fp32's {d['fid_fp32']:.3f} "
            f"({d['fid_difference']:+.3f}), features within {d['max_feature_difference']:.3g}; "
            "measured when it was built"
        )
