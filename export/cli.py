"""`export-gan RUN_DIR`: calibrate DRS on a run's held-out images and export its graphs with their manifest."""

from __future__ import annotations

import functools
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from common.cli import QuietOption, checked_option, run_app, shows_progress
from common.errors import UserError
from common.manifest import ARTIFACTS_ENV, MANIFEST_NAME, Manifest, artifacts_root
from common.mnist import DATA_ROOT_ENV, resolve_data_root
from common.validation import check_seed, check_whole

from .artifact import export_run
from .drs import AUTO, HEAD_KINDS, MIN_BURN_IN
from .manifest import read_evaluation
from .reexport import reexport_model

app = typer.Typer(add_completion=False, rich_markup_mode=None)


DrsHeadKind = StrEnum("DrsHeadKind", {kind: kind for kind in (AUTO, *HEAD_KINDS)})  # type: ignore[misc]
DRS_HEAD_HELP = (
    "the DRS head: score (a*s(x)+b on the critic's score), features (an MLP on its last hidden layer), finetuned "
    "(a fine-tuned copy of the critic), classifier (an MLP on the MNIST classifier's features), or auto: the best "
    "held-out AUC (docs/artifacts.md)"
)


class GraphFormat(StrEnum):
    onnx = "onnx"
    torchscript = "torchscript"


AT_LEAST_BURN_IN = functools.partial(check_whole, low=MIN_BURN_IN)
BURN_IN_HELP = f"generated samples for D~_M and gamma (D~_M is a maximum over at least {MIN_BURN_IN:,} samples)"


def default_output(run_dir: Path, graph_format: str) -> Path:
    """artifacts/RUN_NAME (ONNX, what gan-runtime runs) or artifacts/RUN_NAME_torchscript."""
    suffix = "" if graph_format == "onnx" else f"_{graph_format}"
    return artifacts_root() / f"{Path(run_dir).resolve().name}{suffix}"


@app.command(
    name="export-gan",
    epilog="Examples: export-gan runs/wgan_gp_cond_mlp_seed0;  "
    "export-gan runs/wgan_gp_mlp_seed0 --format torchscript --out /tmp/wgan_gp_ts;  "
    "export-gan artifacts/wgan_gp_cond_mlp --drs-head auto --force",
)
def export_command(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="a train-gan run folder (config.json + checkpoint.safetensors), or an exported ONNX model folder "
            "(manifest.json) to re-export with a new DRS head, its images unchanged"
        ),
    ],
    graph_format: Annotated[GraphFormat, typer.Option("--format", help="graph format")] = GraphFormat.onnx,
    out: Annotated[
        Path | None,
        typer.Option("--out", show_default=False, help=f"artifact folder [${ARTIFACTS_ENV} or artifacts/]/RUN_NAME"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing artifact folder")] = False,
    burn_in: Annotated[int, checked_option(AT_LEAST_BURN_IN, "--burn-in", help=BURN_IN_HELP)] = MIN_BURN_IN,
    seed: Annotated[int, checked_option(check_seed, "--seed", help="seed of the calibration and burn-in samples")] = 0,
    evaluation: Annotated[
        Path | None,
        typer.Option(
            "--evaluation",
            show_default=False,
            help="evaluation records to store, as `eval-gan score --json` writes them",
        ),
    ] = None,
    data_root: Annotated[
        Path | None,
        typer.Option("--data-root", show_default=False, help=f"MNIST root [${DATA_ROOT_ENV} or ~/.cache]"),
    ] = None,
    raw_generator: Annotated[
        bool,
        typer.Option(
            "--raw-generator",
            help="export the trained generator itself, not "
            "the run's EMA of it (an EMA lags a generator that still improves "
            "fast)",
        ),
    ] = False,
    match_intensities: Annotated[
        bool,
        typer.Option(
            "--match-intensities",
            help="bake in a tone curve that gives the "
            "samples MNIST train's pixel-value histogram (clean background, "
            "saturated strokes); fitted on train data only",
        ),
    ] = False,
    drs_head: Annotated[DrsHeadKind, typer.Option("--drs-head", help=DRS_HEAD_HELP)] = DrsHeadKind[AUTO],
    quiet: QuietOption = False,
) -> None:
    """Train and calibrate the DRS head on a run's held-out images and export its generator and critic graphs with
    their manifest; or give an exported model a new DRS head."""
    if (run_dir / MANIFEST_NAME).is_file() and not (run_dir / "config.json").is_file():
        if graph_format != GraphFormat.onnx or evaluation or raw_generator or match_intensities:
            raise UserError(
                "re-exporting a model folder takes only --out, --force, --burn-in, --seed, --data-root and --drs-head"
            )
        target = out if out is not None else run_dir
        manifest = reexport_model(
            run_dir, target, resolve_data_root(data_root), drs_head.value, burn_in, seed, force, shows_progress(quiet)
        )
        echo_result(target, manifest)
        return
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not a run folder (no config.json) nor a model folder (no {MANIFEST_NAME})")
    results = read_evaluation(evaluation) if evaluation is not None else []
    target = out if out is not None else default_output(run_dir, graph_format.value)
    manifest = export_run(
        run_dir,
        graph_format.value,
        target,
        resolve_data_root(data_root),
        burn_in,
        seed,
        results,
        force,
        raw_generator,
        match_intensities,
        drs_head.value,
        progress=shows_progress(quiet),
    )
    echo_result(target, manifest)


def echo_result(target: Path, manifest: Manifest) -> None:
    typer.echo(
        json.dumps(
            {
                "out": str(target),
                "files": sorted(manifest.sha256),
                "drs_head": manifest.drs.head_kind,
                "drs_candidates": manifest.drs.candidates,
                "drs_max_logit": manifest.drs.max_logit,
                "drs_calibration": manifest.drs.fit,
            }
        )
    )


def main() -> None:
    run_app(app, "export-gan")
