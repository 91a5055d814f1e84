"""What the web demo serves, without the web page: the shipped models, validated requests, model cards.

Every request is checked here, server-side, because a client can send anything; a bad one raises
DemoError (or the runtime's InvalidRequest) with a one-line message that the page shows.
"""

from __future__ import annotations

import functools
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from common.errors import UserError
from common.images import grid_png
from common.manifest import ARTIFACTS_ENV, P0_PROTOCOL, ArtifactError, Manifest, sampling_label
from common.validation import check_count, check_digit, check_rate, check_rate_or_off, check_seed, check_spread
from runtime.classifier import CLASSIFIER_FOLDER, DigitClassifier
from runtime.model import NUM_DIGITS, GanModel, ProposalLimitReached, RequestTooCostly, TimeLimitReached
from runtime.registry import best_model, default_root, runnable, shipped_models

MAX_SAMPLES = 256
# DRS draws proposals until enough are accepted; these bound the work one request can ask for, so that
# none holds one of the page's workers for more than a few seconds. By proposals: 50,000 take 3-5 s with
# the MLP generators on 2 CPU cores. By time, for the slower ones (the conv_w96 generator makes ~300
# proposals/s): a request whose N / rate proposals would take longer at the model's measured speed is
# refused up front, and one that runs out of time stops (at most one round of 256 later).
MAX_PROPOSALS = 50_000
REQUEST_SECONDS = 5.0
SPREAD_RANGE = (0.1, 2.0)
MAX_SEED = 2**32 - 1
ANY_DIGIT = "any"  # generate: digits drawn uniformly
BEST_DIGIT = "best"  # score: the digit under which the image scores highest
DIGITS = [str(digit) for digit in range(NUM_DIGITS)]
GRID_SEED = 0
GRID_COLUMNS = 10


class DemoError(UserError):
    """A request the demo refuses; one-line message for the page."""


def digit_choice(value, model: GanModel, unset: str) -> int | None:
    """'any'/'best' (`unset`) -> None, '0'..'9' -> the digit; a digit only for conditional models."""
    if value is None or value == unset:
        return None
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()):
        raise DemoError(f"digit must be {unset!r} or 0..9, got {value!r}")
    digit = check_digit(int(text))
    if not model.conditional:
        raise DemoError(
            f"model {model.name} is unconditional ({model.manifest.summary()}): "
            f"it takes no digit; choose {unset!r} or a conditional model"
        )
    return digit


# What the model card shows of each P0 result: FID and improved precision/recall at k=3 and k=5.
CARD_METRICS = ("fid", "precision_k3", "recall_k3", "precision_k5", "recall_k5")
CARD_COLUMNS = ("model", "variant", "architecture", "prior", "labels", "sampling")  # then the metrics


def p0_rows(manifest: Manifest) -> list[tuple[str, dict[str, str]]]:
    """(sampling, {metric: 'mean ± spread'}) for each recorded sampling setting (plain, DRS rates, latent
    spreads), over the seeds."""
    rows = []
    for rate, spread in manifest.samplings():
        summary = manifest.metric_summary(P0_PROTOCOL, rate, spread)
        if summary:
            seeds = max(item.seeds for item in summary.values())
            sampling = f"{sampling_label(rate, spread, manifest.default_spread)}, {seeds} seed{'s' * (seeds > 1)}"
            rows.append(
                (
                    sampling,
                    {
                        name: f"{summary[name].mean:.3g}"
                        + (f" ± {summary[name].spread:.2g}" if summary[name].seeds > 1 else "")
                        for name in CARD_METRICS
                        if name in summary
                    },
                )
            )
    return rows


