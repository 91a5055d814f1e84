"""An exported model folder: `manifest.json` beside its graphs, and the graphs' contract.

    artifacts/NAME/
      generator.onnx   eps float32 [N, latent_dim], label int64 [N] -> image [N, 1, 28, 28] in [0, 1],
                       logit [N] (calibrated D~), F [N] (DRS, with the stored D~_M)
      critic.onnx      image float32 [N, 1, 28, 28] in [0, 1], label int64 [N] -> logit [N], F [N]
      critic.weights   (ONNX only) the critic's weights, which both graphs use, stored once as ONNX
                       external data; listed in the manifest's sha256 like the graphs
      manifest.json    what the model is, its DRS calibration, sha256 of every file, and its
                       evaluations: `eval-gan score` records ({"protocol", "seed", "samples",
                       "drs_rate", "spread", "metrics": {"p0/fid": ...}, ...}), appended by
                       `eval-gan score --record`; a record without "spread" was sampled at spread 1;
                       optionally "sampling": {"spread": S, "chosen_by": {...}}, the latent spread the
                       runtime samples at by default (1 when absent), written by `eval-gan tune-spread`

(`.pt` TorchScript files carry the same contract.) Export writes this layout and the runtime reads
it; both take the names below from here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .fsutil import atomic_write_text, folder_lock

MANIFEST_NAME = "manifest.json"
# artifacts/ also holds other exports (the evaluation's MNIST classifier); ours say "artifact": "gan".
ARTIFACT_KIND = "gan"
FORMAT_VERSION = 1
GRAPH_EXTENSIONS = {"onnx": ".onnx", "torchscript": ".pt"}
GRAPH_IO = {
    "generator": (("eps", "label"), ("image", "logit", "F")),
    "critic": (("image", "label"), ("logit", "F")),
}
P0_PROTOCOL = "p0"
DEFAULT_SPREAD = 1.0  # the latent noise scale of plain sampling (eps ~ N(0, I)), unless a manifest names its own
SHARED_WEIGHTS_NAME = "critic.weights"


class ArtifactError(Exception):
    """A model folder that cannot be used: missing, unreadable, tampered with; one-line message."""


class NotAGanExport(ArtifactError):
    """A folder whose manifest belongs to another kind of artifact."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class MetricSummary:
    mean: float
    spread: float  # population standard deviation over the seeds (0 for one seed)
    seeds: int

    @classmethod
    def of(cls, values: list[float]) -> "MetricSummary":
        mean = sum(values) / len(values)
        return cls(mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5, len(values))


@dataclass(frozen=True)
class DrsCalibration:
    max_logit: float  # D~_M over the burn-in sample
    epsilon: float
    rates: list[float]
    gamma: list[float]  # gamma per rate, over all labels
    gamma_by_digit: list[list[float]] | None  # conditional models: one table per digit


