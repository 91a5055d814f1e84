"""A shipped ONNX model -> the same model with a new DRS head (export/drs.py), without its training checkpoint.

The critic is read back from critic.onnx: its initializers are the torch state_dict keys under `critic.` (spectral
norm already folded into plain weights), loaded into the critic the manifest's recorded config builds. Generated
images come from the generator graph's image path on onnxruntime, at the model's default spread (what users sample).
The new critic and head are exported as a critic graph and spliced onto that image path, which is kept node for
node, so the same eps and label still give the same image bytes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnx.compose
import onnx.utils
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from common.manifest import GRAPH_IO, Manifest, read_manifest, sha256_hex
from common.mnist import load_holdout_set
from training.config import resolve
from training.models import build_models
from training.priors import build_prior

from .artifact import check_output_folder, write_artifact
from .drs import AUTO, MIN_BURN_IN, ImageSampler, calibrate, sample_labels
from .graphs import CriticGraph, DrsF, onnx_bytes, share_common_weights
from .manifest import ExportError, graph_metadata

CRITIC_PREFIX = "critic."  # CriticGraph's name for the critic: its weights are critic.<state_dict key>
_SPLICE_PREFIX = "image_path/"  # the image path's internal names, kept apart from the critic graph's


def load_graph(manifest: Manifest, role: str) -> onnx.ModelProto:
    """A graph of a verified model folder with its external weights inline."""
    return onnx.load(str(manifest.folder / manifest.graph_file(role)), load_external_data=True)


def critic_from_graph(manifest: Manifest) -> nn.Module:
    """The frozen torch critic held by the model's critic graph."""
    config = dict(manifest.training["config"])
    cfg = resolve(config.pop("variant"), config)
    prior = build_prior(cfg.prior, cfg.latent_dim, cfg.num_components, cfg.mixture_radius, cfg.mixture_sigma)
    _, critic = build_models(cfg, prior, use_spectral_norm=False)  # the graph holds the folded weights
    state = {
        tensor.name.removeprefix(CRITIC_PREFIX): torch.from_numpy(numpy_helper.to_array(tensor).copy())
        for tensor in load_graph(manifest, "critic").graph.initializer
        if tensor.name.startswith(CRITIC_PREFIX)
    }
    try:
        critic.load_state_dict(state)
    except RuntimeError:
        raise ExportError(f"{manifest.folder}: critic.onnx does not hold the critic its config builds") from None
    return critic.eval().requires_grad_(False)


def image_path(manifest: Manifest) -> onnx.ModelProto:
    """The generator graph cut down to (eps, label) -> image."""
    inputs, _ = GRAPH_IO["generator"]
    return onnx.utils.Extractor(load_graph(manifest, "generator")).extract_model(list(inputs), ["image"])


def graph_sampler(model: onnx.ModelProto, manifest: Manifest) -> ImageSampler:
    """The image path on onnxruntime as an ImageSampler, at the model's default spread."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    weights = torch.tensor(manifest.prior.label_weights) if manifest.prior.num_labels else None
    spread = np.float32(manifest.default_spread)

    def sample(n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        labels = sample_labels(manifest.conditional, weights, n, rng)
        eps = torch.randn(n, manifest.latent_dim, generator=rng).numpy() * spread
        (image,) = session.run(None, {"eps": eps, "label": labels.numpy()})
        return torch.from_numpy(image) * 2 - 1, labels

    return sample


def splice(image_model: onnx.ModelProto, critic_model: onnx.ModelProto, metadata: dict[str, str]) -> bytes:
    """The generator graph: the image path, unchanged but for its internal names, feeding the critic graph."""
    # Without value infos: the extracted path lists its inputs and output among them, which would get renamed too.
    image = onnx.compose.add_prefix_graph(
        image_model.graph, _SPLICE_PREFIX, rename_inputs=False, rename_outputs=False, rename_value_infos=False
    )
    del image.value_info[:]
    critic = critic_model.graph
    graph = onnx.helper.make_graph(
        [*image.node, *critic.node],
        image.name,
        list(image.input),
        [*image.output, *critic.output],
        [*image.initializer, *critic.initializer],
        value_info=list(critic.value_info),
    )
    model = onnx.helper.make_model(
        graph,
        opset_imports=list(critic_model.opset_import),
        ir_version=max(image_model.ir_version, critic_model.ir_version),
        producer_name=critic_model.producer_name,
        producer_version=critic_model.producer_version,
    )
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def reexport_model(
    folder: Path,
    out: Path,
    data_root: Path,
    head_kind: str = AUTO,
    burn_in: int = MIN_BURN_IN,
    seed: int = 0,
    force: bool = False,
    progress: bool = False,
) -> Manifest:
    """Train and calibrate a new DRS head for the ONNX model in `folder` and write the model to `out`.

    Evaluation records sampled with DRS are dropped (they measured the old head); the others stay, since the
    images are unchanged.
    """
    manifest = read_manifest(folder)
    if manifest.graph_format != "onnx":
        raise ExportError(f"{folder} is a {manifest.graph_format} export; only ONNX models can be re-exported")
    check_output_folder(Path(out), force)
    manifest.verify()
    critic = critic_from_graph(manifest)
    images = image_path(manifest)
    holdout = manifest.training["config"].get("holdout", 0)
    if not holdout:
        raise ExportError(f"{folder}'s run held out no training images (holdout 0); DRS calibration needs them")
    real_images, real_labels = load_holdout_set(data_root, holdout)
    critic, head, calibration = calibrate(
        critic,
        graph_sampler(images, manifest),
        real_images,
        real_labels,
        manifest.conditional,
        manifest.prior.num_labels,
        head_kind,
        burn_in,
        seed,
        progress,
    )
    calibration = dataclasses.replace(calibration, fit={**calibration.fit, "spread": manifest.default_spread})
    manifest = dataclasses.replace(
        manifest,
        folder=Path(out),
        drs=calibration,
        evaluation=[record for record in manifest.evaluation if record.get("drs_rate") is None],
        producers={**manifest.producers, "drs_head": {"torch": torch.__version__, "onnx": onnx.__version__}},
    )
    metadata = graph_metadata(manifest)
    critic_graph = onnx_bytes(
        CriticGraph(critic, head, DrsF(calibration.max_logit, calibration.epsilon)).eval(),
        "critic",
        manifest.latent_dim,
        metadata,
    )
    files = {
        manifest.graph_file("generator"): splice(images, onnx.load_from_string(critic_graph), metadata),
        manifest.graph_file("critic"): critic_graph,
    }
    files = share_common_weights(files)
    manifest = dataclasses.replace(manifest, sha256={name: sha256_hex(data) for name, data in files.items()})
    write_artifact(Path(out), files, manifest, force)
    return manifest