class DemoModels:
    """The models in an artifacts folder, ready to generate and score (sessions open on first use)."""

    def __init__(self, root: Path | None = None, device: str = "auto"):
        self.root = default_root() if root is None else Path(root)
        if not self.root.is_dir():
            raise ArtifactError(f"artifacts folder {self.root} does not exist (set --artifacts or ${ARTIFACTS_ENV})")
        shipped = shipped_models(self.root)
        served = runnable(shipped)
        if not served:
            raise ArtifactError(f"no ONNX models in {self.root}; export one with `export-gan RUN_DIR --format onnx`")
        self.models = {entry.name: GanModel(entry.manifest, device) for entry in served}
        self.default = best_model(served)[0].name
        # Folders with a manifest that cannot be served, and why (the classifier is not a GAN: not listed).
        self.skipped = {
            entry.name: entry.problem or f"a {entry.manifest.graph_format} export (the demo runs ONNX)"
            for entry in shipped
            if entry.name not in self.models and entry.name != CLASSIFIER_FOLDER
        }
        self.classifier, self.classifier_note = self._load_classifier()
        self._grids: dict[str, np.ndarray] = {}

    def _load_classifier(self) -> tuple[DigitClassifier | None, str | None]:
        folder = self.root / CLASSIFIER_FOLDER
        if not folder.is_dir():
            return None, (
                f"No digit reading: the project's MNIST classifier is not shipped in {folder} "
                "(`eval-gan train-classifier` writes it)."
            )
        try:
            return DigitClassifier.load(folder), None
        except ArtifactError as error:
            return None, f"No digit reading: {error}."

    # ------------------------------------------------------------------ what the models are
    def model(self, name) -> GanModel:
        if not isinstance(name, str) or name not in self.models:
            raise DemoError(f"no model {name!r} here; shipped: {', '.join(self.models)}")
        return self.models[name]

    def choice_label(self, name: str) -> str:
        """The dropdown's line: name, variant, prior, best P0 FID."""
        manifest = self.models[name].manifest
        fid = manifest.p0_fid()
        quality = f"P0 FID {fid:.2f}" if fid is not None else "no P0 result"
        return f"{name} · {manifest.variant}, prior {manifest.prior.kind} · {quality}"

    def describe(self, name: str) -> str:
        """Markdown: what the model is and its P0 results."""
        model = self.models[name]
        manifest = model.manifest
        lines = [
            f"**{name}**: {manifest.summary()}, latent dim {manifest.latent_dim}, "
            f"epochs trained: {manifest.training.get('epochs_completed', 'not recorded')}.",
            f"{manifest.drs.summary()}.",
        ]
        chosen = manifest.sampling.chosen_by if manifest.sampling else {}
        if "rule" in chosen and "reference" in chosen:
            lines.append(
                f"Default latent spread {manifest.default_spread:g}: {chosen['rule']}, against {chosen['reference']}."
            )
        results = p0_rows(manifest)
        for sampling, metrics in results:
            lines.append(f"P0 ({sampling}): " + ", ".join(f"{name} {value}" for name, value in metrics.items()))
        if not results:
            lines.append("No P0 result recorded in its manifest.")
        return "  \n".join(lines)

    def results_table(self) -> tuple[list[str], list[list[str]]]:
        """(headers, rows): one row per model and sampling (plain, each DRS rate) with P0 means over seeds."""
        headers = [*CARD_COLUMNS, *(f"P0 {name}" for name in CARD_METRICS)]
        rows = []
        for name, model in self.models.items():
            manifest = model.manifest
            labels = "digit" if model.conditional else f"K={model.num_components}" if model.num_components else "none"
            facts = [name, manifest.variant, manifest.architecture, manifest.prior.kind, labels]
            for sampling, metrics in p0_rows(model.manifest) or [("—", {})]:
                rows.append(facts + [sampling] + [metrics.get(metric, "—") for metric in CARD_METRICS])
        return headers, rows

    def sample_grid(self, name: str) -> np.ndarray:
        """A grid image from seed GRID_SEED without DRS: one row per digit (or mixture component)."""
        if name not in self._grids:
            images, rows = self.model(name).grid(GRID_COLUMNS, GRID_SEED)
            self._grids[name] = np.asarray(Image.open(io.BytesIO(grid_png(images, rows=rows))))
        return self._grids[name]

    def grid_caption(self, name: str) -> str:
        _, rows = self.model(name).grid_layout(GRID_COLUMNS)
        return f"Sample grid of {name}: seed {GRID_SEED}, no DRS, spread {self.model(name).default_spread:g}, {rows}."

    # ------------------------------------------------------------------ requests
    def generate(self, name, count, digit, rate, seed, spread) -> tuple[np.ndarray, float, str]:
        """(uint8 images [count, 28, 28], achieved acceptance rate, a sentence about the DRS run)."""
        model = self.model(name)
        count = check_count(count, "the number of samples", MAX_SAMPLES)
        chosen = digit_choice(digit, model, ANY_DIGIT)
        rate = check_rate_or_off(rate, "the DRS target rate")
        seed = check_seed(seed, "the seed", MAX_SEED)
        spread = check_spread(spread, "the latent spread", SPREAD_RANGE)
        bound = min(MAX_PROPOSALS, math.ceil(10 * count / rate)) if rate is not None else None
        try:
            draw = functools.partial(model.generate, seed=seed, digit=chosen, drs_rate=rate, spread=spread)
            images, stats = draw(count, max_proposals=bound, max_seconds=REQUEST_SECONDS)
        except RequestTooCostly as refused:
            what = f"DRS at a target rate of {rate:g}" if rate is not None else "Generating"
            cost = (
                f"more than the {MAX_PROPOSALS:,} one request may use"
                if refused.seconds is None
                else f"about {refused.seconds:.0f} s with {name}, more than the {REQUEST_SECONDS:g} s one request "
                "may take"
            )
            raise DemoError(
                f"{what} needs about {refused.expected:,} proposals for {count} samples, {cost}; "
                "ask for fewer samples or a higher rate"
            ) from None
        except TimeLimitReached:
            what = f"DRS at a target rate of {rate:g} did not accept" if rate is not None else "Could not make"
            raise DemoError(
                f"{what} {count} images within the {REQUEST_SECONDS:g} s one request may take (the server is busy "
                "or the rate low); ask for fewer samples or a higher rate"
            ) from None
        except ProposalLimitReached:
            raise DemoError(
                f"DRS at a target rate of {rate:g} did not accept {count} images within "
                f"{bound:,} proposals; ask for fewer samples or a higher rate"
            ) from None
        if rate is None:
            return images, 1.0, f"DRS off: all {count} samples kept."
        return (
            images,
            stats.acceptance_rate,
            (
                f"DRS target {rate * 100:g}%: accepted {stats.accepted:,} of {stats.proposals:,} proposals "
                f"(achieved {stats.acceptance_rate:.1%})."
            ),
        )

    def score(self, name, image: np.ndarray, digit, rate) -> dict:
        """Scores of one uint8 [28, 28] image under the model, and the classifier's reading if shipped."""
        model = self.model(name)
        chosen = digit_choice(digit, model, BEST_DIGIT)
        rate = check_rate(rate, "the DRS target rate")
        scores = model.score(image[None], digit=chosen, drs_rate=rate)
        result = {
            "model": name,
            "realness": float(scores.realness[0]),
            "calibrated_logit": float(scores.logit[0]),
            "drs_target_rate": rate,
            "drs_acceptance_probability": float(scores.acceptance[0]),
            "scored_as_digit": None if scores.digit is None else int(scores.digit[0]),
            "classifier_digit": None,
            "classifier_probability": None,
        }
        if self.classifier is not None:
            reading = self.classifier.read(image[None])
            digit_read = int(reading.digits[0])
            result["classifier_digit"] = digit_read
            result["classifier_probability"] = float(reading.probabilities[0, digit_read])
        return result
