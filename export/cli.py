"""`export-gan RUN_DIR --format onnx|torchscript [--out artifacts/NAME]`: calibrate DRS and export a run."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from runtime.clitools import UserError, run_app
from runtime.registry import ARTIFACTS_ENV, artifacts_root
from training.checkpoint import CheckpointError
from training.config import ConfigError
from training.data import DATA_ROOT_ENV, DataError, resolve_data_root

from .artifact import export_run
from .drs import MIN_BURN_IN
from .manifest import ExportError, read_evaluation

app = typer.Typer(add_completion=False, help=__doc__)


class GraphFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


def default_output(run_dir: Path, graph_format: str) -> Path:
    """artifacts/RUN_NAME (ONNX, what gan-runtime runs) or artifacts/RUN_NAME_torchscript."""
    suffix = "" if graph_format == "onnx" else f"_{graph_format}"
    return artifacts_root() / f"{Path(run_dir).resolve().name}{suffix}"


@app.command(name="export-gan", help=__doc__)
def export_command(
    run_dir: Path = typer.Argument(..., help="a train-gan run folder (config.json + checkpoint.safetensors)"),
    graph_format: GraphFormat = typer.Option(GraphFormat.onnx, "--format", help="graph format"),
    out: Optional[Path] = typer.Option(None, "--out", help=f"artifact folder [${ARTIFACTS_ENV} or artifacts/]/RUN_NAME",
                                       show_default=False),
    force: bool = typer.Option(False, "--force", help="replace an existing artifact folder"),
    burn_in: int = typer.Option(MIN_BURN_IN, "--burn-in", help=f"generated samples for D~_M and gamma (>= {MIN_BURN_IN})"),
    seed: int = typer.Option(0, "--seed", help="seed of the calibration and burn-in samples"),
    evaluation: Optional[Path] = typer.Option(None, "--evaluation", show_default=False,
                                              help="evaluation records to store, as `eval-gan score --json` writes them"),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help=f"MNIST root [${DATA_ROOT_ENV} or ~/.cache]",
                                             show_default=False),
    raw_generator: bool = typer.Option(False, "--raw-generator", help="export the trained generator itself, not "
                                       "the run's EMA of it (an EMA lags a generator that still improves fast)"),
    match_intensities: bool = typer.Option(False, "--match-intensities", help="bake in a tone curve that gives the "
                                           "samples MNIST train's pixel-value histogram (clean background, "
                                           "saturated strokes); fitted on train data only"),
) -> None:
    if burn_in < MIN_BURN_IN:
        raise UserError(f"--burn-in must be >= {MIN_BURN_IN} (D~_M is a maximum over at least 10k samples), got {burn_in}")
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.json)")
    results = read_evaluation(evaluation) if evaluation is not None else []
    target = out if out is not None else default_output(run_dir, graph_format.value)
    manifest = export_run(run_dir, graph_format.value, target, resolve_data_root(data_root), burn_in, seed, results, force,
                          raw_generator, match_intensities)
    drs = manifest["drs"]
    typer.echo(json.dumps({
        "out": str(target),
        "files": sorted(manifest["sha256"]),
        "drs_max_logit": drs["max_logit"],
        "drs_calibration": drs["fit"],
    }))


def main() -> None:
    run_app(app, "export-gan", user_errors=(ExportError, ConfigError, DataError, CheckpointError))
