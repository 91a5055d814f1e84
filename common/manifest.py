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
                       runtime samples at by default (1 when absent), written by `eval-gan tune-spread`;
                       optionally "variants": {PRECISION: {"file", "recipe"}}, lower-precision copies of
                       the generator's image path (`python -m export.variants`); records made with one
                       say "precision" (a record without it is fp32)
  generator.int8.onnx  (optional) eps, label -> image, int8 (export/variants.py)

(`.pt` TorchScript files carry the same contract.) Export writes this layout and the runtime reads
it; both take the names below from here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .files import atomic_write_text, folder_lock
from .validation import InvalidRequest, check_precision, check_spread

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
ARTIFACTS_ENV = "GAN_ARTIFACTS"
EXACT_PRECISION = "fp32"  # the exported graphs' own arithmetic
# A variant replaces fp32 by default only when its P0 records (at least VARIANT_SEEDS sampling seeds, plain
# sampling at the default spread) are no worse than fp32's means by more than these: FID up by 0.2, precision and
# recall down by 0.01 (issue 32's bar). The sign says which way is worse.
VARIANT_SEEDS = 3
VARIANT_TOLERANCE = {"fid": 0.2, "precision_k3": -0.01, "recall_k3": -0.01}


def artifacts_root() -> Path:
    """The user's models folder: $GAN_ARTIFACTS, else ./artifacts of the working directory (in a checkout of the
    project, the shipped models). `export-gan` writes there by default; the runtime searches it first."""
    if os.environ.get(ARTIFACTS_ENV):
        return Path(os.environ[ARTIFACTS_ENV]).absolute()
    return Path.cwd() / "artifacts"


class ArtifactError(UserError):
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
    def of(cls, values: list[float]) -> MetricSummary:
        mean = sum(values) / len(values)
        return cls(mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5, len(values))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_KINDS: dict[str, Callable[[Any], bool]] = {
    "a string": lambda v: isinstance(v, str),
    "a whole number": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a number": _is_number,
    "true or false": lambda v: isinstance(v, bool),
    "a JSON object": lambda v: isinstance(v, dict),
    "a list": lambda v: isinstance(v, list),
    "a list of numbers": lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
}


def _take(data: dict, key: str, kind: str, where: str, optional: bool = False) -> Any:
    """data[key] after checking it is of `kind` (one of _KINDS); a one-line ArtifactError naming `where` if not."""
    if optional and data.get(key) is None:
        return None
    value = data.get(key)
    if not _KINDS[kind](value):
        raise ArtifactError(f"{where} lacks {key!r} or it is not {kind}")
    return value


@dataclass(frozen=True)
class PriorInfo:
    kind: str
    num_labels: int  # 0 without labels, K for mixture priors, 10 for digit-indexed priors
    label_weights: list[float]  # [] without labels
    label: str  # what the graphs' label input means

    @classmethod
    def from_json(cls, data: Any, where: str) -> PriorInfo:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where} lacks 'prior' or it is not a JSON object")
        return cls(
            _take(data, "kind", "a string", where),
            _take(data, "num_labels", "a whole number", where),
            _take(data, "label_weights", "a list of numbers", where),
            _take(data, "label", "a string", where),
        )


@dataclass(frozen=True)
class GraphInfo:
    file: str
    inputs: dict[str, str]  # name -> dtype, shape and meaning
    outputs: dict[str, str]

    @classmethod
    def from_json(cls, data: Any, where: str) -> GraphInfo:
        if not isinstance(data, dict) or not isinstance(data.get("file"), str):
            raise ArtifactError(where)
        return cls(
            data["file"], _take(data, "inputs", "a JSON object", where), _take(data, "outputs", "a JSON object", where)
        )


# export/drs.py trains them; docs/artifacts.md explains them
DRS_HEAD_KINDS = ("score", "features", "finetuned", "classifier")
FEATURE_HEAD_KINDS = ("features", "classifier")  # an MLP on features: no scale and bias


