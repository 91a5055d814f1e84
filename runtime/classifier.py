"""The project's MNIST classifier on onnxruntime: which digit an image reads as (used by the web demo).

Evaluation trains and ships it in artifacts/mnist_classifier/ (`eval-gan train-classifier`): weights,
`classifier.onnx` and a manifest naming the graph's input, its outputs and each file's sha256. The
torch-free side needs the ONNX graph only; its sha256 is checked before onnxruntime sees the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from common.manifest import MANIFEST_NAME, ArtifactError, sha256_hex

CLASSIFIER_FOLDER = "mnist_classifier"  # beside the GAN models in artifacts/
LOGITS_OUTPUT = "logits"


@dataclass(frozen=True)
class DigitReading:
    digits: np.ndarray  # int64 [N]: the most probable digit per image
    probabilities: np.ndarray  # float64 [N, 10]: softmax of the classifier's logits


class DigitClassifier:
    """An onnxruntime session on the classifier graph: uint8 [N, 28, 28] digits -> DigitReading."""

    def __init__(self, session: ort.InferenceSession, input_name: str):
        self._session = session
        self._input_name = input_name

    @classmethod
    def load(cls, folder: Path) -> DigitClassifier:
        """Raises ArtifactError (one line) when the folder is missing, incomplete or tampered with."""
        folder = Path(folder)
        try:
            manifest = json.loads((folder / MANIFEST_NAME).read_text())
            input_name = manifest["input"]["name"]
            outputs = manifest["outputs"]
            graph_name = next(name for name in manifest["files"] if name.endswith(".onnx"))
            expected_sha256 = manifest["files"][graph_name].get("sha256")
        except OSError as error:
            raise ArtifactError(f"no MNIST classifier in {folder} ({error.strerror})") from None
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
            raise ArtifactError(
                f"{folder / MANIFEST_NAME} does not describe an ONNX classifier (input name, outputs, files)"
            ) from None
        if LOGITS_OUTPUT not in outputs:
            raise ArtifactError(f"the classifier in {folder} has no {LOGITS_OUTPUT!r} output")
        try:
            graph = (folder / graph_name).read_bytes()
        except OSError as error:
            raise ArtifactError(f"cannot read {folder / graph_name} ({error.strerror})") from None
        if expected_sha256 is not None and sha256_hex(graph) != expected_sha256:
            raise ArtifactError(f"{folder / graph_name} does not match the sha256 in its manifest")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        try:
            session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph classes
            first_line = str(error).splitlines()[0]
            raise ArtifactError(f"onnxruntime cannot load {folder / graph_name} ({first_line})") from None
        return cls(session, input_name)

    def read(self, images: np.ndarray) -> DigitReading:
        """images: uint8 [N, 28, 28], light digit on black as MNIST stores it."""
        unit = np.asarray(images, dtype=np.float32)[:, None] / np.float32(255.0)
        (logits,) = self._session.run([LOGITS_OUTPUT], {self._input_name: unit})
        logits = logits.astype(np.float64)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        return DigitReading(probabilities.argmax(axis=1), probabilities)
