"""`eval-gan`: FID, precision/recall, density/coverage under a named protocol (p0 or proxy), and the seeds' studies.

Every number is printed with its protocol, sample count and seed; `p0` is the reported protocol
(docs/evaluation.md), `proxy` the fast MNIST-classifier one.

This is the one module of evaluation/ that knows training runs exist: a run folder is sampled through
training/sampling.py; everything else here scores images.
"""

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from common.cli import QuietOption, checked_option, run_app, shows_progress
from common.files import check_output_file
from common.manifest import EXACT_PRECISION, artifacts_root, record_precision, record_sampling, sampling_label
from common.mnist import DATA_ROOT_ENV, HOLDOUT_IMAGES, load_mnist_uint8, resolve_data_root
from common.validation import check_precision, check_rate, check_seed, check_spread
from runtime.classifier import CLASSIFIER_FOLDER
from training.sampling import class_samplers, load_generator, run_dir_of, sample_run, sigma_samplers

from . import EvaluationError
from .figures import plot_sigma_sweep
from .protocols import PROTOCOLS
from .proxy_classifier import train_classifier
from .records import record_evaluation, set_default_spread
from .report import markdown, write_outputs
from .results import generated_documents, stale_documents, write_documents, write_grids
from .samples import Samples, is_artifact, read_png_folder, sample_artifact
from .scoring import Evaluator
from .studies import (
    SPREAD_RULE,
    class_sampling_study,
    real_vs_real_floor,
    rejection_study,
    sigma_sweep,
    spread_selection,
)

app = typer.Typer(add_completion=False, rich_markup_mode=None, help=__doc__.split("\n\n")[0], no_args_is_help=True)

DATA_ROOT_HELP = f"MNIST root [${DATA_ROOT_ENV} or ~/.cache]"
PROTOCOL_HELP = f"{' or '.join(PROTOCOLS)}: p0 is Inception, the reported protocol; proxy is the MNIST classifier"
RAW_HELP = "the run's trained generator, not its EMA (as `export-gan --raw-generator` ships it)"
SPREAD_HELP = "exported artifacts: scale the latent noise by this (< 1 typical digits, > 1 varied ones) [its default]"
ProtocolOption = Annotated[str, typer.Option("--protocol", help=PROTOCOL_HELP)]
SeedOption = Annotated[int, checked_option(check_seed, "--seed", help="sampling seed (recorded with every number)")]
DataRootOption = Annotated[Path | None, typer.Option("--data-root", show_default=False, help=DATA_ROOT_HELP)]
JSON_FILE = functools.partial(check_output_file, suffix=".json")
MARKDOWN_FILE = functools.partial(check_output_file, suffix=".md")
PNG_FILE = functools.partial(check_output_file, suffix=".png")
JsonOption = Annotated[Path | None, checked_option(JSON_FILE, "--json", help="also write the records as JSON")]
MarkdownOption = Annotated[Path | None, checked_option(MARKDOWN_FILE, "--markdown", help="also write the table")]
SamplesOption = Annotated[int | None, typer.Option("--n", min=1, show_default=False, help="samples [the protocol's]")]
RawGeneratorOption = Annotated[bool, typer.Option("--raw-generator", help=RAW_HELP)]
ArtifactArgument = Annotated[Path, typer.Argument(help="an exported artifact folder")]
DEVICE_HELP = "where Inception and the classifier run: cuda, cpu, or auto (CUDA when torch sees a GPU)"
DeviceOption = Annotated[str, typer.Option("--device", help=DEVICE_HELP)]
INCEPTION_HELP = (
    "what runs p0's Inception: onnx (onnxruntime, CPU only), torch, auto (onnx on the CPU), or onnx-int8 "
    "(opt-in, ~2.5x faster, not P0: its FID deviation is printed)"
)
InceptionOption = Annotated[str, typer.Option("--inception", help=INCEPTION_HELP)]
# The options every scoring command takes after its own: name -> (option, default).
SCORING_OPTIONS = {
    "protocol": (ProtocolOption, "p0"),
    "seed": (SeedOption, 0),
    "data_root": (DataRootOption, None),
    "json_path": (JsonOption, None),
    "markdown_path": (MarkdownOption, None),
    "quiet": (QuietOption, False),
    "device": (DeviceOption, "auto"),
    "inception": (InceptionOption, "auto"),
}


