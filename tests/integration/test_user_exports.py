"""A user's own export in a fresh clone: `export-gan RUN` writes into ./artifacts (the default folder) as a
user export, never one of the shipped models, so the shipped-model checks stay green beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO
from .conftest import train_tiny_run

pytestmark = pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the project's git checkout to clone")


def test_export_into_the_default_folder_of_a_fresh_clone_keeps_the_shipped_tests_green(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--local", str(REPO), str(clone)], check=True, timeout=300)
    run_dir = train_tiny_run(tmp_path, "wgan_gp_cond")
    env = {**os.environ, "PYTHONPATH": str(clone)}
    env.pop("GAN_ARTIFACTS", None)
    exported = subprocess.run(
        [sys.executable, "-c", "from common.entry import export_gan; export_gan()", str(run_dir), "--burn-in", "10000"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert exported.returncode == 0, exported.stderr
    out = Path(json.loads(exported.stdout)["out"])
    assert (clone / out).resolve().parent == (clone / "artifacts").resolve()  # the default: ./artifacts/RUN_NAME
    listing = subprocess.run(
        [sys.executable, "-c", "from runtime.cli import main; main()", "list"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"{run_dir.name}" in listing.stdout and "not shipped: an export" in listing.stdout, listing.stdout
    shipped_checks = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/fast/test_shipped_artifacts.py"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert shipped_checks.returncode == 0, shipped_checks.stdout[-3000:]