@dataclass(frozen=True)
class DrsCalibration:
    """The DRS head on the critic and its calibration on the burn-in sample (export/drs.py)."""

    head: str  # what the calibrated logit is, in words
    scale: float | None  # D~ = scale * critic score + bias (score and finetuned heads; None for an MLP head)
    bias: float | None
    max_logit: float  # D~_M over the burn-in sample
    epsilon: float
    burn_in: int
    rates: list[float]
    gamma: list[float]  # gamma per rate, over all labels
    gamma_by_digit: list[list[float]] | None  # conditional models: one table per digit
    # How well the head separates real from generated images: "accuracy" and "auc" on held-out calibration images
    # no choice read ("auc" absent before head kinds; their "accuracy" was measured on the images it was fitted to).
    fit: dict
    head_kind: str = "score"  # one of DRS_HEAD_KINDS; manifests written before head kinds have a score head
    candidates: dict = field(default_factory=dict)  # kind -> {"selection_auc", "held_out_auc"} of each trained

    @classmethod
    def from_json(cls, data: Any, where: str) -> DrsCalibration:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where} lacks 'drs' or it is not a JSON object")
        numbers = {key: _take(data, key, "a number", where) for key in ("max_logit", "epsilon")}
        head_kind = _take(data, "head_kind", "a string", where, optional=True) or "score"
        if head_kind not in DRS_HEAD_KINDS:
            raise ArtifactError(f"{where} names an unknown DRS head_kind {head_kind!r}")
        line = {
            key: _take(data, key, "a number", where, optional=head_kind in FEATURE_HEAD_KINDS)
            for key in ("scale", "bias")
        }
        rates, gamma = (
            _take(data, "rates", "a list of numbers", where),
            _take(data, "gamma", "a list of numbers", where),
        )
        by_digit = _take(data, "gamma_by_digit", "a list", where, optional=True)
        if (
            len(rates) < 2
            or len(gamma) != len(rates)
            or any(not _KINDS["a list of numbers"](table) or len(table) != len(rates) for table in by_digit or [])
        ):
            raise ArtifactError(f"{where}: the DRS gamma tables do not match its rates")
        return cls(
            _take(data, "head", "a string", where),
            **line,
            **numbers,
            burn_in=_take(data, "burn_in", "a whole number", where),
            rates=rates,
            gamma=gamma,
            gamma_by_digit=by_digit,
            fit=_take(data, "fit", "a JSON object", where),
            head_kind=head_kind,
            candidates=_take(data, "candidates", "a JSON object", where, optional=True) or {},
        )

    def to_json(self) -> dict:
        """The manifest's "drs" object; one calibrated before head kinds (no candidates) keeps its keys as written."""
        data = dataclasses.asdict(self)
        if not self.candidates:
            del data["head_kind"], data["candidates"]
        return data

    def summary(self) -> str:
        """One line: the head's kind and how well it tells held-out real images from generated ones."""
        auc, accuracy = self.fit.get("auc"), self.fit.get("accuracy")
        if _is_number(auc) and _is_number(accuracy):
            return f"DRS head: {self.head_kind}, held-out AUC {auc:.3f}, accuracy {accuracy:.1%}"
        if _is_number(accuracy):
            return f"DRS head: {self.head_kind}, accuracy {accuracy:.1%} on the images it was fitted to"
        return f"DRS head: {self.head_kind}"


@dataclass(frozen=True)
class Sampling:
    """The latent spread the runtime samples at by default, and how it was chosen (`eval-gan tune-spread`)."""

    spread: float
    chosen_by: dict

    @classmethod
    def from_json(cls, data: Any, where: str) -> Sampling:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where} has a 'sampling' that is not a JSON object")
        try:
            spread = check_spread(data.get("spread"))
        except InvalidRequest:
            raise ArtifactError(
                f"{where} names a default spread {data.get('spread')!r}; it must be a finite number > 0"
            ) from None
        return cls(spread, data.get("chosen_by") or {})


