"""Console-script entry points: each command checks that its extra is installed before importing it, so a
runtime-only install (`pip install mnist-latent-gan`) answers `train-gan` with one line, not a traceback."""

from __future__ import annotations

import importlib
import importlib.util
import sys

DISTRIBUTION = "mnist-latent-gan"
# program -> (its extra, the modules of that extra it imports, its module with main())
COMMANDS = {
    "train-gan": ("train", ("torch", "torchvision", "safetensors", "tqdm"), "training.cli"),
    "eval-gan": ("train", ("torch", "torchvision", "pytorch_fid", "scipy", "matplotlib"), "evaluation.cli"),
    "export-gan": ("train", ("torch", "onnx", "onnxscript", "safetensors"), "export.cli"),
    "gan-demo": ("demo", ("gradio",), "demo.app"),
}


def missing_extra(program: str) -> str | None:
    """The one-line answer when `program`'s extra is not installed, else None."""
    extra, modules, _ = COMMANDS[program]
    if all(importlib.util.find_spec(module) is not None for module in modules):
        return None
    return f'{program} needs the {extra} extra: pip install "{DISTRIBUTION}[{extra}]"'


def _run(program: str) -> None:
    problem = missing_extra(program)
    if problem is not None:
        print(problem, file=sys.stderr)
        sys.exit(2)
    importlib.import_module(COMMANDS[program][2]).main()


def train_gan() -> None:
    _run("train-gan")


def eval_gan() -> None:
    _run("eval-gan")


def export_gan() -> None:
    _run("export-gan")


def gan_demo() -> None:
    _run("gan-demo")
