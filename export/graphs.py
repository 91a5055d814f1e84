"""The exported graphs (contract in common/manifest.py) and their ONNX / TorchScript serialisation.

The generator graph bakes in the prior (mixture means and sigmas, per-digit a_i / b_i), the
generator, the frozen critic and the DRS head; the critic graph is the frozen critic and the
same head, for scoring external images. Both take a batch of any size. In ONNX the critic's
weights, which both graphs hold, are stored once: in `critic.weights` (ONNX external data).
"""

from __future__ import annotations

import io
import json
import warnings

import onnx
import onnx.external_data_helper
import torch
from torch import nn
from torch.nn.utils import parametrize

from common.drs import EPSILON
from common.manifest import GRAPH_IO, SHARED_WEIGHTS_NAME
from training.models import IMAGE_SHAPE, converge_spectral_norms

OPSET = 18  # onnxruntime >= 1.24 (the runtime's floor in pyproject.toml) runs opset 18 to 20
_EXAMPLE_BATCH = 2


class DrsF(nn.Module):
    """Calibrated logit D~ -> (D~, capped at the stored D~_M where `cap`; F with that D~_M)."""

    def __init__(self, max_logit: float, epsilon: float = EPSILON):
        super().__init__()
        self.register_buffer("max_logit", torch.tensor(max_logit, dtype=torch.float64))
        self.register_buffer("epsilon", torch.tensor(epsilon, dtype=torch.float64))

    def forward(self, logit: torch.Tensor, cap: bool) -> tuple[torch.Tensor, torch.Tensor]:
        # The generator graph (DRS) caps D~ at D~_M, where F already saturates: the runtime's running maximum then
        # stays at the stored D~_M and the gamma tables keep their rates. A head with a heavy upper tail (an MLP on
        # features) would otherwise raise it mid-run and cut acceptance (measured: 5 % for a 20 % target on
        # wgan_gp_cond_mlp). The critic graph (`score`) does not: real digits score above any generated maximum.
        if cap:
            logit = torch.clamp(logit, max=self.max_logit.float())
        # float64: 1 - exp(gap - eps) is ~1e-6 near the maximum, below float32's resolution of 1.
        gap = torch.clamp(logit.double() - self.max_logit, max=0.0)
        f = gap - torch.log(-torch.expm1(gap - self.epsilon))
        return logit, f.float()


class GeneratorGraph(nn.Module):
    """(eps, label) -> (image in [0, 1], D~, F); D~ = head(critic, image, label) (export/drs.py's heads)."""

    def __init__(self, generator: nn.Module, critic: nn.Module, head: nn.Module, drs: DrsF):
        super().__init__()
        self.generator, self.critic, self.head, self.drs = generator, critic, head, drs

    def forward(self, eps: torch.Tensor, label: torch.Tensor):
        image = self.generator(eps, label)
        logit, f = self.drs(self.head(self.critic, image, label), cap=True)
        return (image + 1) / 2, logit, f


class CriticGraph(nn.Module):
    """(image in [0, 1], label) -> (D~, F). Its weights are named critic.*, head.*, drs.* in every export, so a
    shipped critic graph can be read back into a torch critic (export/reexport.py)."""

    def __init__(self, critic: nn.Module, head: nn.Module, drs: DrsF):
        super().__init__()
        self.critic, self.head, self.drs = critic, head, drs

    def forward(self, image: torch.Tensor, label: torch.Tensor):
        return self.drs(self.head(self.critic, image * 2 - 1, label), cap=False)


def freeze_(module: nn.Module) -> nn.Module:
    """In place: eval mode, no gradients, spectral norms converged and folded into plain weights.

    In place because parametrized copies share their class with the original, and removing a
    parametrization from a deepcopy would break the original.
    """
    if any(parametrize.is_parametrized(m) for m in module.modules()):
        converge_spectral_norms(module)
        for layer in module.modules():
            if parametrize.is_parametrized(layer, "weight"):
                parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return module.eval().requires_grad_(False)