@dataclass(frozen=True)
class Manifest:
    folder: Path
    data: dict  # the whole manifest.json, as written by export

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def graph_format(self) -> str:
        return self.data["graph_format"]

    @property
    def latent_dim(self) -> int:
        return self.data["latent_dim"]

    @property
    def conditional(self) -> bool:
        """True when the label is a digit the user chooses (class-conditional models)."""
        return self.data["conditional"]

    @property
    def num_labels(self) -> int:
        """0 without labels, K for mixture priors, 10 for digit-indexed priors."""
        return self.data["prior"]["num_labels"]

    @property
    def label_weights(self) -> list[float]:
        return self.data["prior"]["label_weights"]

    @property
    def drs(self) -> DrsCalibration:
        drs = self.data["drs"]
        return DrsCalibration(drs["max_logit"], drs["epsilon"], drs["rates"], drs["gamma"], drs.get("gamma_by_digit"))

    @property
    def default_spread(self) -> float:
        """The latent spread the model samples at unless asked otherwise (`eval-gan tune-spread` chose it)."""
        return self.data.get("sampling", {}).get("spread", DEFAULT_SPREAD)

    def graph_file(self, role: str) -> str:
        return self.data["graphs"][role]["file"]

    def evaluations(self, protocol: str = P0_PROTOCOL, drs_rate: float | None = None,
                    spread: float | None = None) -> list[dict]:
        """The manifest's evaluation records (eval-gan's format) under `protocol` at one sampling setting
        (spread None: the model's default)."""
        spread = self.default_spread if spread is None else spread
        return [entry for entry in self._records()
                if entry.get("protocol") == protocol and record_sampling(entry) == (drs_rate, spread)]

    def samplings(self) -> list[tuple[float | None, float]]:
        """The (DRS rate, spread) settings with records: no DRS first, then by DRS rate; within each, the
        default spread first, then the others from the widest down."""
        return sorted({record_sampling(entry) for entry in self._records()},
                      key=lambda setting: (setting[0] is not None, setting[0] or 0.0,
                                           setting[1] != self.default_spread, -setting[1]))

    def _records(self) -> list[dict]:
        return [entry for entry in self.data.get("evaluation", [])
                if isinstance(entry, dict) and isinstance(entry.get("metrics"), dict)]

    def metric_summary(self, protocol: str = P0_PROTOCOL, drs_rate: float | None = None,
                       spread: float | None = None) -> dict[str, MetricSummary]:
        """Each metric's mean and spread over the recorded sampling seeds (PROTOCOL.md item 6)."""
        values: dict[str, list[float]] = {}
        for entry in self.evaluations(protocol, drs_rate, spread):
            for key, value in entry["metrics"].items():
                name = key.removeprefix(f"{protocol}/")
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values.setdefault(name, []).append(float(value))
        return {name: MetricSummary.of(series) for name, series in values.items()}

    def p0_fid(self) -> float | None:
        """The mean P0 FID over the recorded sampling seeds, without DRS at the default spread; None if none
        is recorded."""
        summary = self.metric_summary().get("fid")
        return summary.mean if summary else None

    def summary(self) -> str:
        prior = self.data["prior"]
        labels = "conditional (digit)" if self.conditional else (
            f"mixture K={prior['num_labels']}" if prior["num_labels"] else "unconditional")
        return f"{self.data['variant']}, {self.data['architecture']}, prior {prior['kind']}, {labels}"

    def read_graph(self, role: str) -> bytes:
        """The graph's bytes, after checking them against the manifest's sha256."""
        return self.read_file(self.graph_file(role))

    def external_data(self) -> dict[str, bytes]:
        """External-data files the ONNX graphs refer to (name -> bytes, sha256 checked); {} for none."""
        if SHARED_WEIGHTS_NAME not in self.data["sha256"]:
            return {}
        return {SHARED_WEIGHTS_NAME: self.read_file(SHARED_WEIGHTS_NAME)}

    def read_file(self, name: str) -> bytes:
        """One of the folder's files, after checking it against the manifest's sha256."""
        path = self.folder / name
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ArtifactError(f"model {self.name}: cannot read {path} ({error.strerror})") from None
        expected = self.data["sha256"].get(name)
        if sha256_hex(data) != expected:
            raise ArtifactError(f"model {self.name}: {name} does not match the sha256 in its manifest "
                                "(modified or truncated); re-export it with export-gan")
        return data

    def verify(self) -> None:
        for role in GRAPH_IO:
            self.read_graph(role)
        self.external_data()


def record_sampling(record: dict) -> tuple[float | None, float]:
    """A record's (DRS rate, spread)."""
    spread = record.get("spread")  # absent in records from before the option: spread 1
    return record.get("drs_rate"), DEFAULT_SPREAD if spread is None else spread