@dataclass(frozen=True)
class ImageVariant:
    """A lower-precision copy of the generator graph's image path (eps, label -> image; no critic, no DRS head),
    which plain sampling may run instead of the exported arithmetic."""

    file: str
    recipe: dict  # how it was made: the tool, the calibration draws, what stays fp32

    @classmethod
    def from_json(cls, data: Any, where: str) -> ImageVariant:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: a variant is not a JSON object")
        return cls(_take(data, "file", "a string", where), _take(data, "recipe", "a JSON object", where))


@dataclass(frozen=True)
class Manifest:
    """manifest.json of one exported model, typed: export builds it, the runtime reads it, evaluation appends
    its records through `update_manifest`. `to_json` writes the keys in a fixed order."""

    folder: Path = field(compare=False)  # where it was read from or is written to; not part of the JSON
    variant: str
    architecture: str
    graph_format: str  # a key of GRAPH_EXTENSIONS
    latent_dim: int
    conditional: bool  # True when the label is a digit the user chooses (class-conditional models)
    prior: PriorInfo
    graphs: dict[str, GraphInfo]  # role (GRAPH_IO) -> its file and contract
    drs: DrsCalibration
    evaluation: list[dict]  # `eval-gan score` records, oldest first
    training: dict  # the run: its resolved config, epochs, cost
    sha256: dict[str, str]  # file name -> sha256 of every file the graphs need
    intensity_matching: dict | None = None  # the tone curve baked into the generator, if any
    opset: int | None = None  # ONNX exports
    producers: dict = field(default_factory=dict)  # package versions that made it
    sampling: Sampling | None = None
    variants: dict[str, ImageVariant] = field(default_factory=dict)  # precision -> its image graph
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_json(cls, data: Any, folder: Path) -> Manifest:
        """Check a parsed manifest.json against the contract; a one-line ArtifactError names what is wrong."""
        where = str(Path(folder) / MANIFEST_NAME)
        if not isinstance(data, dict):
            raise ArtifactError(f"{where} is not a manifest (expected a JSON object)")
        if data.get("artifact") != ARTIFACT_KIND:
            raise NotAGanExport(f'{folder} is not a GAN export (its manifest lacks "artifact": "{ARTIFACT_KIND}")')
        version = _take(data, "format_version", "a whole number", where)
        if version != FORMAT_VERSION:
            raise ArtifactError(f"{where} has format_version {version}; this runtime reads {FORMAT_VERSION}")
        graph_format = _take(data, "graph_format", "a string", where)
        if graph_format not in GRAPH_EXTENSIONS:
            raise ArtifactError(f"{where} names an unknown graph_format {graph_format!r}")
        graphs = _take(data, "graphs", "a JSON object", where)
        for role in GRAPH_IO:
            GraphInfo.from_json(graphs.get(role), f"{where} lists no {role} graph")
        sha256 = _take(data, "sha256", "a JSON object", where)
        variants = _take(data, "variants", "a JSON object", where, optional=True) or {}
        for precision in variants:
            try:
                check_precision(precision)
            except InvalidRequest as error:
                raise ArtifactError(f"{where} lists a variant of unknown precision ({error})") from None
        return cls(
            folder=Path(folder),
            variant=_take(data, "variant", "a string", where),
            architecture=_take(data, "architecture", "a string", where),
            graph_format=graph_format,
            latent_dim=_take(data, "latent_dim", "a whole number", where),
            conditional=_take(data, "conditional", "true or false", where),
            prior=PriorInfo.from_json(data.get("prior"), where),
            graphs={role: GraphInfo.from_json(info, f"{where} lists no {role} graph") for role, info in graphs.items()},
            drs=DrsCalibration.from_json(data.get("drs"), where),
            evaluation=_take(data, "evaluation", "a list", where),
            training=_take(data, "training", "a JSON object", where),
            sha256=sha256,
            intensity_matching=_take(data, "intensity_matching", "a JSON object", where, optional=True),
            opset=_take(data, "opset", "a whole number", where, optional=True),
            producers=_take(data, "producers", "a JSON object", where, optional=True) or {},
            sampling=None if data.get("sampling") is None else Sampling.from_json(data["sampling"], where),
            variants={precision: ImageVariant.from_json(info, where) for precision, info in variants.items()},
            format_version=version,
        )

    def to_json(self) -> dict:
        """The manifest.json object: the contract's keys in their fixed order (`sampling` only when set)."""
        data = {
            "artifact": ARTIFACT_KIND,
            "format_version": self.format_version,
            "variant": self.variant,
            "architecture": self.architecture,
            "graph_format": self.graph_format,
            "latent_dim": self.latent_dim,
            "conditional": self.conditional,
            "prior": dataclasses.asdict(self.prior),
            "graphs": {role: dataclasses.asdict(info) for role, info in self.graphs.items()},
            "intensity_matching": self.intensity_matching,
            "drs": self.drs.to_json(),
            "evaluation": self.evaluation,
            "opset": self.opset,
            "producers": self.producers,
            "training": self.training,
            "sha256": self.sha256,
        }
        if self.sampling is not None:
            data["sampling"] = dataclasses.asdict(self.sampling)
        if self.variants:
            data["variants"] = {precision: dataclasses.asdict(info) for precision, info in self.variants.items()}
        return data

    def to_text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def default_spread(self) -> float:
        """The latent spread the model samples at unless asked otherwise (`eval-gan tune-spread` chose it)."""
        return DEFAULT_SPREAD if self.sampling is None else self.sampling.spread

    def graph_file(self, role: str) -> str:
        return self.graphs[role].file

    def evaluations(
        self,
        protocol: str = P0_PROTOCOL,
        drs_rate: float | None = None,
        spread: float | None = None,
        precision: str = EXACT_PRECISION,
    ) -> list[dict]:
        """The manifest's evaluation records (eval-gan's format) under `protocol` at one sampling setting
        (spread None: the model's default) of the graphs at `precision`."""
        spread = self.default_spread if spread is None else spread
        return [
            entry
            for entry in self._records()
            if entry.get("protocol") == protocol
            and record_sampling(entry) == (drs_rate, spread)
            and record_precision(entry) == precision
        ]

    def samplings(self) -> list[tuple[float | None, float]]:
        """The (DRS rate, spread) settings with fp32 records: no DRS first, then by DRS rate; within each, the
        default spread first, then the others from the widest down."""
        return sorted(
            {record_sampling(entry) for entry in self._records() if record_precision(entry) == EXACT_PRECISION},
            key=lambda setting: (
                setting[0] is not None,
                setting[0] or 0.0,
                setting[1] != self.default_spread,
                -setting[1],
            ),
        )

    def _records(self) -> list[dict]:
        return [
            entry for entry in self.evaluation if isinstance(entry, dict) and isinstance(entry.get("metrics"), dict)
        ]

    def metric_summary(
        self,
        protocol: str = P0_PROTOCOL,
        drs_rate: float | None = None,
        spread: float | None = None,
        precision: str = EXACT_PRECISION,
    ) -> dict[str, MetricSummary]:
        """Each metric's mean and spread over the recorded sampling seeds (PROTOCOL.md item 6)."""
        values: dict[str, list[float]] = {}
        for entry in self.evaluations(protocol, drs_rate, spread, precision):
            for key, value in entry["metrics"].items():
                name = key.removeprefix(f"{protocol}/")
                if _is_number(value):
                    values.setdefault(name, []).append(float(value))
        return {name: MetricSummary.of(series) for name, series in values.items()}

    def p0_fid(self) -> float | None:
        """The mean P0 FID over the recorded sampling seeds, without DRS at the default spread; None if none
        is recorded."""
        summary = self.metric_summary().get("fid")
        return summary.mean if summary else None

    def variant_quality_holds(self, precision: str) -> bool:
        """Whether the variant's P0 records match fp32's by the VARIANT_TOLERANCE rule, each over at least
        VARIANT_SEEDS seeds (plain sampling at the default spread). Until they do, fp32 stays the default."""
        exact, variant = self.metric_summary(), self.metric_summary(precision=precision)
        for metric, worse_by in VARIANT_TOLERANCE.items():
            if metric not in exact or metric not in variant:
                return False
            if min(exact[metric].seeds, variant[metric].seeds) < VARIANT_SEEDS:
                return False
            if (variant[metric].mean - exact[metric].mean) / worse_by > 1:  # worse by more than allowed
                return False
        return True

    @property
    def generator_architecture(self) -> str:
        """The generator's: "mlp" or "conv" (`architecture` names the pair, e.g. "mlp G + conv D", when they differ)."""
        return self.architecture.split(" G + ")[0]

    def summary(self) -> str:
        labels = (
            "conditional (digit)"
            if self.conditional
            else (f"mixture K={self.prior.num_labels}" if self.prior.num_labels else "unconditional")
        )
        return f"{self.variant}, {self.architecture}, prior {self.prior.kind}, {labels}"

    def read_graph(self, role: str) -> bytes:
        """The graph's bytes, after checking them against the manifest's sha256."""
        return self.read_file(self.graph_file(role))

    def external_data(self) -> dict[str, bytes]:
        """External-data files the ONNX graphs refer to (name -> bytes, sha256 checked); {} for none."""
        if SHARED_WEIGHTS_NAME not in self.sha256:
            return {}
        return {SHARED_WEIGHTS_NAME: self.read_file(SHARED_WEIGHTS_NAME)}

    def read_file(self, name: str) -> bytes:
        """One of the folder's files, after checking it against the manifest's sha256."""
        path = self.folder / name
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ArtifactError(f"model {self.name}: cannot read {path} ({error.strerror})") from None
        if sha256_hex(data) != self.sha256.get(name):
            raise ArtifactError(
                f"model {self.name}: {name} does not match the sha256 in its manifest "
                "(modified or truncated); re-export it with export-gan"
            )
        return data

    def verify(self) -> None:
        for role in GRAPH_IO:
            self.read_graph(role)
        for variant in self.variants.values():
            self.read_file(variant.file)
        self.external_data()


