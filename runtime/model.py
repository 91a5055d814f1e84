"""`GanModel`: generate and score digits with an exported model, on onnxruntime + numpy only.

    model = GanModel.load("wgan_gp_cond_mlp_seed0")        # a name under artifacts/, a folder, or None
    images, stats = model.generate(100, seed=0, digit=3, drs_rate=0.2)   # uint8 [100, 28, 28]
    print(stats.acceptance_rate)
    scores = model.score(images, digit=3)                  # calibrated realness per image

Noise is drawn here with numpy (`default_rng(seed).standard_normal((n, latent_dim), float32)`,
then the labels from the same generator), so a seed gives the same digits on CPU and CUDA.
Each file's sha256 (graphs and shared weights) is checked against the manifest before onnxruntime loads it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from common.drs import acceptance_probability, drs_f, interpolate_gamma, sigmoid
from common.images import unit_to_uint8
from common.manifest import ArtifactError, Manifest, read_manifest
from common.validation import (
    NUM_DIGITS,
    InvalidRequest,
    check_count,
    check_digit,
    check_rate,
    check_seed,
    check_spread,
    check_whole,
)

from .registry import locate

DEVICES = ("auto", "cpu", "cuda")
# Images per graph run: on 2 cores 256 runs as fast as 1024 (see bench/runtime_speed.py) and keeps
# a 10,000-image run under ~150 MB of peak memory.
DEFAULT_BATCH_SIZE = 256
# Without an explicit bound, DRS gives up after this many times the proposals the target rate needs.
PROPOSAL_BOUND_FACTOR = 10


class ProposalLimitReached(InvalidRequest):
    """DRS hit its bound on proposals before accepting enough images."""


@dataclass(frozen=True)
class GenerationStats:
    requested: int  # images returned
    proposals: int  # images generated and scored (= requested without DRS)
    accepted: int  # proposals accepted (the last batch may accept more than were needed)
    target_rate: float  # 1.0 = no rejection
    max_logit: float  # D~_M at the end (the stored one, or a higher value seen while sampling)
    accepted_mean_logit: float  # mean calibrated logit D~ of accepted proposals
    rejected_mean_logit: float  # ... of rejected ones (nan when none was rejected)
    labels: np.ndarray  # int64 [requested]: digit, mixture component, or 0, per returned image

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposals


@dataclass(frozen=True)
class Scores:
    logit: np.ndarray  # calibrated logit D~ per image
    realness: np.ndarray  # sigmoid(D~): the head's probability that the image is a real MNIST digit
    acceptance: np.ndarray  # DRS acceptance probability sigmoid(F - gamma) at the requested rate
    digit: np.ndarray | None  # conditional models: the digit scored (the best one when none was given)


def _providers(device: str) -> list[str]:
    if device not in DEVICES:
        raise InvalidRequest(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise InvalidRequest("device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    if device != "cpu" and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class GanModel:
    """An exported model folder with lazily created onnxruntime sessions (generator, critic)."""

    def __init__(self, manifest: Manifest, device: str = "auto"):
        if manifest.graph_format != "onnx":
            raise ArtifactError(
                f"model {manifest.name} is a {manifest.graph_format} export; gan-runtime runs ONNX "
                "exports (export-gan RUN_DIR --format onnx)"
            )
        self.manifest = manifest
        self.providers = _providers(device)
        self._sessions: dict[str, ort.InferenceSession] = {}

    @classmethod
    def load(cls, model: str | Path | None = None, device: str = "auto") -> GanModel:
        """`model`: a name under artifacts/ ($GAN_ARTIFACTS), a model folder, or None for the best shipped."""
        folder, _ = locate(model)
        return cls(read_manifest(folder), device)

    # ------------------------------------------------------------------ what the model is
    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def conditional(self) -> bool:
        """True when generate() and score() take a digit."""
        return self.manifest.conditional

    @property
    def num_components(self) -> int:
        """Mixture components an unconditional mixture prior draws from (0 otherwise)."""
        return 0 if self.conditional else self.manifest.prior.num_labels

    @property
    def default_spread(self) -> float:
        """The latent spread generate() uses unless given one."""
        return self.manifest.default_spread

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        n: int,
        seed: int = 0,
        digit: int | None = None,
        component: int | None = None,
        drs_rate: float | None = None,
        spread: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_proposals: int | None = None,
    ) -> tuple[np.ndarray, GenerationStats]:
        """`n` images as uint8 [n, 28, 28] (what a PNG stores) and statistics of the run.

        digit: conditional models only (else a digit per image is drawn uniformly).
        component: mixture priors only (else components are drawn by the mixture weights).
        drs_rate: target acceptance rate of discriminator rejection sampling in (0, 1]; None or 1.0
            keeps every proposal. Under DRS, proposals come in rounds of `batch_size`, so the images
            depend on the seed and the batch size.
        spread: scales the noise eps (below 1: typical digits, above 1: more diverse ones); None: the
            model's default (`default_spread`: its manifest's, chosen on held-out data, else 1).
        max_proposals: DRS gives up past this many proposals [10 x n / drs_rate].
        """
        n, seed = check_count(n), check_seed(seed)
        spread = check_spread(self.default_spread if spread is None else spread)
        batch_size = check_count(batch_size, "batch size")
        rate = 1.0 if drs_rate is None else check_rate(drs_rate)
        self._check_label_choice(digit, component)
        rng = np.random.default_rng(seed)
        if rate == 1.0:
            eps = rng.standard_normal((n, self.manifest.latent_dim), dtype=np.float32)
            eps *= np.float32(spread)
            labels = self._draw_labels(rng, n, digit, component)
            images, logits, _ = self._generate_batches(eps, labels, batch_size)
            stats = GenerationStats(n, n, n, 1.0, self.manifest.drs.max_logit, float(logits.mean()), math.nan, labels)
            return images, stats
        bound = max_proposals if max_proposals is not None else math.ceil(PROPOSAL_BOUND_FACTOR * n / rate)
        bound = check_count(bound, "the bound on proposals")
        return self._rejection_sample(rng, n, digit, component, rate, spread, batch_size, bound)

    def _rejection_sample(self, rng, n, digit, component, rate, spread, batch_size, bound):
        drs = self.manifest.drs
        running_max = drs.max_logit
        kept_images, kept_labels = [], []
        kept = proposals = accepted = 0
        logit_sums = np.zeros(2)  # accepted, rejected
        while kept < n:
            if proposals >= bound:
                raise ProposalLimitReached(
                    f"DRS stopped at its bound of {bound:,} proposals with {kept} of {n} images accepted "
                    f"({accepted / proposals:.2%} acceptance for a target of {rate * 100:g}%); "
                    "raise the bound (--max-proposals) or the rate"
                )
            size = min(batch_size, bound - proposals)
            eps = rng.standard_normal((size, self.manifest.latent_dim), dtype=np.float32)
            eps *= np.float32(spread)
            labels = self._draw_labels(rng, size, digit, component)
            uniform = rng.random(size)
            images, logits, f = self._generate_batches(eps, labels, batch_size)
            running_max = max(running_max, float(logits.max()))
            if running_max > drs.max_logit:  # the graph's F used the stored D~_M: recompute with the new one
                f = drs_f(logits, running_max, drs.epsilon)
            accept = uniform < acceptance_probability(f, self._gamma(rate, labels))
            proposals += size
            accepted += int(accept.sum())
            logit_sums += [logits[accept].sum(), logits[~accept].sum()]
            take = np.flatnonzero(accept)[: n - kept]
            kept_images.append(images[take])
            kept_labels.append(labels[take])
            kept += take.size
        rejected = proposals - accepted
        stats = GenerationStats(
            n,
            proposals,
            accepted,
            rate,
            running_max,
            float(logit_sums[0] / max(accepted, 1)),
            float(logit_sums[1] / rejected) if rejected else math.nan,
            np.concatenate(kept_labels),
        )
        return np.concatenate(kept_images), stats

    def grid_layout(self, columns: int = 10) -> tuple[int, str]:
        """(rows, what a row is) of a sample grid: one row per digit or mixture component, else columns x columns."""
        if self.conditional:
            return NUM_DIGITS, f"one row per digit 0-{NUM_DIGITS - 1}"
        if self.num_components:
            return self.num_components, f"one row per mixture component 0-{self.num_components - 1}"
        return columns, f"{columns}x{columns}"

    def grid(self, columns: int = 10, seed: int = 0) -> tuple[np.ndarray, int]:
        """(uint8 images, rows) of a sample grid without DRS; every row of labels uses the same seed, hence the
        same noise, so rows differ only by their label."""
        rows, _ = self.grid_layout(columns)
        if not (self.conditional or self.num_components):
            return self.generate(rows * columns, seed=seed)[0], rows
        label = "digit" if self.conditional else "component"
        return np.concatenate([self.generate(columns, seed=seed, **{label: row})[0] for row in range(rows)]), rows

    def _check_label_choice(self, digit: int | None, component: int | None) -> None:
        if digit is not None:
            check_digit(digit)
            if not self.conditional:
                raise InvalidRequest(
                    f"model {self.name} is unconditional ({self.manifest.summary()}): it takes no digit"
                )
        if component is not None:
            if not self.num_components:
                raise InvalidRequest(
                    f"model {self.name} has no mixture components to choose from ({self.manifest.summary()})"
                )
            check_whole(component, "component", 0, self.num_components - 1)

    def _draw_labels(self, rng: np.random.Generator, n: int, digit: int | None, component: int | None) -> np.ndarray:
        chosen = digit if digit is not None else component
        if chosen is not None:
            return np.full(n, chosen, dtype=np.int64)
        if self.conditional:
            return rng.integers(0, NUM_DIGITS, size=n, dtype=np.int64)
        if self.num_components:
            return rng.choice(self.num_components, size=n, p=np.asarray(self.manifest.prior.label_weights)).astype(
                np.int64
            )
        return np.zeros(n, dtype=np.int64)

    def _generate_batches(self, eps: np.ndarray, labels: np.ndarray, batch_size: int):
        """(uint8 images [n, 28, 28], logits float64 [n], F float64 [n]) through the generator graph."""
        session = self._session("generator")
        images = np.empty((len(eps), 28, 28), dtype=np.uint8)  # quantised per batch: memory stays at uint8 size
        logits, fs = np.empty(len(eps)), np.empty(len(eps))
        for start in range(0, len(eps), batch_size):
            rows = slice(start, start + batch_size)
            image, logits[rows], fs[rows] = session.run(None, {"eps": eps[rows], "label": labels[rows]})
            images[rows] = unit_to_uint8(image[:, 0])
        return images, logits, fs

    def _gamma(self, rate: float, labels: np.ndarray) -> float | np.ndarray | None:
        """gamma for the target rate: per digit for conditional models (each digit hits the rate)."""
        drs = self.manifest.drs
        if rate == 1.0:
            return None
        if self.conditional and drs.gamma_by_digit:
            per_digit = np.array([interpolate_gamma(drs.rates, table, rate) for table in drs.gamma_by_digit])
            return per_digit[labels]
        return interpolate_gamma(drs.rates, drs.gamma, rate)

    # ------------------------------------------------------------------ scoring
    def score(self, images: np.ndarray, digit: int | None = None, drs_rate: float = 0.2) -> Scores:
        """Calibrated realness and DRS acceptance probability of images.

        images: uint8 [N, 28, 28] (or [N, 1, 28, 28]) as PNGs store them, or floats in [0, 1].
        digit: conditional models only; without it each image is scored under every digit and
            the best digit is reported.
        """
        check_rate(drs_rate)
        self._check_label_choice(digit, None)
        unit = _as_unit_images(images)
        session = self._session("critic")
        if self.conditional and digit is None:
            per_digit = [
                session.run(None, {"image": unit, "label": np.full(len(unit), d, dtype=np.int64)})
                for d in range(NUM_DIGITS)
            ]
            logits = np.stack([out[0] for out in per_digit])
            fs = np.stack([out[1] for out in per_digit])
            labels = logits.argmax(axis=0)
            rows = np.arange(len(unit))
            logit, f = logits[labels, rows], fs[labels, rows]
        else:
            labels = np.full(len(unit), 0 if digit is None else digit, dtype=np.int64)
            logit, f = session.run(None, {"image": unit, "label": labels})
        logit = logit.astype(np.float64)
        acceptance = acceptance_probability(f, self._gamma(drs_rate, labels))
        return Scores(logit, sigmoid(logit), acceptance, labels.astype(np.int64) if self.conditional else None)

    # ------------------------------------------------------------------ sessions
    @functools.cached_property
    def _external_data(self) -> dict[str, bytes]:
        """The shared weights both sessions use, read and checked once; onnxruntime copies what it needs."""
        return self.manifest.external_data()

    def _session(self, role: str) -> ort.InferenceSession:
        if role not in self._sessions:
            graph = self.manifest.read_graph(role)  # sha256 checked before onnxruntime sees the bytes
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only: no provider chatter on the user's terminal
            # Idle threads sleep instead of spinning: on a small or shared CPU, spinning threads take
            # the cores the working ones need (measured: faster at every batch size on 2 busy cores).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            external = self._external_data
            if external:
                options.add_external_initializers_from_files_in_memory(
                    list(external), list(external.values()), [len(data) for data in external.values()]
                )
            try:
                self._sessions[role] = ort.InferenceSession(graph, options, providers=self.providers)
            except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph classes
                raise ArtifactError(
                    f"model {self.name}: onnxruntime cannot load {self.manifest.graph_file(role)} "
                    f"({str(error).splitlines()[0]})"
                ) from None
        return self._sessions[role]


def _as_unit_images(images: np.ndarray) -> np.ndarray:
    """uint8 or [0, 1] float images, [N, 28, 28] or [N, 1, 28, 28] -> float32 [N, 1, 28, 28] in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1:] != (1, 28, 28) or len(images) == 0:
        raise InvalidRequest(f"images must be [N, 28, 28] greyscale 28x28 digits, got shape {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(images.dtype, np.floating) or images.min() < 0 or images.max() > 1:
        raise InvalidRequest("images must be uint8 or floats in [0, 1]")
    return images.astype(np.float32)