def sampling_label(drs_rate: float | None, spread: float = DEFAULT_SPREAD, default: float = DEFAULT_SPREAD) -> str:
    """'plain', 'DRS 20%', 'spread 0.9' or 'DRS 20%, spread 0.9'; for a model whose default spread
    (`default`) is not 1 every spread is named and the default marked: 'spread 0.95 (default)', 'spread 1'."""
    named = spread != DEFAULT_SPREAD or default != DEFAULT_SPREAD
    parts = ([] if drs_rate is None else [f"DRS {drs_rate:.0%}"]) + (
        [f"spread {spread:g}" + (" (default)" if spread == default != DEFAULT_SPREAD else "")] if named else [])
    return ", ".join(parts) or "plain"


def _record_identity(record: dict) -> tuple:
    """Two records describe the same measurement when these agree; a new one replaces the old."""
    return (*(record.get(key) for key in ("protocol", "samples", "seed", "class_sampling")), *record_sampling(record))


def _update(folder: Path, change) -> Manifest:
    """Rewrite a model's manifest as `change(data)` returns it, atomically and under the folder's lock (scores
    of one model may run in parallel, one per sampling seed: the lock keeps every record)."""
    folder = read_manifest(folder).folder  # a one-line error for a folder that is not a model, before locking it
    with folder_lock(folder):
        manifest = read_manifest(folder)
        data = change(manifest.data)
        atomic_write_text(manifest.folder / MANIFEST_NAME, json.dumps(data, indent=2) + "\n")
    return Manifest(manifest.folder, data)


def record_evaluation(folder: Path, record: dict) -> Manifest:
    """Add an `eval-gan score` record to a model's manifest, replacing the same measurement."""
    def add(data: dict) -> dict:
        kept = [entry for entry in data["evaluation"]
                if not (isinstance(entry, dict) and _record_identity(entry) == _record_identity(record))]
        return {**data, "evaluation": [*kept, record]}
    return _update(folder, add)


def set_default_spread(folder: Path, spread: float, chosen_by: dict) -> Manifest:
    """Make `spread` the model's default latent spread, with how it was chosen."""
    _check_spread(spread, folder / MANIFEST_NAME)
    return _update(folder, lambda data: {**data, "sampling": {"spread": spread, "chosen_by": chosen_by}})


def _check_spread(spread, path: Path) -> None:
    if not (isinstance(spread, (int, float)) and not isinstance(spread, bool) and 0 < spread < float("inf")):
        raise ArtifactError(f"{path} names a default spread {spread!r}; it must be a finite number > 0")


_REQUIRED = {
    "format_version": int, "variant": str, "architecture": str, "graph_format": str, "latent_dim": int,
    "conditional": bool, "prior": dict, "graphs": dict, "sha256": dict, "drs": dict, "evaluation": list,
}


def read_manifest(folder: Path) -> Manifest:
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise ArtifactError(f"{folder} is not a model folder: cannot read {MANIFEST_NAME} ({error.strerror})") from None
    except ValueError:
        raise ArtifactError(f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} is not a manifest (expected a JSON object)")
    if data.get("artifact") != ARTIFACT_KIND:
        raise NotAGanExport(f"{folder} is not a GAN export (its manifest lacks \"artifact\": \"{ARTIFACT_KIND}\")")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind):
            raise ArtifactError(f"{path} lacks {key!r} or it is not a {kind.__name__}")
    if data["format_version"] != FORMAT_VERSION:
        raise ArtifactError(f"{path} has format_version {data['format_version']}; this runtime reads {FORMAT_VERSION}")
    if data["graph_format"] not in GRAPH_EXTENSIONS:
        raise ArtifactError(f"{path} names an unknown graph_format {data['graph_format']!r}")
    for role in GRAPH_IO:
        if not isinstance(data["graphs"].get(role), dict) or "file" not in data["graphs"][role]:
            raise ArtifactError(f"{path} lists no {role} graph")
    if "sampling" in data:
        if not isinstance(data["sampling"], dict):
            raise ArtifactError(f"{path} has a 'sampling' that is not a JSON object")
        _check_spread(data["sampling"].get("spread"), path)
    return Manifest(folder, data)