def record_precision(record: dict) -> str:
    """The precision of the graphs a record sampled (records from before variants existed: fp32)."""
    return record.get("precision") or EXACT_PRECISION


def record_sampling(record: dict) -> tuple[float | None, float]:
    """A record's (DRS rate, spread)."""
    spread = record.get("spread")  # absent in records from before the option: spread 1
    return record.get("drs_rate"), DEFAULT_SPREAD if spread is None else spread


def sampling_label(drs_rate: float | None, spread: float = DEFAULT_SPREAD, default: float = DEFAULT_SPREAD) -> str:
    """'plain', 'DRS 20%', 'spread 0.9' or 'DRS 20%, spread 0.9'; for a model whose default spread
    (`default`) is not 1 every spread is named and the default marked: 'spread 0.95 (default)', 'spread 1'."""
    named = spread != DEFAULT_SPREAD or default != DEFAULT_SPREAD
    parts = ([] if drs_rate is None else [f"DRS {drs_rate:.0%}"]) + (
        [f"spread {spread:g}" + (" (default)" if spread == default != DEFAULT_SPREAD else "")] if named else []
    )
    return ", ".join(parts) or "plain"


def read_manifest(folder: Path) -> Manifest:
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise ArtifactError(f"{folder} is not a model folder: cannot read {MANIFEST_NAME} ({error.strerror})") from None
    except ValueError:
        raise ArtifactError(f"{path} is not valid JSON") from None
    return Manifest.from_json(data, folder)


def update_manifest(folder: Path, change: Callable[[Manifest], Manifest]) -> Manifest:
    """Rewrite a model's manifest as `change(manifest)` returns it, atomically and under the folder's lock (scores
    of one model may run in parallel, one per sampling seed: the lock keeps every record)."""
    folder = read_manifest(folder).folder  # a one-line error for a folder that is not a model, before locking it
    with folder_lock(folder):
        changed = change(read_manifest(folder))
        atomic_write_text(folder / MANIFEST_NAME, changed.to_text())
    return changed