@dataclass(frozen=True)
class Scoring:
    """The options every scoring command takes (after its own), and what they set up."""

    protocol: str
    seed: int
    data_root: Path | None
    json_path: Path | None
    markdown_path: Path | None
    quiet: bool
    device: str
    inception: str

    @functools.cached_property
    def root(self) -> Path:
        return resolve_data_root(self.data_root)

    def evaluator(self, holdout: bool = False) -> Evaluator:
        return Evaluator(self.protocol, self.root, shows_progress(self.quiet), holdout, self.device, self.inception)

    def report(self, study: str, records: list[dict], evaluator: Evaluator, **label) -> None:
        """Print the Markdown table (the protocol's floor under it) and write the requested files."""
        if evaluator.int8:
            typer.echo(f"eval-gan: {evaluator.extractor.pool3.summary()}", err=True)
        floor = evaluator.floor()
        table = markdown(records, floor, **label)
        write_outputs(study, records, floor, table, self.json_path, self.markdown_path)
        typer.echo(table, nl=False)


def scoring_command(name: str, examples: str) -> Callable:
    """Register `function(scoring: Scoring, **own_options)` as a command taking its own options, then the
    shared ones (`SCORING_OPTIONS`), with `examples` shown at the end of its --help."""

    def decorate(function: Callable) -> Callable:
        own = [p for p in inspect.signature(function).parameters.values() if p.name != "scoring"]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=option)
            for name, (option, default) in SCORING_OPTIONS.items()
        ]

        @functools.wraps(function)
        def command(**values):
            scoring = Scoring(**{name: values.pop(name) for name in SCORING_OPTIONS})
            return function(scoring, **values)

        command.__signature__ = inspect.Signature([*own, *shared])
        return app.command(name, epilog=f"Examples: {examples}")(command)

    return decorate


def open_source(
    path: Path,
    n: int | None,
    seed: int,
    class_sampling: str | None,
    data_root: Path,
    default_samples: int,
    progress: bool = False,
    drs_rate: float | None = None,
    spread: float | None = None,
    precision: str | None = None,
) -> Samples:
    """A run folder or checkpoint, or an exported artifact (n samples, default `default_samples`, from
    `seed`, through DRS at `drs_rate` if given, noise scaled by `spread`, default the model's, its image graph at
    `precision`, default fp32), or a folder of PNGs (the first n, default all)."""
    path = Path(path)
    if not path.exists():
        raise EvaluationError(
            f"{path} does not exist; give a run folder, its checkpoint, an exported artifact or a folder of PNGs"
        )
    if drs_rate is not None and not is_artifact(path):
        raise EvaluationError(f"--drs-rate needs an exported artifact (its calibrated DRS head); {path} is not one")
    if spread is not None and not is_artifact(path):
        raise EvaluationError(f"--spread needs an exported artifact; {path} is not one")
    if precision is not None and not is_artifact(path):
        raise EvaluationError(f"--precision needs an exported artifact; {path} is not one")
    if run_dir_of(path) is not None:
        return sample_run(
            load_generator(path), str(path), n or default_samples, seed, class_sampling, data_root, progress
        )
    if is_artifact(path):
        return sample_artifact(
            path, n or default_samples, seed, class_sampling, data_root, drs_rate, spread, precision or EXACT_PRECISION
        )
    if path.is_dir():
        if class_sampling is not None:
            raise EvaluationError("--class-sampling applies to run folders, not to a folder of PNGs")
        return read_png_folder(path, n)
    raise EvaluationError(f"{path} is neither a run folder, a checkpoint, an exported artifact nor a folder of PNGs")


