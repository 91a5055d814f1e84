"""The fast tier: no torch, no MNIST, no training. Everything here runs against the models shipped in artifacts/
(copied to tmp_path before anything writes to them).

Run alone (`pytest tests/fast`), the tier blocks torch, torchvision, training and export: importing one raises
ImportError, in this process (a sys.meta_path finder, installed when this conftest is configured) and in every
subprocess a test starts (`run_cli`, `run_python` prepend the same finder). In a run that also collects the
integration tier, which imports torch, nothing is blocked: the tier's tests still import none of them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.manifest import read_manifest
from runtime.registry import published_models, runnable

from ..conftest import REPO, one_line_error_check

FAST = Path(__file__).resolve().parent
ARTIFACTS = REPO / "artifacts"
SHIPPED = runnable(published_models(ARTIFACTS))  # what artifacts/index.json ships, not a user's exports
# Shipped models the tier's runtime tests use: a conditional one, a mixture prior, a plain unconditional one.
CONDITIONAL = "wgan_gp_cond_mlp"
MIXTURE = "gmgan_static_mlp"
UNCONDITIONAL = "wgan_gp_mlp"

BLOCKED = ("torch", "torchvision", "training", "export")
# Python source that blocks BLOCKED: executed here (when the tier runs alone) and prepended to every subprocess.
BLOCK_IMPORTS = f"""
import sys

class BlockTorch:
    '''The fast tier imports no torch, torchvision, training or export.'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("the fast tier imports no " + name)
        return None

sys.meta_path.insert(0, BlockTorch())
"""
blocking = False  # set when the tier runs alone and the finder is installed in this process


def _only_the_fast_tier(config: pytest.Config) -> bool:
    """Whether every path this session collects lies under tests/fast."""
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if not path.is_relative_to(FAST):
            return False
    return bool(config.args)


def pytest_configure(config: pytest.Config) -> None:
    """Install the finder when this session collects the fast tier alone and has not imported torch (a session
    that collects the integration tier too imports torch there, after this conftest)."""
    global blocking
    if not blocking and _only_the_fast_tier(config) and not any(name in sys.modules for name in BLOCKED):
        exec(BLOCK_IMPORTS, {"__name__": "tests.fast.block_torch"})
        blocking = True


# Subprocesses find the shipped models wherever they run (a test may still point $GAN_ARTIFACTS elsewhere).
SHIPPED_ENV = {"GAN_ARTIFACTS": str(ARTIFACTS)}


def run_python(code: str, *args, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
    """`code` in a new interpreter with torch, torchvision, training and export blocked."""
    return subprocess.run(
        [sys.executable, "-c", BLOCK_IMPORTS + code, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=SHIPPED_ENV | dict(os.environ),
    )


def run_cli(*args, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """`gan-runtime ARGS` in a new interpreter with torch, torchvision, training and export blocked."""
    return run_python("from runtime.cli import main\nmain()\n", *args, cwd=cwd)


# Runs several `gan-runtime` commands in one interpreter (an interpreter's start costs more than a refused command):
# each in its folder, its exit status, stdout and stderr kept apart, and an exception that is not SystemExit
# recorded as the traceback a user would see.
_RUN_COMMANDS = """
import contextlib, io, json, os, sys, traceback
from runtime.cli import main
results = []
for cwd, argv in json.loads(sys.stdin.read()):
    os.chdir(cwd)
    sys.argv = ["gan-runtime", *argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code
        except BaseException:
            code = None
            traceback.print_exc()
    results.append([argv, code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def run_cli_commands(commands: list[tuple[Path, list]]) -> list[subprocess.CompletedProcess]:
    """`gan-runtime ARGS` for each (folder, ARGS), in that folder, all in one new interpreter with torch,
    torchvision, training and export blocked; a result per command, as `run_cli` returns it."""
    plan = json.dumps([[str(cwd), [str(arg) for arg in args]] for cwd, args in commands])
    process = subprocess.run(
        [sys.executable, "-c", BLOCK_IMPORTS + _RUN_COMMANDS],
        input=plan,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env=SHIPPED_ENV | dict(os.environ),
    )
    assert process.returncode == 0, process.stderr
    return [subprocess.CompletedProcess(argv, code, out, err) for argv, code, out, err in json.loads(process.stdout)]


assert_one_line_error = one_line_error_check("gan-runtime")


def copy_model(name: str, folder: Path, evaluation: list | None = None) -> Path:
    """A writable copy of the shipped model `name` at `folder`; with `evaluation`, its manifest's evaluation
    records replaced by that list ([]: as export-gan wrote it, before any `eval-gan score --record`)."""
    shutil.copytree(ARTIFACTS / name, folder)
    if evaluation is not None:
        manifest = dataclasses.replace(read_manifest(folder), evaluation=evaluation)
        (folder / "manifest.json").write_text(manifest.to_text())
    return folder


@pytest.fixture
def fresh_model(tmp_path) -> Path:
    """The shipped conditional model as export left it: a copy in tmp_path with no evaluation records."""
    return copy_model(CONDITIONAL, tmp_path / "model", evaluation=[])
