"""The integration tier's shared fixtures and helpers: tiny real trainings on MNIST and their exports, the
demo's artifacts folder and app, `eval-gan` in this process. Fixtures here reach every module below
without an import; plain helpers and constants are imported from `.conftest`."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from common.manifest import sha256_hex
from common.mnist import load_mnist_uint8
from evaluation.cache import CACHE_ENV
from evaluation.cli import main as eval_gan_main
from export.artifact import export_run
from runtime.classifier import CLASSIFIER_FOLDER
from training.config import resolve
from training.models import build_models
from training.objectives import CONSTRAINTS
from training.priors import build_prior
from training.trainer import Trainer, train

from ..conftest import DATA_ROOT, environment_variable


@pytest.fixture(scope="session", autouse=True)
def evaluation_cache(tmp_path_factory) -> Path:
    """Cached real features go to one folder per test session (CLI subprocesses inherit it), not ~/.cache."""
    folder = tmp_path_factory.mktemp("eval-cache")
    with environment_variable(CACHE_ENV, str(folder)):
        yield folder


# ---------------------------------------------------------------------- tiny trainings
def tiny_overrides(**extra) -> dict:
    """A few hundred real images, a few steps: enough to exercise every code path on 2 CPU cores."""
    return {
        "train_limit": 256,
        "batch_size": 32,
        "epochs": 1,
        "device": "cpu",
        "eval_every": 1,
        "eval_samples": 200,
        **extra,
    }


@contextlib.contextmanager
def single_torch_thread():
    """Tiny models run faster on one thread: OpenMP hand-offs cost more than their small ops,
    and far more when the two cores are shared with other work."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def untrained_models(variant: str, **extra):
    """A seeded, untrained generator bundle and critic (eval mode) for a preset."""
    cfg = resolve(variant, tiny_overrides(**extra))
    torch.manual_seed(0)
    prior = build_prior(cfg.prior, cfg.latent_dim, cfg.num_components, cfg.mixture_radius, cfg.mixture_sigma)
    generator, critic = build_models(cfg, prior, CONSTRAINTS[cfg.lipschitz](cfg).spectral_norm)
    return cfg, generator.eval(), critic.eval()


def train_tiny_run(tmp_path, variant: str, **extra):
    """A real run folder: one epoch on 256 MNIST images (no metrics: export does not need them)."""
    cfg = resolve(variant, tiny_overrides(eval_protocol="none", **extra))
    run_dir = tmp_path / variant
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    train(Trainer(cfg, run_dir, DATA_ROOT, quiet=True))
    return run_dir


# ---------------------------------------------------------------------- a tiny exported model (bad input)
MODEL = "cond"  # the exported conditional model in the `trained` fixture's artifacts folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A tiny conditional run and its ONNX export (1,000-sample burn-in: only errors are tested here)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    with single_torch_thread():
        run_dir = train_tiny_run(root / "runs", "wgan_gp_cond")
        export_run(run_dir, "onnx", root / "artifacts" / MODEL, DATA_ROOT, burn_in=1000, head_kind="score")
    return {"run": run_dir, "artifacts": root / "artifacts"}


# ---------------------------------------------------------------------- the demo's models and app
UNCONDITIONAL, CONDITIONAL = "wgan_gp", "wgan_gp_cond"
# Made-up P0 entries (these tiny models were never scored): the unconditional one is the default.
P0_RESULTS = {
    UNCONDITIONAL: [
        {"protocol": "p0", "seed": 0, "metrics": {"p0/fid": 95.5, "p0/precision_k3": 0.61, "p0/recall_k3": 0.52}}
    ],
    CONDITIONAL: [
        {"protocol": "p0", "seed": seed, "metrics": {"p0/fid": fid, "p0/precision_k3": 0.55, "p0/recall_k3": 0.47}}
        for seed, fid in ((0, 119.25), (1, 121.25))
    ]
    + [
        {"protocol": "p0", "seed": 0, "drs_rate": 0.2, "metrics": {"p0/fid": 110.0}},
        {"protocol": "p0", "seed": 0, "spread": 0.9, "metrics": {"p0/fid": 130.0, "p0/precision_k3": 0.6}},
    ],
}


def write_centroid_classifier(folder, images, labels):
    """An ONNX nearest-centroid classifier: logits_d = x . mu_d - |mu_d|^2 / 2, x in [0, 1]^784."""
    flat = images.reshape(len(images), -1).astype(np.float64) / 255.0
    centroids = np.stack([flat[labels == d].mean(axis=0) for d in range(10)])
    weights = numpy_helper.from_array(centroids.T.astype(np.float32), "weights")
    bias = numpy_helper.from_array((-0.5 * (centroids**2).sum(axis=1)).astype(np.float32), "bias")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["images"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "weights", "bias"], ["logits"]),
        ],
        "centroids",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [weights, bias],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    folder.mkdir()
    (folder / "classifier.onnx").write_bytes(data)
    manifest = {
        "name": CLASSIFIER_FOLDER,
        "input": {"name": "images"},
        "outputs": {"logits": ["N", 10]},
        "files": {"classifier.onnx": {"sha256": sha256_hex(data), "bytes": len(data)}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="session")
def demo_artifacts(tmp_path_factory):
    """An artifacts folder with both tiny models and the classifier; built once per session (every module that
    uses it: the demo, its browser test, `eval-gan results`)."""
    root = tmp_path_factory.getbasetemp() / "demo-artifacts"
    if not root.exists():
        staging = tmp_path_factory.mktemp("demo-staging")
        for variant in (UNCONDITIONAL, CONDITIONAL):
            run = train_tiny_run(staging / "runs", variant)
            export_run(
                run,
                "onnx",
                staging / "artifacts" / variant,
                DATA_ROOT,
                burn_in=1000,
                evaluation=P0_RESULTS[variant],
                head_kind="score",
            )
        images, labels = load_mnist_uint8(DATA_ROOT, train=True)
        write_centroid_classifier(staging / "artifacts" / CLASSIFIER_FOLDER, images[:5000], labels[:5000])
        (staging / "artifacts").rename(root)
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(demo_artifacts):
    from demo.app import build_app, launch  # Gradio: imported by the modules that serve the page, only

    app = build_app(demo_artifacts)
    port = free_port()
    launch(app, port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()


# ---------------------------------------------------------------------- eval-gan
@pytest.fixture
def run_eval(monkeypatch, capsys):
    """The eval-gan entry point in this process (importing torch per call would dominate the test time)."""
    monkeypatch.setenv("GAN_DATA_ROOT", str(DATA_ROOT))

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["eval-gan", *map(str, args)])
        with pytest.raises(SystemExit) as stopped:
            eval_gan_main()
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, stopped.value.code, captured.out, captured.err)

    return run