def _sampling_suffix(record: dict) -> str:
    label = sampling_label(*record_sampling(record))
    parts = ([] if label == "plain" else [label]) + (
        [] if record_precision(record) == EXACT_PRECISION else [record_precision(record)]
    )
    return f" ({', '.join(parts)})" if parts else ""


def _require_artifact(path: Path) -> None:
    if not is_artifact(path):
        raise EvaluationError(f"{path} is not an exported artifact folder (manifest.json and ONNX graphs)")


def _parse_numbers(text: str, option: str, rule: Callable | None = None) -> list[float]:
    try:
        numbers = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise EvaluationError(f"{option} must be comma-separated numbers, got {text!r}") from None
    if not numbers:
        raise EvaluationError(f"{option} is empty")
    for number in numbers if rule else ():
        rule(number, option)
    return numbers


SCORE_SAMPLES_HELP = "samples to generate [the protocol's 10,000]; of a PNG folder, the first N [all]"
CLASS_HELP = "conditional models: uniform (equal counts per digit, default) or mnist (MNIST train frequencies)"
DRS_HELP = "exported artifacts: sample through DRS at this target acceptance rate (0.2 = 20 %)"
RECORD_HELP = "exported artifacts: add the result to its manifest.json (replacing the same measurement)"
PRECISION_HELP = "exported artifacts: sample its image graph at this precision (a variant it lists) [fp32]"


@scoring_command(
    "score",
    "eval-gan score artifacts/wgan_gp_cond_mlp --seed 1 --record;  "
    "eval-gan score runs/wgan_gp_mlp_seed0 --protocol proxy --n 2000",
)
def score_command(
    scoring: Scoring,
    source: Annotated[Path, typer.Argument(help="a run folder or its checkpoint, an exported model, a PNG folder")],
    n: Annotated[int | None, typer.Option("--n", min=1, show_default=False, help=SCORE_SAMPLES_HELP)] = None,
    class_sampling: Annotated[str | None, typer.Option("--class-sampling", help=CLASS_HELP)] = None,
    drs_rate: Annotated[float | None, checked_option(check_rate, "--drs-rate", help=DRS_HELP)] = None,
    spread: Annotated[float | None, checked_option(check_spread, "--spread", help=SPREAD_HELP)] = None,
    precision: Annotated[
        str | None, checked_option(check_precision, "--precision", show_default=False, help=PRECISION_HELP)
    ] = None,
    record: Annotated[bool, typer.Option("--record", help=RECORD_HELP)] = False,
):
    """Score a run, an exported artifact or a folder of PNGs against MNIST test."""
    if record and not is_artifact(source):
        raise EvaluationError(f"--record needs an exported artifact folder; {source} is not one")
    evaluator = scoring.evaluator()
    if record and evaluator.int8:
        raise EvaluationError("--record keeps P0 numbers only, and --inception onnx-int8 is not P0")
    samples = open_source(
        source,
        n if n is None else evaluator.sample_count(n),
        scoring.seed,
        class_sampling,
        scoring.root,
        evaluator.protocol.samples,
        progress=shows_progress(scoring.quiet),
        drs_rate=drs_rate,
        spread=spread,
        precision=precision,
    )
    result = evaluator.score(samples)
    scoring.report("score", [result], evaluator, label=("source", lambda r: r["source"] + _sampling_suffix(r)))
    if record:
        record_evaluation(source, result)


@scoring_command("floor", "eval-gan floor --protocol p0 --json artifacts/p0_floor.json")
def floor_command(scoring: Scoring, n: SamplesOption = None):
    """The real-vs-real floor: MNIST train vs MNIST test; stored and printed beside every later table."""
    evaluator = scoring.evaluator()
    record = real_vs_real_floor(evaluator, scoring.root, evaluator.sample_count(n), scoring.seed)
    scoring.report("floor", [record], evaluator)


