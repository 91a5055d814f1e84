"""Shared fixtures: real MNIST (from $GAN_DATA_ROOT, else ../shared/data) and tiny training configs."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from evaluation.cache import CACHE_ENV

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("GAN_DATA_ROOT", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "MNIST" / "raw").is_dir():
        pytest.fail(f"MNIST not found under {DATA_ROOT}; set GAN_DATA_ROOT")
    return DATA_ROOT


@pytest.fixture(scope="session", autouse=True)
def evaluation_cache(tmp_path_factory) -> Path:
    """Cached real features go to one folder per test session (CLI subprocesses inherit it), not ~/.cache."""
    folder = tmp_path_factory.mktemp("eval-cache")
    with environment_variable(CACHE_ENV, str(folder)):
        yield folder


@contextlib.contextmanager
def environment_variable(name: str, value: str):
    """Set a variable for longer-lived fixtures than monkeypatch serves (module, session), then restore it."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            del os.environ[name]
        else:
            os.environ[name] = previous


def one_line_error_check(program: str):
    """An assertion for `program`'s bad-input contract: exit `code`, one `PROG: error: ...` line on stderr
    (besides `PROG: note:` lines), no traceback, and each fragment in that line."""

    def check(result, *fragments, code: int = 2):
        assert result.returncode == code, (result.stdout, result.stderr)
        lines = [line for line in result.stderr.strip().splitlines() if not line.startswith(f"{program}: note:")]
        assert len(lines) == 1 and lines[0].startswith(f"{program}: error: "), result.stderr
        assert "Traceback" not in result.stderr
        for fragment in fragments:
            assert fragment in lines[0], lines[0]

    return check


def tiny_overrides(**extra) -> dict:
    """A few hundred real images, a few steps: enough to exercise every code path on 2 CPU cores."""
    return {
        "train_limit": 256,
        "batch_size": 32,
        "epochs": 1,
        "device": "cpu",
        "eval_every": 1,
        "eval_samples": 200,
        **extra,
    }
