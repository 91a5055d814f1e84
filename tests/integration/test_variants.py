"""export/variants.py: the ConvTranspose rewrite is exact up to float rounding, and the int8 variant it writes is
listed in the manifest with its sha256 (on a copy of the shipped default model)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort

from common.image_graph import cut_to_image
from common.manifest import read_manifest
from export.variants import add_variant, phase_convolutions
from runtime.model import GanModel

from ..conftest import REPO

CONV = REPO / "artifacts" / "wgan_gp_cond_conv_w96"


def test_phase_convolutions_compute_the_transposed_convolutions():
    manifest = read_manifest(CONV)
    graph = cut_to_image(manifest.read_graph("generator"), manifest.external_data())
    rewritten, phases = phase_convolutions(onnx.load_from_string(graph))
    assert len(phases) == 8 and not any(node.op_type == "ConvTranspose" for node in rewritten.graph.node)
    rng = np.random.default_rng(0)
    feeds = {"eps": rng.standard_normal((16, manifest.latent_dim), dtype=np.float32), "label": np.arange(16) % 10}
    expected = ort.InferenceSession(graph).run(None, feeds)[0]
    actual = ort.InferenceSession(rewritten.SerializeToString()).run(None, feeds)[0]
    assert np.abs(actual - expected).max() < 1e-5


def test_the_int8_variant_is_written_and_listed(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(CONV, folder, ignore=shutil.ignore_patterns("generator.int8.onnx"))
    manifest = read_manifest(folder)
    manifest_without = manifest.to_json() | {"variants": {}}
    (folder / "manifest.json").write_text(json.dumps(manifest_without))
    written = add_variant(folder, "int8", calibration=256, seed=1)
    assert written.variants["int8"].file == "generator.int8.onnx" and "generator.int8.onnx" in written.sha256
    written.verify()
    images, _ = GanModel(written, "cpu", precision="int8").generate(32, seed=0)
    exact, _ = GanModel(written, "cpu", precision="fp32").generate(32, seed=0)
    assert np.abs(images.astype(int) - exact.astype(int)).mean() < 1.0