@scoring_command("sigma-sweep", "eval-gan sigma-sweep runs/gmgan_static_mlp_seed0 --sigmas 0.15,0.5,1")
def sigma_sweep_command(
    scoring: Scoring,
    run: Annotated[Path, typer.Argument(help="a run folder whose prior is a Gaussian mixture")],
    sigmas: Annotated[
        str, typer.Option("--sigmas", help="comma-separated σ values (the seeds' Figure 1)")
    ] = "0.15,0.5,1",
    n: SamplesOption = None,
    figure: Annotated[
        Path | None, checked_option(PNG_FILE, "--figure", help="figure [RUN/plots/sigma_sweep_P.png]")
    ] = None,
    raw_generator: RawGeneratorOption = False,
):
    """Quality vs diversity: every mixture component's σ set to each value at sampling time."""
    values = _parse_numbers(sigmas, "--sigmas")
    generator = load_generator(run, raw_generator)
    evaluator = scoring.evaluator()
    samplers = sigma_samplers(
        generator,
        str(run),
        values,
        evaluator.sample_count(n),
        scoring.seed,
        scoring.root,
        shows_progress(scoring.quiet),
    )
    records, strips = sigma_sweep(samplers, evaluator)
    plot_sigma_sweep(records, strips, figure or run / "plots" / f"sigma_sweep_{scoring.protocol}.png")
    scoring.report("sigma_sweep", records, evaluator, label=("σ", lambda r: r["sigma"]))


@scoring_command("class-sampling", "eval-gan class-sampling runs/wgan_gp_cond_mlp_seed0 --protocol proxy")
def class_sampling_command(
    scoring: Scoring,
    run: Annotated[Path, typer.Argument(help="a run folder of a conditional model")],
    n: SamplesOption = None,
    raw_generator: RawGeneratorOption = False,
):
    """Uniform digits (n/10 each) vs MNIST train frequencies for a conditional model."""
    generator = load_generator(run, raw_generator)
    evaluator = scoring.evaluator()
    sample_with = class_samplers(
        generator, str(run), evaluator.sample_count(n), scoring.seed, scoring.root, shows_progress(scoring.quiet)
    )
    scoring.report("class_sampling", class_sampling_study(sample_with, evaluator), evaluator)


KEEPS = (0.9, 0.8)  # the shares each rejection rule keeps, by default


@scoring_command("rejection-study", "eval-gan rejection-study artifacts/wgan_gp_cond_mlp --keep 0.9 --keep 0.8")
def rejection_study_command(
    scoring: Scoring,
    artifact: ArtifactArgument,
    keeps: Annotated[list[float], typer.Option("--keep", help="share kept by each rule (repeat for several)")] = KEEPS,
    n: Annotated[int, typer.Option("--n", min=1, help="samples; each rule keeps a share of the same ones")] = 3000,
):
    """Which samples should rejection drop? Random vs realism score vs critic logit, at equal counts.

    The realism score is taken in the MNIST classifier's feature space, which the proxy protocol also
    measures in: under --protocol proxy the realism rule is judged by its own features (use p0)."""
    _require_artifact(artifact)
    evaluator = scoring.evaluator()
    records = rejection_study(artifact, evaluator, evaluator.sample_count(n), scoring.seed, keeps, scoring.root)
    scoring.report(
        "rejection_study", records, evaluator, label=("kept", lambda r: f"{r['rule']}, {r['samples']:,} of {n:,}")
    )


TUNE_SAMPLES_HELP = "samples per spread [as many as the held-out images: P and R at equal sizes]"
WRITE_HELP = "store the chosen spread in the manifest: the runtime, demo and eval-gan then sample at it"


