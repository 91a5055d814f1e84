"""The README's results are the shipped models' manifests' numbers (`eval-gan results --check`, which imports
torch). The rest of the shipped models' checks are torch-free: tests/fast/test_shipped_artifacts.py."""

from __future__ import annotations

import subprocess
import sys

from runtime.registry import runnable, shipped_models

from ..conftest import REPO

SHIPPED = runnable(shipped_models(REPO / "artifacts"))


def test_readme_results_equal_the_manifests():
    result = subprocess.run(
        [sys.executable, "-c", "from evaluation.cli import main; main()", "results", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for entry in SHIPPED:
        assert (REPO / "docs" / "results" / f"{entry.name}.png").is_file()
