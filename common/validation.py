"""Each rule on a user-given value, defined once: the CLIs (through Typer callbacks), the demo and the
library call these, so a rule and its message are the same everywhere."""

from __future__ import annotations

import math
from numbers import Real

from .errors import UserError

NUM_DIGITS = 10  # MNIST's classes; conditional models take a digit 0..9


class InvalidRequest(UserError):
    """A request that cannot be served: a value outside its rule (rate, digit, spread, seed, count), or a choice
    the model does not take (a digit for an unconditional model, a device it lacks)."""


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_whole(value, what: str, low: int, high: int | None = None) -> int:
    """A whole number in low..high (an integral float such as 4.0 counts: web forms send them)."""
    if not (_is_number(value) and math.isfinite(value) and float(value).is_integer()):
        raise InvalidRequest(f"{what} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"in {low}..{high:,}" if high is not None else f">= {low}"
        raise InvalidRequest(f"{what} must be {bounds}, got {int(value):,}")
    return int(value)


def check_count(count, what: str = "the number of images", maximum: int | None = None) -> int:
    return check_whole(count, what, 1, maximum)


def check_seed(seed, what: str = "the seed", maximum: int | None = None) -> int:
    return check_whole(seed, what, 0, maximum)


def check_digit(digit, what: str = "digit") -> int:
    return check_whole(digit, what, 0, NUM_DIGITS - 1)


def check_choice(value, choices: tuple[str, ...], what: str) -> str:
    """One of a fixed set of names (a device, a precision, an Inception runtime)."""
    if value not in choices:
        raise InvalidRequest(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA where there is one, else the CPU
# Numeric precisions of a generator's image graph: fp32 is the exported graph's arithmetic (today's bytes); int8
# a quantised copy of its image path, shipped beside it where its quality matches (common/manifest.py).
PRECISIONS = ("fp32", "int8")
# What runs P0's Inception; auto: onnx on the CPU, torch on CUDA. onnx-int8: an int8 copy of the onnx graph, opt-in and
# not P0 (its FID deviation is measured and printed; evaluation/inception_onnx.py).
INCEPTION_RUNTIMES = ("auto", "onnx", "torch", "onnx-int8")
INT8_INCEPTION = "onnx-int8"


def check_device(device, what: str = "device") -> str:
    return check_choice(device, DEVICES, what)


def check_precision(precision, what: str = "precision") -> str:
    return check_choice(precision, PRECISIONS, what)


def check_inception_runtime(runtime, what: str = "Inception runtime") -> str:
    return check_choice(runtime, INCEPTION_RUNTIMES, what)


def check_rate(rate, what: str = "DRS rate", off: str = "") -> float:
    """A DRS target acceptance rate in (0, 1]."""
    if not (_is_number(rate) and 0.0 < rate <= 1.0):
        raise InvalidRequest(f"{what} must be a target acceptance rate in (0, 1]{off}, got {rate!r}")
    return float(rate)


def check_rate_or_off(rate, what: str = "DRS rate") -> float | None:
    """A DRS target acceptance rate in (0, 1], or 0 for no DRS (None), as a form's number field sends it."""
    if _is_number(rate) and rate == 0:
        return None
    return check_rate(rate, what, off=" (0 = off)")


def check_spread(spread, what: str = "spread", bounds: tuple[float, float] | None = None) -> float:
    """A latent spread (the noise scale): a finite number > 0, within `bounds` where a form limits it."""
    if bounds is not None:
        if not (_is_number(spread) and bounds[0] <= spread <= bounds[1]):
            raise InvalidRequest(f"{what} must be a number in [{bounds[0]:g}, {bounds[1]:g}], got {spread!r}")
    elif not (_is_number(spread) and 0 < spread < math.inf):
        raise InvalidRequest(f"{what} must be a finite number > 0, got {spread!r}")
    return float(spread)
