"""Shared fixtures: real MNIST (from $GAN_DATA_ROOT, else ../shared/data) and tiny training configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from training.evaluation.cache import CACHE_ENV

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
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if previous is None:
        del os.environ[CACHE_ENV]
    else:
        os.environ[CACHE_ENV] = previous


def tiny_overrides(**extra) -> dict:
    """A few hundred real images, a few steps: enough to exercise every code path on 2 CPU cores."""
    return {"train_limit": 256, "batch_size": 32, "epochs": 1, "device": "cpu", "eval_every": 1,
            "eval_samples": 200, **extra}