def build_graphs(generator: nn.Module, critic: nn.Module, head: nn.Module, drs: DrsF) -> dict[str, nn.Module]:
    """role -> graph module; `generator`, `critic` and `head` must be frozen (see `freeze_`)."""
    return {
        "generator": GeneratorGraph(generator, critic, head, drs).eval(),
        "critic": CriticGraph(critic, head, drs).eval(),
    }


def example_inputs(role: str, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.zeros(_EXAMPLE_BATCH, dtype=torch.long)
    first = (
        torch.zeros(_EXAMPLE_BATCH, latent_dim) if role == "generator" else torch.zeros(_EXAMPLE_BATCH, *IMAGE_SHAPE)
    )
    return first, labels


def onnx_bytes(graph: nn.Module, role: str, latent_dim: int, metadata: dict[str, str]) -> bytes:
    """ONNX via the torch.export-based exporter (it keeps inputs a graph ignores, like an unused label)."""
    inputs, outputs = GRAPH_IO[role]
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on axis naming and deprecations
        program = torch.onnx.export(
            graph,
            example_inputs(role, latent_dim),
            dynamo=True,
            verbose=False,
            opset_version=OPSET,
            input_names=list(inputs),
            output_names=list(outputs),
            external_data=False,
            dynamic_shapes={name: {0: batch} for name in inputs},
        )
    model = program.model_proto
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def torchscript_bytes(graph: nn.Module, role: str, latent_dim: int, metadata: dict[str, str]) -> bytes:
    """A traced TorchScript module with the same inputs and outputs; metadata in metadata.json inside."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice
        traced = torch.jit.trace(graph, example_inputs(role, latent_dim), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"metadata.json": json.dumps(metadata)})
    return buffer.getvalue()


SERIALISERS = {"onnx": onnx_bytes, "torchscript": torchscript_bytes}
_EXTERNAL_ALIGNMENT = 64  # bytes; each tensor starts on a cache line, as onnx's own external-data writer does
# Smaller tensors stay inline, as with onnx's own external-data writer (its size_threshold): onnxruntime needs shape
# constants (a Reshape's target) inline, and a graph that holds the critic graph's nodes shares them too.
_EXTERNAL_MIN_BYTES = 1024


def share_common_weights(graphs: dict[str, bytes]) -> dict[str, bytes]:
    """ONNX graphs -> the same graphs with the initializers all of them hold (same name, type and bytes; at least
    _EXTERNAL_MIN_BYTES) stored once, in SHARED_WEIGHTS_NAME (ONNX external data), returned beside them.

    The generator graph holds the critic for its DRS head and the critic graph holds it again: sharing
    halves what the critic costs on disk (about 6 MB per MLP model).
    """
    models = {name: onnx.load_from_string(data) for name, data in graphs.items()}

    def identity(tensor: onnx.TensorProto) -> tuple | None:
        if not tensor.HasField("raw_data") or len(tensor.raw_data) < _EXTERNAL_MIN_BYTES:
            return None  # the exporter writes raw_data; anything else stays inline
        return tensor.name, tensor.data_type, tuple(tensor.dims), tensor.raw_data

    held = [{identity(t) for t in model.graph.initializer} - {None} for model in models.values()]
    common = set.intersection(*held) if held else set()
    if not common:
        return graphs
    blob, placed = bytearray(), {}
    for model in models.values():
        for tensor in model.graph.initializer:
            key = identity(tensor)
            if key not in common:
                continue
            if key not in placed:
                blob.extend(bytes(-len(blob) % _EXTERNAL_ALIGNMENT))
                placed[key] = len(blob)
                blob.extend(tensor.raw_data)
            onnx.external_data_helper.set_external_data(tensor, SHARED_WEIGHTS_NAME, placed[key], len(tensor.raw_data))
            tensor.ClearField("raw_data")
    return {**{name: model.SerializeToString() for name, model in models.items()}, SHARED_WEIGHTS_NAME: bytes(blob)}
