"""`train-gan [VARIANT] [--config FILE] [--option value ...]`: train one preset, with every TrainConfig field as
an option; a config file may name the preset itself (variant = "..."), and then VARIANT may be left out.
`torchrun --nproc-per-node N --no-python train-gan ...` trains on N processes (docs/training.md)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from common.cli import QuietOption, run_app
from common.errors import UserError
from common.files import OutputError, atomic_write_text, remove_unfinished_writes
from common.mnist import DATA_ROOT_ENV, resolve_data_root

from .config import FIELDS, TrainConfig, load_run_config, resolve, resolve_config_file
from .presets import PRESETS

app = typer.Typer(add_completion=False, rich_markup_mode=None, help=__doc__)
TYPES = {"int": int, "float": float, "bool": bool, "str": str}
# Options that may change when a run is resumed: they do not alter what has been trained so far
# (Trainer.load refuses a learning-rate schedule changed after its decay began).
RESUMABLE = ("epochs", "lr_decay_start", "device", "eval_every", "eval_protocol", "eval_samples", "checkpoint_every")


def _print_presets() -> None:
    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        typer.echo(f"{name:<{width}}  {preset.summary}")


def _refuse_trained_run_dir(run_dir: Path) -> None:
    from .trainer import CHECKPOINT_NAME

    if (run_dir / CHECKPOINT_NAME).exists():
        raise UserError(
            f"run folder {run_dir} already holds a checkpoint; continue it with --resume {run_dir} "
            "or choose another --run-dir"
        )


def _prepare_run_dir(run_dir: Path, cfg: TrainConfig) -> None:
    """Create the run folder and write its config.json: only once the data, the config and (resuming) the
    checkpoint have loaded, so a bad input leaves no folder behind and an existing one as it was."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        # From an earlier attempt killed before its first checkpoint, or a run killed mid-write (kill -9).
        remove_unfinished_writes(run_dir)
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    except OSError as error:
        raise UserError(f"run folder {run_dir} is not writable ({error.strerror})") from None


def train_command(variant, list_presets, dry_run, config_file, resume, run_dir, data_root, quiet, **overrides):
    if list_presets:
        _print_presets()
        return 0
    cli_values = {name: value for name, value in overrides.items() if value is not None}
    if resume is not None:
        if variant is not None:
            raise UserError("give either VARIANT or --resume RUN_DIR, not both")
        refused = sorted(set(cli_values) - set(RESUMABLE))
        if refused or config_file is not None:
            raise UserError(
                f"a resumed run keeps its config; only {', '.join(RESUMABLE)} may change "
                f"(got {', '.join(refused) or '--config'})"
            )
        saved = load_run_config(resume)
        cfg = resolve(saved.variant, {k: v for k, v in saved.to_dict().items() if k != "variant"}, cli_values)
        run_dir = resume
    else:
        if config_file is not None:
            cfg = resolve_config_file(config_file, variant, cli_values)
        elif variant is None:
            raise UserError(f"missing VARIANT (or a --config file that names it); valid presets: {', '.join(PRESETS)}")
        else:
            cfg = resolve(variant, cli_values)
        run_dir = run_dir or Path("runs") / f"{cfg.variant}_{cfg.architecture_tag}_seed{cfg.seed}"
    if dry_run:
        typer.echo(json.dumps({"run_dir": str(run_dir), **cfg.to_dict()}, indent=2))
        return 0

    from .distributed import World
    from .trainer import CHECKPOINT_NAME, Trainer

    # Under torchrun every process runs this with the same arguments and reads the same files (the run folder,
    # --config: storage that every node sees); rank 0 alone writes and prints.
    world = World.from_environment()
    # Every input is checked before the run folder is touched: the data and the config (Trainer), and
    # when resuming the checkpoint; then the folder and its config.json are written.
    if resume is None:
        _refuse_trained_run_dir(run_dir)
    try:
        trainer = Trainer(cfg, run_dir, resolve_data_root(data_root), quiet=quiet, world=world)
        if resume is not None:
            trainer.load(run_dir / CHECKPOINT_NAME)
        world.on_main(lambda: _prepare_run_dir(run_dir, cfg))
        return _train(trainer, run_dir)
    finally:
        world.leave()


def _train(trainer, run_dir: Path) -> int:
    """Train from the loaded checkpoint's epoch and step (or the start); rank 0 reports."""
    from .trainer import Interrupted, TrainingError, train

    reports = trainer.world.is_main
    try:
        record = train(trainer)
    except Interrupted as stop:
        if reports:
            typer.echo(f"train-gan: {stop}", err=True)
        return 130
    except TrainingError as error:
        if reports:
            typer.echo(f"train-gan: error: {error}", err=True)
        return 1
    except (OSError, OutputError) as error:  # disk full, file size limit, folder made read-only while training
        cause = error if isinstance(error, OutputError) else f"cannot write to {error.filename or run_dir} ({error})"
        raise UserError(
            f"{cause}; training stopped, the last checkpoint written is intact: continue with train-gan --resume "
            f"{run_dir}"
        ) from None
    if reports:
        typer.echo(json.dumps({"run_dir": str(run_dir), **record}))
    return 0


def _build_signature() -> inspect.Signature:
    """train_command's options: the fixed ones, then one per TrainConfig field (None: the preset's or default)."""
    fixed = [
        (
            "variant",
            str | None,
            None,
            typer.Argument(
                help="preset to train (see --list); optional when the --config file names it (variant = ...)",
                show_default=False,
            ),
        ),
        ("list_presets", bool, False, typer.Option("--list", help="list the presets, one line each, and exit")),
        ("dry_run", bool, False, typer.Option("--dry-run", help="print the resolved config and exit")),
        (
            "config_file",
            Path | None,
            None,
            typer.Option(
                "--config", help="TOML or YAML file of option = value (configs/NAME.toml: the recipe of artifacts/NAME)"
            ),
        ),
        ("resume", Path | None, None, typer.Option("--resume", help="continue the run in this folder")),
        ("run_dir", Path | None, None, typer.Option("--run-dir", help="run folder [runs/VARIANT_ARCH_seedS]")),
        (
            "data_root",
            Path | None,
            None,
            typer.Option("--data-root", help=f"MNIST root [${DATA_ROOT_ENV} or ~/.cache]"),
        ),
        ("quiet", bool, False, QuietOption.__metadata__[0]),
    ]
    for name, field in FIELDS.items():
        if name == "variant":
            continue
        flag = "--" + name.replace("_", "-")
        decls = [f"{flag}/--no-{name.replace('_', '-')}"] if field.type == "bool" else [flag]
        help_text = f"{field.metadata['help']} [default {field.default!r}, or the preset's]"
        fixed.append((name, TYPES[field.type] | None, None, typer.Option(*decls, help=help_text, show_default=False)))
    return inspect.Signature(
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info])
            for name, kind, default, info in fixed
        ]
    )


train_command.__signature__ = _build_signature()  # type: ignore[attr-defined]
train_command.__annotations__ = {p.name: p.annotation for p in train_command.__signature__.parameters.values()}
app.command(
    name="train-gan",
    help=__doc__,
    epilog="Examples: train-gan wgan_gp_cond --epochs 600;  "
    "train-gan --config configs/wgan_gp_mlp.toml --device cpu;  train-gan --resume runs/wgan_gp_mlp_seed0 "
    "--epochs 200",
)(train_command)


def main() -> None:
    run_app(app, "train-gan")
