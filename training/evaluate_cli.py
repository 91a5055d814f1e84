"""`eval-gan`: FID, precision/recall, density/coverage under a named protocol (p0 or proxy), and the seeds' studies.

Every number is printed with its protocol, sample count and seed; `p0` is the reported protocol
(../shared/PROTOCOL.md), `proxy` the fast MNIST-classifier one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from runtime.clitools import run_app
from runtime.manifest import ArtifactError, record_evaluation, record_sampling, sampling_label, set_default_spread
from runtime.model import InvalidRequest

from .checkpoint import CheckpointError
from .config import ConfigError
from .data import DATA_ROOT_ENV, DataError, load_mnist_uint8, resolve_data_root
from .evaluation import EvaluationError
from .evaluation.figures import plot_sigma_sweep
from .evaluation.protocols import HOLDOUT_IMAGES, PROTOCOLS
from .evaluation.proxy_classifier import CLASSIFIER_DIR, train_classifier
from .evaluation.report import markdown, write_outputs
from .evaluation.results import results_markdown, update_readme, write_grids
from .evaluation.scoring import Evaluator
from .evaluation.sources import is_artifact, load_generator, open_source
from .evaluation.studies import (SPREAD_RULE, class_sampling_study, real_vs_real_floor, rejection_study,
                                 sigma_sweep, spread_selection)

app = typer.Typer(add_completion=False, help=__doc__)

ProtocolOption = typer.Option("p0", "--protocol", help=f"{' or '.join(PROTOCOLS)}: p0 is Inception, the reported "
                              "protocol; proxy is the MNIST classifier, for monitoring")
NOption = typer.Option(None, "--n", min=1, help="samples (default: the protocol's 10,000)")
SeedOption = typer.Option(0, "--seed", help="sampling seed (recorded with every number)")
DataRootOption = typer.Option(None, "--data-root", help=f"MNIST root (default: ${DATA_ROOT_ENV} or ~/.cache)")
JsonOption = typer.Option(None, "--json", help="also write the records as JSON to this file")
MarkdownOption = typer.Option(None, "--markdown", help="also write the Markdown table to this file")
QuietOption = typer.Option(False, "--quiet", "-q", help="no progress bars")
RawGeneratorOption = typer.Option(False, "--raw-generator", help="the run's trained generator, not its EMA (as "
                                  "`export-gan --raw-generator` ships it)")


def _report(study: str, records: list[dict], evaluator: Evaluator, json_path: Optional[Path],
            markdown_path: Optional[Path], **label) -> None:
    """Print the Markdown table (the protocol's floor under it) and write the requested files."""
    floor = evaluator.floor()
    table = markdown(records, floor, **label)
    write_outputs(study, records, floor, table, json_path, markdown_path)
    typer.echo(table, nl=False)


def _sampling_suffix(record: dict) -> str:
    label = sampling_label(*record_sampling(record))
    return "" if label == "plain" else f" ({label})"


@app.command("score")
def score_command(
    source: Path = typer.Argument(..., help="a run folder (or its checkpoint.safetensors), an exported artifact "
                                  "folder, or a folder of PNGs"),
    protocol: str = ProtocolOption,
    n: Optional[int] = typer.Option(None, "--n", min=1, help="samples to generate (default: the protocol's "
                                    "10,000); for a PNG folder the first N images (default: all)"),
    seed: int = SeedOption,
    class_sampling: Optional[str] = typer.Option(None, "--class-sampling", help="conditional models: uniform "
                                                 "(equal counts per digit, default) or mnist (MNIST train frequencies)"),
    drs_rate: Optional[float] = typer.Option(None, "--drs-rate", help="exported artifacts: sample through DRS "
                                             "at this target acceptance rate (0.2 = 20 %)"),
    spread: Optional[float] = typer.Option(None, "--spread", show_default=False, help="exported artifacts: scale "
                                           "the latent noise eps by this (below 1: truncation, typical digits; "
                                           "above 1: more varied ones) [the model's default spread]"),
    record: bool = typer.Option(False, "--record", help="exported artifacts: add the result to the artifact's "
                                "manifest.json (replacing the same protocol/seed/samples/DRS/spread measurement)"),
    data_root: Optional[Path] = DataRootOption,
    json_path: Optional[Path] = JsonOption,
    markdown_path: Optional[Path] = MarkdownOption,
    quiet: bool = QuietOption,
):
    """Score a run, an exported artifact or a folder of PNGs against MNIST test."""
    if drs_rate is not None and not 0 < drs_rate <= 1:
        raise EvaluationError(f"--drs-rate must be a target acceptance rate in (0, 1], got {drs_rate:g}")
    if spread is not None and not 0 < spread < math.inf:
        raise EvaluationError(f"--spread must be a finite number > 0, got {spread:g}")
    if record and not is_artifact(source):
        raise EvaluationError(f"--record needs an exported artifact folder; {source} is not one")
    root = resolve_data_root(data_root)
    evaluator = Evaluator(protocol, root, progress=not quiet)
    samples = open_source(source, n if n is None else evaluator.sample_count(n), seed, class_sampling, root,
                          evaluator.protocol.samples, progress=not quiet, drs_rate=drs_rate, spread=spread)
    result = evaluator.score(samples)
    _report("score", [result], evaluator, json_path, markdown_path,
            label=("source", lambda r: r["source"] + _sampling_suffix(r)))
    if record:
        record_evaluation(source, result)


@app.command("floor")
def floor_command(
    protocol: str = ProtocolOption,
    n: Optional[int] = NOption,
    seed: int = SeedOption,
    data_root: Optional[Path] = DataRootOption,
    json_path: Optional[Path] = JsonOption,
    markdown_path: Optional[Path] = MarkdownOption,
    quiet: bool = QuietOption,
):
    """The real-vs-real floor: MNIST train vs MNIST test; stored and printed beside every later table."""
    root = resolve_data_root(data_root)
    evaluator = Evaluator(protocol, root, progress=not quiet)
    record = real_vs_real_floor(evaluator, root, evaluator.sample_count(n), seed)
    _report("floor", [record], evaluator, json_path, markdown_path)


def _parse_numbers(text: str, option: str) -> list[float]:
    try:
        numbers = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise EvaluationError(f"{option} must be comma-separated numbers, got {text!r}") from None
    if not numbers:
        raise EvaluationError(f"{option} is empty")
    return numbers


@app.command("sigma-sweep")
def sigma_sweep_command(
    run: Path = typer.Argument(..., help="a run folder whose prior is a Gaussian mixture"),
    sigmas: str = typer.Option("0.15,0.5,1.0", "--sigmas", help="comma-separated σ values (the seeds' Figure 1)"),
    protocol: str = ProtocolOption,
    n: Optional[int] = NOption,
    seed: int = SeedOption,
    figure: Optional[Path] = typer.Option(None, "--figure", help="figure file (default: "
                                          "RUN/plots/sigma_sweep_PROTOCOL.png)"),
    data_root: Optional[Path] = DataRootOption,
    json_path: Optional[Path] = JsonOption,
    markdown_path: Optional[Path] = MarkdownOption,
    raw_generator: bool = RawGeneratorOption,
    quiet: bool = QuietOption,
):
    """Quality vs diversity: every mixture component's σ set to each value at sampling time."""
    values = _parse_numbers(sigmas, "--sigmas")
    generator = load_generator(run, raw_generator)
    root = resolve_data_root(data_root)
    evaluator = Evaluator(protocol, root, progress=not quiet)
    records, strips = sigma_sweep(generator, str(run), values, evaluator, evaluator.sample_count(n), seed, root)
    plot_sigma_sweep(records, strips, figure or run / "plots" / f"sigma_sweep_{protocol}.png")
    _report("sigma_sweep", records, evaluator, json_path, markdown_path, label=("σ", lambda r: r["sigma"]))


@app.command("class-sampling")
def class_sampling_command(
    run: Path = typer.Argument(..., help="a run folder of a conditional model"),
    protocol: str = ProtocolOption,
    n: Optional[int] = NOption,
    seed: int = SeedOption,
    data_root: Optional[Path] = DataRootOption,
    json_path: Optional[Path] = JsonOption,
    markdown_path: Optional[Path] = MarkdownOption,
    raw_generator: bool = RawGeneratorOption,
    quiet: bool = QuietOption,
):
    """Uniform digits (n/10 each) vs MNIST train frequencies for a conditional model."""
    generator = load_generator(run, raw_generator)
    root = resolve_data_root(data_root)
    evaluator = Evaluator(protocol, root, progress=not quiet)
    records = class_sampling_study(generator, str(run), evaluator, evaluator.sample_count(n), seed, root)
    _report("class_sampling", records, evaluator, json_path, markdown_path)


@app.command("rejection-study")
def rejection_study_command(
    artifact: Path = typer.Argument(..., help="an exported artifact folder"),
    keeps: list[float] = typer.Option([0.9, 0.8], "--keep", help="share of the samples kept by each rule "
                                      "(repeat the option for several)"),
    protocol: str = ProtocolOption,
    n: int = typer.Option(3000, "--n", min=1, help="samples generated; each rule keeps a share of the same ones"),
    seed: int = SeedOption,
    data_root: Optional[Path] = DataRootOption,
    json_path: Optional[Path] = JsonOption,
    markdown_path: Optional[Path] = MarkdownOption,
    quiet: bool = QuietOption,
):
    """Which samples should rejection drop? Random vs realism score vs critic logit, at equal counts.

    The realism score is taken in the MNIST classifier's feature space, which the proxy protocol also
    measures in: under --protocol proxy the realism rule is judged by its own features (use p0)."""
    if not is_artifact(artifact):
        raise EvaluationError(f"{artifact} is not an exported artifact folder (manifest.json and ONNX graphs)")
    root = resolve_data_root(data_root)
    evaluator = Evaluator(protocol, root, progress=not quiet)
    records = rejection_study(artifact, evaluator, evaluator.sample_count(n), seed, keeps, root)
    _report("rejection_study", records, evaluator, json_path, markdown_path,
            label=("kept", lambda r: f"{r['rule']}, {r['samples']:,} of {n:,}"))


@app.command("tune-spread")
def tune_spread_command(
    artifact: Path = typer.Argument(..., help="an exported artifact folder"),
    spreads: str = typer.Option("0.9,0.95,1,1.05,1.1", "--spreads", help="comma-separated latent spreads to try"),
    protocol: str = ProtocolOption,
    n: int = typer.Option(HOLDOUT_IMAGES, "--n", min=1, help="samples per spread (default: as many as the "
                          "held-out images, so that precision and recall are measured at equal sizes)"),
    seed: int = SeedOption,
    write: bool = typer.Option(False, "--write", help="store the chosen spread in the manifest: the runtime, the "
                               "demo and `eval-gan score` then sample at it by default"),
    data_root: Optional[Path] = DataRootOption,
    json_path: Optional[Path] = JsonOption,
    markdown_path: Optional[Path] = MarkdownOption,
    quiet: bool = QuietOption,
):
    """Choose a model's default latent spread: the spread with the highest min(precision, recall) at k=3,
    scored against MNIST train's held-out tail (the models never trained on it), so that the test set,
    where results are reported, plays no part in the choice."""
    values = _parse_numbers(spreads, "--spreads")
    if not is_artifact(artifact):
        raise EvaluationError(f"{artifact} is not an exported artifact folder (manifest.json and ONNX graphs)")
    root = resolve_data_root(data_root)
    evaluator = Evaluator(protocol, root, progress=not quiet, holdout=True)
    records, chosen = spread_selection(artifact, evaluator, values, evaluator.sample_count(n), seed, root)
    _report("tune_spread", records, evaluator, json_path, markdown_path,
            label=("spread", lambda r: f"{r['spread']:g}" + (" (chosen)" if r["spread"] == chosen else "")))
    if write:
        scores = [{"spread": r["spread"], **{key: r["metrics"][evaluator.protocol.key(key)]
                                             for key in ("fid", "precision_k3", "recall_k3")}} for r in records]
        set_default_spread(artifact, chosen, {"rule": SPREAD_RULE, "protocol": protocol,
                                              "reference": evaluator.reference_set, "samples": records[0]["samples"],
                                              "seed": seed, "scores": scores})
        typer.echo(f"{artifact}: default spread {chosen:g}")


@app.command("train-classifier")
def train_classifier_command(
    out: Path = typer.Option(None, "--out", help="output folder (default: artifacts/mnist_classifier)"),
    epochs: int = typer.Option(5, "--epochs", min=1, help="passes over the 60,000 MNIST train images"),
    seed: int = typer.Option(0, "--seed", help="initialisation and shuffling seed"),
    data_root: Optional[Path] = DataRootOption,
    quiet: bool = QuietOption,
):
    """Train the proxy's MNIST classifier on MNIST train, check >= 99% on MNIST test, write weights, ONNX, manifest."""
    root = resolve_data_root(data_root)
    out = out or CLASSIFIER_DIR
    manifest = train_classifier(load_mnist_uint8(root, train=True), load_mnist_uint8(root, train=False), out,
                                epochs=epochs, seed=seed, progress=not quiet)
    typer.echo(json.dumps({"out": str(out), "test_accuracy": manifest["test_accuracy"], "files": manifest["files"]}))


@app.command("results")
def results_command(
    artifacts: Path = typer.Option(Path("artifacts"), "--artifacts", help="the shipped models (and p0_floor.json)"),
    readme: Path = typer.Option(Path("README.md"), "--readme", help="file holding the results markers"),
    grids: Path = typer.Option(Path("docs/results"), "--grids", help="folder for one sample grid PNG per model"),
    check: bool = typer.Option(False, "--check", help="write nothing; exit 1 if the README differs from the "
                               "manifests"),
):
    """Regenerate the README's results table (P0 and proxy, plain and DRS 20 %) from the artifacts' manifests."""
    section = results_markdown(artifacts, grids, readme.parent)
    if check:
        if not update_readme(readme, section, check=True):
            typer.echo(f"eval-gan: {readme}'s results differ from the manifests in {artifacts}; "
                       "run `eval-gan results`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{readme} matches the manifests in {artifacts}")
        return
    write_grids(artifacts, grids)
    update_readme(readme, section, check=False)
    typer.echo(f"wrote the results section of {readme} and the grids in {grids}")


def main() -> None:
    run_app(app, "eval-gan",
            user_errors=(EvaluationError, ConfigError, DataError, CheckpointError, ArtifactError, InvalidRequest))