@scoring_command("tune-spread", "eval-gan tune-spread artifacts/wgan_gp_cond_mlp --spreads 0.9,1,1.1 --write")
def tune_spread_command(
    scoring: Scoring,
    artifact: ArtifactArgument,
    spreads: Annotated[str, typer.Option("--spreads", help="comma-separated latent spreads")] = "0.9,0.95,1,1.05,1.1",
    n: Annotated[int, typer.Option("--n", min=1, help=TUNE_SAMPLES_HELP)] = HOLDOUT_IMAGES,
    write: Annotated[bool, typer.Option("--write", help=WRITE_HELP)] = False,
):
    """Choose a model's default latent spread: the spread with the highest min(precision, recall) at k=3,
    scored against MNIST train's held-out tail (the models never trained on it), so that the test set,
    where results are reported, plays no part in the choice."""
    values = _parse_numbers(spreads, "--spreads", check_spread)
    _require_artifact(artifact)
    evaluator = scoring.evaluator(holdout=True)
    records, chosen = spread_selection(
        artifact, evaluator, values, evaluator.sample_count(n), scoring.seed, scoring.root
    )
    scoring.report(
        "tune_spread",
        records,
        evaluator,
        label=("spread", lambda r: f"{r['spread']:g}" + (" (chosen)" if r["spread"] == chosen else "")),
    )
    if write:
        scores = [
            {
                "spread": r["spread"],
                **{key: r["metrics"][evaluator.protocol.key(key)] for key in ("fid", "precision_k3", "recall_k3")},
            }
            for r in records
        ]
        set_default_spread(
            artifact,
            chosen,
            {
                "rule": SPREAD_RULE,
                "protocol": scoring.protocol,
                "reference": evaluator.reference_set,
                "samples": records[0]["samples"],
                "seed": scoring.seed,
                "scores": scores,
            },
        )
        typer.echo(f"{artifact}: default spread {chosen:g}")


@app.command("train-classifier", epilog="Examples: eval-gan train-classifier --epochs 5 --seed 0")
def train_classifier_command(
    out: Annotated[Path | None, typer.Option("--out", help="output folder [artifacts/mnist_classifier]")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="passes over the 60,000 MNIST train images")] = 5,
    seed: Annotated[int, checked_option(check_seed, "--seed", help="initialisation and shuffling seed")] = 0,
    data_root: DataRootOption = None,
    quiet: QuietOption = False,
):
    """Train the proxy's MNIST classifier on MNIST train, check >= 99% on MNIST test, write weights, ONNX, manifest."""
    root = resolve_data_root(data_root)
    out = out or artifacts_root() / CLASSIFIER_FOLDER
    manifest = train_classifier(
        load_mnist_uint8(root, train=True),
        load_mnist_uint8(root, train=False),
        out,
        epochs=epochs,
        seed=seed,
        progress=shows_progress(quiet),
    )
    typer.echo(json.dumps({"out": str(out), "test_accuracy": manifest["test_accuracy"], "files": manifest["files"]}))


ARTIFACTS, README, GRIDS = Path("artifacts"), Path("README.md"), Path("docs/results")
PAGE_HELP = "file holding the full results section [docs/results.md beside the README]"


@app.command("results", epilog="Examples: eval-gan results;  eval-gan results --check")
def results_command(
    artifacts: Annotated[Path, typer.Option("--artifacts", help="the shipped models and p0_floor.json")] = ARTIFACTS,
    readme: Annotated[Path, typer.Option("--readme", help="file holding the headline (or results) markers")] = README,
    page: Annotated[Path | None, typer.Option("--page", show_default=False, help=PAGE_HELP)] = None,
    grids: Annotated[Path, typer.Option("--grids", help="folder for one sample grid PNG per model")] = GRIDS,
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 if a generated file differs")] = False,
):
    """Regenerate the README's headline results, the full results page and every model's card
    (artifacts/NAME/README.md) from the artifacts' manifests."""
    documents = generated_documents(artifacts, readme, page, grids)
    if check:
        stale = stale_documents(documents)
        if stale:
            typer.echo(
                f"eval-gan: generated files differ from the manifests in {artifacts}: "
                f"{', '.join(map(str, stale))}; run `eval-gan results`",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(f"{len(documents)} generated files match the manifests in {artifacts}")
        return
    write_grids(artifacts, grids)
    write_documents(documents)
    typer.echo(f"wrote {', '.join(map(str, documents))} and the grids in {grids}")


def main() -> None:
    run_app(app, "eval-gan")
