"""The manifest of an exported model: what it is, how DRS was calibrated, how it scored, what made it.

The same facts go into manifest.json and into every graph (ONNX metadata_props, or metadata.json
inside a TorchScript file), each top-level key as a JSON string; manifest.json adds the sha256
of every graph, which a graph cannot hold about itself.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import onnx
import torch

from common.errors import UserError
from common.manifest import GRAPH_EXTENSIONS, P0_PROTOCOL, DrsCalibration, GraphInfo, Manifest, PriorInfo
from training.run import TrainedRun, training_cost

from .graphs import OPSET


class ExportError(UserError):
    """Bad export input (existing output, no held-out images, bad evaluation file); one-line message."""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _label_meaning(trained: TrainedRun) -> str:
    prior = trained.generator.prior
    if prior.labels_are_digits:
        return "digit 0..9"
    if prior.num_labels:
        return f"mixture component 0..{prior.num_labels - 1}"
    return "ignored (any int64)"


def graph_descriptions(trained: TrainedRun, graph_format: str) -> dict[str, GraphInfo]:
    label = f"int64 [N]: {_label_meaning(trained)}"
    calibrated = "float32 [N]: calibrated DRS logit D~(x) (sigmoid = probability of a real digit)"
    capped = "float32 [N]: calibrated DRS logit D~(x), capped at D~_M (sigmoid = probability of a real digit)"
    f = "float32 [N]: DRS F(x) with the stored D~_M; accept with probability sigmoid(F - gamma)"
    ext = GRAPH_EXTENSIONS[graph_format]
    return {
        "generator": GraphInfo(
            f"generator{ext}",
            {"eps": f"float32 [N, {trained.cfg.latent_dim}]: standard normal noise", "label": label},
            {"image": "float32 [N, 1, 28, 28] in [0, 1]", "logit": capped, "F": f},
        ),
        "critic": GraphInfo(
            f"critic{ext}",
            {"image": "float32 [N, 1, 28, 28] in [0, 1]", "label": label},
            {"logit": calibrated, "F": f},
        ),
    }


def build_manifest(
    trained: TrainedRun,
    calibration: DrsCalibration,
    graph_format: str,
    evaluation: list[dict],
    out: Path,
    intensity_matching: dict | None = None,
) -> Manifest:
    """The exported model's manifest, without the sha256 of its files (the graphs are made from it first);
    `intensity_matching` is the tone curve's fit, if any."""
    cfg, prior = trained.cfg, trained.generator.prior
    producers = {"torch": torch.__version__, "mnist-latent-gan": _version("mnist-latent-gan")}
    if graph_format == "onnx":
        producers.update({"onnx": onnx.__version__, "onnxscript": _version("onnxscript")})
    weights = [round(w, 9) for w in prior.label_weights().tolist()] if prior.num_labels else []
    return Manifest(
        folder=Path(out),
        variant=cfg.variant,
        architecture=cfg.architecture,
        graph_format=graph_format,
        latent_dim=cfg.latent_dim,
        conditional=bool(prior.labels_are_digits),
        prior=PriorInfo(prior.kind, prior.num_labels, weights, _label_meaning(trained)),
        graphs=graph_descriptions(trained, graph_format),
        intensity_matching=intensity_matching,
        drs=calibration,
        evaluation=evaluation,
        opset=OPSET if graph_format == "onnx" else None,
        producers=producers,
        training={
            "config": cfg.to_dict(),
            "epochs_completed": trained.epoch,
            "run_dir": str(trained.run_dir),
            "generator_weights": trained.generator_weights,
            **training_cost(trained.run_dir, trained.epoch),
        },
        sha256={},
    )


def graph_metadata(manifest: Manifest) -> dict[str, str]:
    """What the graphs carry about themselves, each top-level key as a JSON string; evaluations (recorded later)
    and the files' sha256 (which a graph cannot hold about itself) are left out."""
    return {key: json.dumps(value) for key, value in manifest.to_json().items() if key not in ("evaluation", "sha256")}


def read_evaluation(path: Path) -> list[dict]:
    """Evaluation records for the manifest: the JSON `eval-gan score --json` writes (or a list of its records)."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise ExportError(f"cannot read evaluation file {path} ({error.strerror})") from None
    except ValueError:
        raise ExportError(f"evaluation file {path} is not valid JSON") from None
    entries = data.get("records") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ExportError(f'evaluation file {path}: expected eval-gan\'s JSON (with "records") or a list of records')
    for entry in entries:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("protocol"), str)
            and isinstance(entry.get("metrics"), dict)
        ):
            raise ExportError(f'evaluation file {path}: every record must be an object with a "protocol" and "metrics"')
        fid = entry["metrics"].get(f"{P0_PROTOCOL}/fid")
        if entry["protocol"] == P0_PROTOCOL and not isinstance(fid, (int, float)):
            raise ExportError(f'evaluation file {path}: a {P0_PROTOCOL} record needs a numeric "{P0_PROTOCOL}/fid"')
    return entries
