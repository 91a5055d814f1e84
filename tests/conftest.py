"""Shared by both tiers, and torch-free (the fast tier imports it with torch blocked): the repository, where
MNIST is ($GAN_DATA_ROOT, else ../shared/data), and the one-line-error contract every CLI keeps.

tests/fast/: no torch, no MNIST, no training; the runtime, DRS maths, the manifest contract and the
validation rules against the shipped artifacts (`pytest tests/fast`, well under a minute).
tests/integration/: everything else (tiny real trainings and exports, evaluation, the demo, faults).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("GAN_DATA_ROOT", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "MNIST" / "raw").is_dir():
        pytest.fail(f"MNIST not found under {DATA_ROOT}; set GAN_DATA_ROOT")
    return DATA_ROOT


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


@pytest.fixture(scope="session", autouse=True)
def private_cache_folder(tmp_path_factory):
    """Graphs the runtime caches (runtime/image_cache.py) go to the session's folder, never the user's ~/.cache;
    subprocesses inherit it."""
    with environment_variable("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache"))):
        yield


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


# ---------------------------------------------------------------------- property tests of validation (both tiers)
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ANY_VALUE = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
NUMBERS = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True))


def one_line(error: Exception) -> bool:
    return bool(str(error)) and "\n" not in str(error)
