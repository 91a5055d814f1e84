"""`GanModel`: generate and score digits with an exported model, on onnxruntime + numpy only.

    model = GanModel.load("wgan_gp_cond_mlp_seed0")        # a name under artifacts/, a folder, or None
    images, stats = model.generate(100, seed=0, digit=3, drs_rate=0.2)   # uint8 [100, 28, 28]
    print(stats.acceptance_rate)
    scores = model.score(images, digit=3)                  # calibrated realness per image

Noise is drawn here with numpy (`default_rng(seed).standard_normal((n, latent_dim), float32)`,
then the labels from the same generator), so a seed gives the same digits on CPU and CUDA.
Each file's sha256 (graphs and shared weights) is checked against the manifest before onnxruntime loads it.

Sessions open when first needed: plain sampling runs the generator graph cut to its image output (no critic;
runtime/image_cache.py), or a lower-precision variant of it; DRS runs the whole generator graph and `score` the
critic graph. `precision` picks the image graph: "fp32" is the exported arithmetic (the same bytes as the whole
graph's image output), a variant ("int8") is used where the manifest lists it; by default a variant is used on
the CPU once its P0 records match fp32's (common/manifest.py, `variant_quality_holds`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from common.drs import acceptance_probability, drs_f, interpolate_gamma, sigmoid
from common.errors import UserError
from common.images import unit_to_uint8
from common.manifest import EXACT_PRECISION, ArtifactError, Manifest, read_manifest
from common.validation import (
    NUM_DIGITS,
    InvalidRequest,
    check_count,
    check_device,
    check_digit,
    check_precision,
    check_rate,
    check_seed,
    check_spread,
    check_whole,
)

from .image_cache import image_graph
from .registry import locate

# Images per round (a progress step; under DRS, the proposals drawn at a time): on 2 cores 256 runs as fast as 1024
# (see bench/runtime_speed.py) and keeps a 10,000-image run under ~150 MB of peak memory.
DEFAULT_BATCH_SIZE = 256
# Images per graph run of a conv generator, whatever the round: its activations grow with the run (conv_w96: two
# 96 x 28 x 28 float maps, ~0.6 MB, per image) while runs of 8 to 256 images gave the same images/s (fp32 and
# int8, 2 cores, within the noise). Same images: every row is computed alone (tested). An MLP generator
# runs whole rounds: its activations are small and its GEMMs faster the more rows they get.
CONV_RUN_IMAGES = 16
# Without an explicit bound, DRS gives up after this many times the proposals the target rate needs,
# and never after more than DEFAULT_MAX_PROPOSALS: a request whose N / rate exceeds that is refused up
# front. 250,000 proposals take ~15-25 s with the MLP generators (10-17k proposals/s measured on this
# project's 2 shared CPU cores, batch 256) and ~14 min with the default conv_w96 one (~300/s); 10,000
# images fit down to a 4% rate. Above it, say so: --max-proposals (the CLI) or max_proposals.
PROPOSAL_BOUND_FACTOR = 10
DEFAULT_MAX_PROPOSALS = 250_000

# progress(done, total): images made so far (accepted ones under DRS) of the `total` asked for.
Progress = Callable[[int, int], None]


class RequestTooCostly(InvalidRequest):
    """Refused before generating: N / rate proposals exceed the bound on proposals, or their estimated time
    exceeds the time budget. `expected` is N / rate rounded up; `seconds` the time estimate (time refusals)."""

    def __init__(
        self,
        message: str,
        *,
        n: int,
        rate: float,
        expected: int,
        bound: int | None = None,
        seconds: float | None = None,
        budget: float | None = None,
    ):
        super().__init__(message)
        self.n, self.rate, self.expected, self.bound = n, rate, expected, bound
        self.seconds, self.budget = seconds, budget


class ProposalLimitReached(InvalidRequest):
    """DRS hit its bound on proposals before accepting enough images."""


class TimeLimitReached(ProposalLimitReached):
    """Generation ran out of its time budget (max_seconds) before making enough images."""


@dataclass(frozen=True)
class GenerationStats:
    requested: int  # images returned
    proposals: int  # images generated and scored (= requested without DRS)
    accepted: int  # proposals accepted (the last batch may accept more than were needed)
    target_rate: float  # 1.0 = no rejection
    max_logit: float  # D~_M at the end (the stored one, or a higher value seen while sampling)
    accepted_mean_logit: float  # mean calibrated logit D~ of accepted proposals (nan without DRS: no critic runs)
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
    check_device(device)
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise InvalidRequest("device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    if device != "cpu" and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class GanModel:
    """An exported model folder with lazily created onnxruntime sessions (generator, critic)."""

    def __init__(self, manifest: Manifest, device: str = "auto", precision: str | None = None):
        if manifest.graph_format != "onnx":
            raise ArtifactError(
                f"model {manifest.name} is a {manifest.graph_format} export; gan-runtime runs ONNX "
                "exports (export-gan RUN_DIR --format onnx)"
            )
        self.manifest = manifest
        self.providers = _providers(device)
        self.precision = self._choose_precision(precision)
        self._chosen_precision = precision is not None
        self._sessions: dict[str, ort.InferenceSession] = {}
        # batch size -> the fastest run of that size seen: of the whole generator graph (DRS), of the image graph
        self._round_seconds: dict[int, float] = {}
        self._image_round_seconds: dict[int, float] = {}

    @classmethod
    def load(cls, model: str | Path | None = None, device: str = "auto", precision: str | None = None) -> GanModel:
        """`model`: a name under artifacts/ ($GAN_ARTIFACTS), a model folder, or None for the best shipped;
        `precision`: of plain sampling's image graph (None: the default, see `precisions`)."""
        folder, _ = locate(model)
        return cls(read_manifest(folder), device, precision)

    @property
    def precisions(self) -> list[str]:
        """The precisions plain sampling can run at: fp32 and the manifest's variants."""
        return [EXACT_PRECISION, *sorted(self.manifest.variants)]

    def _choose_precision(self, precision: str | None) -> str:
        """The asked precision, if the model has it; by default a variant whose P0 records match fp32's, on the
        CPU (its int8 kernels are the CPU's; on CUDA fp32 is faster), else fp32."""
        if precision is None:
            matching = [p for p in sorted(self.manifest.variants) if self.manifest.variant_quality_holds(p)]
            return matching[0] if matching and self.providers == ["CPUExecutionProvider"] else EXACT_PRECISION
        check_precision(precision)
        if precision not in self.precisions:
            raise InvalidRequest(
                f"model {self.name} has no {precision} variant (it runs at: {', '.join(self.precisions)})"
            )
        return precision

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
        max_seconds: float | None = None,
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, GenerationStats]:
        """`n` images as uint8 [n, 28, 28] (what a PNG stores) and statistics of the run.

        digit: conditional models only (else a digit per image is drawn uniformly).
        component: mixture priors only (else components are drawn by the mixture weights).
        drs_rate: target acceptance rate of discriminator rejection sampling in (0, 1]; None or 1.0
            keeps every proposal. Under DRS, proposals come in rounds of `batch_size`, so the images
            depend on the seed and the batch size.
        spread: scales the noise eps (below 1: typical digits, above 1: more diverse ones); None: the
            model's default (`default_spread`: its manifest's, chosen on held-out data, else 1).
        max_proposals: DRS gives up past this many proposals [min(10 x n / drs_rate, DEFAULT_MAX_PROPOSALS)];
            a request whose n / drs_rate alone exceeds it is refused up front (RequestTooCostly), before any
            graph runs; one that reaches it mid-way raises ProposalLimitReached.
        max_seconds: a wall-clock budget (for servers): refused up front when the n / drs_rate proposals would
            take longer at this model's measured speed (RequestTooCostly), stopped between rounds (after the first)
            when the next round would end past it (TimeLimitReached). The speed is the fastest graph run seen,
            measured once per model and batch size on zero noise, so neither bound changes the images of a run
            it does not stop.
        progress: called as progress(done, n) after each round, done = images made (accepted under DRS).
        """
        n, seed = check_count(n), check_seed(seed)
        spread = check_spread(self.default_spread if spread is None else spread)
        batch_size = check_count(batch_size, "batch size")
        rate = 1.0 if drs_rate is None else check_rate(drs_rate)
        self._check_label_choice(digit, component)
        if rate < 1.0 and self._chosen_precision and self.precision != EXACT_PRECISION:
            raise InvalidRequest(
                f"DRS runs the fp32 graphs (the {self.precision} variant is the image path alone, without the "
                "critic); ask for precision fp32 or sample without DRS"
            )
        expected = n if rate == 1.0 else math.ceil(n / rate)
        bound = n
        if rate < 1.0:
            default = min(math.ceil(PROPOSAL_BOUND_FACTOR * n / rate), DEFAULT_MAX_PROPOSALS)
            bound = check_count(default if max_proposals is None else max_proposals, "the bound on proposals")
            if n / rate > bound:
                raise RequestTooCostly(
                    f"DRS refused: {n:,} images at a target rate of {rate:g} need about {expected:,} proposals "
                    f"(N / rate), more than the bound of {bound:,} proposals; raise the rate (--drs) or the bound "
                    "(--max-proposals)",
                    n=n,
                    rate=rate,
                    expected=expected,
                    bound=bound,
                )
        deadline = None
        if max_seconds is not None:
            if not (isinstance(max_seconds, int | float) and 0 < max_seconds < math.inf):
                raise InvalidRequest(f"the time budget must be a number of seconds > 0, got {max_seconds!r}")
            deadline = time.monotonic() + max_seconds  # measuring the speed (once per model) counts too
            self._check_time(n, rate, expected, batch_size, max_seconds, deadline)
        rng = np.random.default_rng(seed)
        if rate == 1.0:
            eps = rng.standard_normal((n, self.manifest.latent_dim), dtype=np.float32)
            eps *= np.float32(spread)
            labels = self._draw_labels(rng, n, digit, component)

            def after_batch(done: int) -> None:
                if progress is not None:
                    progress(done, n)
                if deadline is not None and done < n and self._past(deadline, False, batch_size):
                    raise TimeLimitReached(
                        f"generation stopped at its time budget of {max_seconds:g} s with {done:,} of {n:,} images "
                        "made; ask for fewer images"
                    )

            images = self._generate_images(eps, labels, batch_size, after_batch)
            stats = GenerationStats(n, n, n, 1.0, self.manifest.drs.max_logit, math.nan, math.nan, labels)
            return images, stats
        return self._rejection_sample(
            rng, n, digit, component, rate, spread, batch_size, bound, deadline, max_seconds, progress
        )

    def _check_time(
        self, n: int, rate: float, expected: int, batch_size: int, max_seconds: float, deadline: float
    ) -> None:
        """Refuse when the expected rounds would end past the deadline at the measured speed. One round
        (expected <= batch_size) is always allowed: the caller chose its size, and measuring it would cost as much."""
        rounds = math.ceil(expected / batch_size)
        if rounds <= 1:
            return
        drs = rate < 1.0
        seconds = rounds * self.round_seconds(batch_size, drs)
        if time.monotonic() + seconds > deadline:
            what = f"DRS refused: {n:,} images at a target rate of {rate:g}" if rate < 1.0 else f"refused: {n:,} images"
            raise RequestTooCostly(
                f"{what} need about {expected:,} proposals, about {seconds:.1f} s at this "
                f"model's {batch_size / self.round_seconds(batch_size, drs):,.0f} proposals/s, more than the budget of "
                f"{max_seconds:g} s; raise the rate or ask for fewer images",
                n=n,
                rate=rate,
                expected=expected,
                seconds=seconds,
                budget=max_seconds,
            )

    def round_seconds(self, batch_size: int = DEFAULT_BATCH_SIZE, drs: bool = False) -> float:
        """Seconds one round of `batch_size` images takes (`drs`: the whole generator graph, else plain
        sampling's): the fastest round of that size seen so far. When none was, measured by one run on zero noise
        (never a seed's), after a run of a few images that opens the session and warms it up."""
        if batch_size not in self._speeds(drs):
            for size in (min(8, batch_size), batch_size):
                eps = np.zeros((size, self.manifest.latent_dim), dtype=np.float32)
                labels = np.zeros(size, dtype=np.int64)
                if drs:
                    self._generate_batches(eps, labels, batch_size)
                else:
                    self._generate_images(eps, labels, batch_size)
        return self._speeds(drs)[batch_size]

    def _speeds(self, drs: bool) -> dict[int, float]:
        return self._round_seconds if drs else self._image_round_seconds

    def _past(self, deadline: float, drs: bool, batch_size: int) -> bool:
        """Whether another round of `batch_size` would end past the deadline (at the fastest speed seen)."""
        return time.monotonic() + self._speeds(drs).get(batch_size, 0.0) > deadline

    def _rejection_sample(self, rng, n, digit, component, rate, spread, batch_size, bound, deadline, budget, progress):
        drs = self.manifest.drs
        running_max = drs.max_logit
        kept_images, kept_labels = [], []
        kept = proposals = accepted = 0
        logit_sums = np.zeros(2)  # accepted, rejected
        while kept < n:
            if proposals >= bound or (deadline is not None and proposals and self._past(deadline, True, batch_size)):
                so_far = (
                    f"with {kept} of {n} images accepted after {proposals:,} proposals "
                    f"({accepted / proposals:.2%} acceptance for a target of {rate * 100:g}%)"
                )
                if proposals >= bound:
                    raise ProposalLimitReached(
                        f"DRS stopped at its bound of {bound:,} proposals {so_far}; "
                        "raise the bound (--max-proposals) or the rate"
                    )
                raise TimeLimitReached(
                    f"DRS stopped at its time budget of {budget:g} s {so_far}; raise the rate or ask for fewer images"
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
            if progress is not None:
                progress(kept, n)
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
        if self.conditional:
            return np.concatenate([self.generate(columns, seed=seed, digit=row)[0] for row in range(rows)]), rows
        return np.concatenate([self.generate(columns, seed=seed, component=row)[0] for row in range(rows)]), rows

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

    def _generate_images(
        self, eps: np.ndarray, labels: np.ndarray, batch_size: int, after_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """uint8 images [n, 28, 28] through plain sampling's image graph; after each batch, after_batch(images done
        so far). Full batches' times feed round_seconds()."""
        session = self._session("image")
        images = np.empty((len(eps), 28, 28), dtype=np.uint8)  # quantised per run: memory stays at uint8 size
        for start in range(0, len(eps), batch_size):
            stop = min(start + batch_size, len(eps))
            started = time.perf_counter()
            for rows in self._graph_runs(start, stop):
                (image,) = session.run(None, {"eps": eps[rows], "label": labels[rows]})
                images[rows] = unit_to_uint8(image[:, 0])
            self._time_round(False, batch_size, stop - start, started)
            if after_batch is not None:
                after_batch(stop)
        return images

    def _generate_batches(self, eps: np.ndarray, labels: np.ndarray, batch_size: int):
        """(uint8 images [n, 28, 28], logits float64 [n], F float64 [n]) through the whole generator graph (DRS).
        Full batches' times feed round_seconds()."""
        session = self._session("generator")
        images = np.empty((len(eps), 28, 28), dtype=np.uint8)
        logits, fs = np.empty(len(eps)), np.empty(len(eps))
        for start in range(0, len(eps), batch_size):
            stop = min(start + batch_size, len(eps))
            started = time.perf_counter()
            for rows in self._graph_runs(start, stop):
                image, logits[rows], fs[rows] = session.run(None, {"eps": eps[rows], "label": labels[rows]})
                images[rows] = unit_to_uint8(image[:, 0])
            self._time_round(True, batch_size, stop - start, started)
        return images, logits, fs

    @property
    def _run_images(self) -> int | None:
        """Images per run of a generator graph: CONV_RUN_IMAGES on a conv generator, else None (whole rounds)."""
        return CONV_RUN_IMAGES if self.manifest.generator_architecture == "conv" else None

    def _graph_runs(self, start: int, stop: int) -> Iterator[slice]:
        """The rows [start, stop) of one round as graph runs."""
        step = self._run_images or stop - start
        return (slice(first, min(first + step, stop)) for first in range(start, stop, step))

    def _time_round(self, drs: bool, batch_size: int, size: int, started: float) -> None:
        if size == batch_size:
            speeds = self._speeds(drs)
            speeds[batch_size] = min(speeds.get(batch_size, math.inf), time.perf_counter() - started)

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

    def _graph(self, role: str, refresh: bool = False) -> tuple[Path | bytes, str]:
        """(the graph: its bytes, sha256 checked, or plain sampling's cached cut graph file; its file name for
        errors); role "image" is plain sampling's."""
        if role != "image":
            return self.manifest.read_graph(role), self.manifest.graph_file(role)
        if self.precision == EXACT_PRECISION:
            return image_graph(self.manifest, refresh), f"{self.manifest.graph_file('generator')} (cut to its image)"
        variant = self.manifest.variants[self.precision].file
        return self.manifest.read_file(variant), variant

    def _prepared_graph(self, role: str) -> tuple[Path | bytes, str]:
        """`_graph`, with a graph onnx cannot parse (cutting plain sampling's image path) as one line."""
        try:
            return self._graph(role)
        except UserError:
            raise
        except Exception as error:  # protobuf's DecodeError, onnx's checker and extractor errors
            file = self.manifest.graph_file("generator")
            raise ArtifactError(f"model {self.name}: onnx cannot read {file} ({str(error).splitlines()[0]})") from None

    def _session(self, role: str) -> ort.InferenceSession:
        if role not in self._sessions:
            graph, file = self._prepared_graph(role)
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only: no provider chatter on the user's terminal
            # Idle threads sleep instead of spinning: on a small or shared CPU, spinning threads take
            # the cores the working ones need (measured: faster at every batch size on 2 busy cores).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            # onnxruntime's memory pattern plans one block per input shape and its arena keeps each: a conv generator's
            # rounds run in pieces of two sizes, so without it the default model's 100-image grid peaks at 120.6 MiB
            # instead of 128.5, at the same speed; an MLP's one run per round is smaller with it (94.9 vs 98.0 MiB).
            options.enable_mem_pattern = role == "critic" or self._run_images is None
            external = self._external_data if role != "image" else {}  # image graphs are self-contained
            if external:
                options.add_external_initializers_from_files_in_memory(
                    list(external), list(external.values()), [len(data) for data in external.values()]
                )
            try:
                self._sessions[role] = ort.InferenceSession(graph, options, providers=self.providers)
            except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph classes
                if role == "image" and self.precision == EXACT_PRECISION:  # a damaged cache file: cut again
                    with contextlib.suppress(Exception):
                        graph, _ = self._graph(role, refresh=True)
                        self._sessions[role] = ort.InferenceSession(graph, options, providers=self.providers)
                        return self._sessions[role]
                raise ArtifactError(
                    f"model {self.name}: onnxruntime cannot load {file} ({str(error).splitlines()[0]})"
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
