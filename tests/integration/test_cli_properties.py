"""Property tests of argument validation: whatever the values, a valid result or a one-line refusal,
never another exception (which would reach the user as a traceback). The demo's validation rules, torch-free,
are in tests/fast/test_validation.py."""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runtime.cli import MAX_IMAGES
from runtime.cli import main as runtime_main
from runtime.registry import ARTIFACTS_ENV
from training.config import FIELDS, MAX_INT, ConfigError, resolve
from training.presets import PRESETS

from ..conftest import ANY_VALUE, NUMBERS, PROPERTY_SETTINGS, one_line
from .conftest import MODEL


# ---------------------------------------------------------------------- train-gan's configuration
@PROPERTY_SETTINGS
@given(
    variant=st.sampled_from(list(PRESETS)),
    overrides=st.dictionaries(
        st.sampled_from([name for name in FIELDS if name != "variant"]), st.one_of(NUMBERS, ANY_VALUE), max_size=4
    ),
)
def test_any_config_values_resolve_to_a_valid_config_or_one_config_error(variant, overrides):
    try:
        cfg = resolve(variant, overrides)
    except ConfigError as error:
        assert one_line(error)
        return
    for name, field in FIELDS.items():
        value = getattr(cfg, name)
        if field.type == "float":
            assert isinstance(value, float) and math.isfinite(value), (name, value)
        if field.type == "int":
            assert isinstance(value, int) and not isinstance(value, bool) and value <= MAX_INT, (name, value)
    assert cfg.lr_g > 0 and cfg.batch_size > 0 and cfg.epochs > 0 and cfg.seed >= 0 and 0 <= cfg.ema_decay < 1


# ---------------------------------------------------------------------- gan-runtime sample, end to end
def _run_sample(args: list[str], workdir: Path) -> tuple[int, str]:
    sys.argv = ["gan-runtime", "sample", "--model", MODEL, "--out", str(workdir / "g.png"), *args]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            runtime_main()
        except SystemExit as stop:
            return stop.code, stderr.getvalue()
    pytest.fail("gan-runtime returned without exiting")


ARGUMENT_TEXT = st.one_of(NUMBERS.map(str), st.text(alphabet="0123456789.-+eEinfa", min_size=1, max_size=6))


def option(flag: str, valid: st.SearchStrategy, wild: st.SearchStrategy) -> st.SearchStrategy:
    """The flag left out, a valid value (weighted up, so that whole valid commands are drawn too),
    any value of the type, or any text."""
    value = st.one_of(valid, valid, valid, wild.map(str), ARGUMENT_TEXT)
    return st.one_of(st.just([]), value.map(lambda text: [flag, str(text)]))


SAMPLE_OPTIONS = st.tuples(
    option("--n", st.integers(1, 16), st.integers() | st.integers(min_value=MAX_IMAGES + 1)),
    option("--seed", st.integers(0, 2**64), st.integers()),
    option("--spread", st.floats(0.05, 3.0), NUMBERS),
    option("--drs", st.floats(0.05, 1.0), NUMBERS),
    option("--digit", st.integers(0, 9), st.integers(-20, 20)),
).map(lambda options: [part for flag_and_value in options for part in flag_and_value])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=SAMPLE_OPTIONS)
def test_gan_runtime_sample_arguments_give_a_grid_or_one_error_line(trained, args):
    previous_argv, previous_root = sys.argv, os.environ.get(ARTIFACTS_ENV)
    os.environ[ARTIFACTS_ENV] = str(trained["artifacts"])
    try:
        with tempfile.TemporaryDirectory() as folder:
            workdir = Path(folder)
            # The bound keeps every accepted low-rate DRS request small; it is an argument like the others.
            code, err = _run_sample([*args, "--max-proposals", "4000"], workdir)
            written = sorted(p.name for p in workdir.iterdir())
    finally:
        sys.argv = previous_argv
        if previous_root is None:
            del os.environ[ARTIFACTS_ENV]
        else:
            os.environ[ARTIFACTS_ENV] = previous_root
    event("grid written" if code == 0 else "refused")  # --hypothesis-show-statistics: both must occur
    if code == 0:
        assert written == ["g.png"] and err == ""
    else:
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("gan-runtime: error: "), err
        assert written == []
