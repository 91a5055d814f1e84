"""DRS bounds and progress in the runtime: a hopeless request is refused up front (before any graph runs), a run
that reaches its bound mid-way still stops, a time budget stops a run without changing the images of one it does
not stop, and `gan-runtime sample` draws a progress bar on a terminal only.

The shipped MLP model is used as is (no training): artifacts/wgan_gp_cond_mlp.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import numpy as np
import pytest

import runtime.model
from runtime.model import (
    DEFAULT_MAX_PROPOSALS,
    GanModel,
    ProposalLimitReached,
    RequestTooCostly,
    TimeLimitReached,
)

from ..conftest import REPO, one_line_error_check

MODEL = REPO / "artifacts" / "wgan_gp_cond_mlp"
pytestmark = pytest.mark.skipif(not (MODEL / "manifest.json").exists(), reason=f"no shipped model at {MODEL}")
assert_one_line_error = one_line_error_check("gan-runtime")


@pytest.fixture
def model() -> GanModel:
    return GanModel.load(MODEL, "cpu")


@pytest.fixture
def nothing_accepted(monkeypatch):
    """Every proposal rejected: a DRS run can only end at one of its bounds."""
    monkeypatch.setattr(runtime.model, "acceptance_probability", lambda f, gamma: np.zeros(len(f)))


def command(*args) -> list[str]:
    return [sys.executable, "-c", "from runtime.cli import main; main()", *map(str, args)]


def environment(**extra) -> dict[str, str]:
    return {**os.environ, "GAN_ARTIFACTS": str(REPO / "artifacts"), **extra}


def cli(*args, cwd, **run):
    return subprocess.run(command(*args), cwd=cwd, env=environment(), **run)


# ---------------------------------------------------------------------- refused up front
def test_a_hopeless_rate_is_refused_before_any_graph_runs(model):
    started = time.perf_counter()
    with pytest.raises(RequestTooCostly) as refused:
        model.generate(100, seed=0, drs_rate=1e-9)
    assert time.perf_counter() - started < 0.5
    assert model._sessions == {}  # no onnxruntime session was even opened
    message = str(refused.value)
    for fragment in ("100 images", "rate of 1e-09", "100,000,000,000 proposals", f"bound of {DEFAULT_MAX_PROPOSALS:,}"):
        assert fragment in message, message
    assert "--drs" in message and "--max-proposals" in message and "\n" not in message


def test_the_default_bound_is_absolute_and_an_explicit_one_is_exact(model, nothing_accepted):
    # The default: at most DEFAULT_MAX_PROPOSALS, whatever N / rate asks for.
    with pytest.raises(RequestTooCostly, match=f"more than the bound of {DEFAULT_MAX_PROPOSALS:,}"):
        model.generate(1, drs_rate=1 / (DEFAULT_MAX_PROPOSALS + 10))
    # An explicit bound: N / rate above it is refused, N / rate at it runs (and here stops mid-way).
    with pytest.raises(RequestTooCostly, match="need about 100 proposals"):
        model.generate(10, drs_rate=0.1, max_proposals=99)
    with pytest.raises(ProposalLimitReached):
        model.generate(10, drs_rate=0.1, max_proposals=100)


def test_gan_runtime_refuses_up_front_in_one_line_and_writes_nothing(tmp_path):
    started = time.perf_counter()
    result = cli(
        "sample", "--model", "wgan_gp_cond_mlp", "--drs", "1e-9", "--out-dir", tmp_path / "pngs",
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    assert_one_line_error(result, "DRS refused: 100 images", "100,000,000,000 proposals", "--max-proposals")
    assert list(tmp_path.iterdir()) == []
    assert seconds < 20, seconds  # a Python start and the imports; the 10^12 proposals would take days


# ---------------------------------------------------------------------- stopped mid-way
def test_a_run_that_reaches_its_bound_midway_raises_proposal_limit_reached(model, nothing_accepted):
    with pytest.raises(ProposalLimitReached) as stopped:
        model.generate(10, seed=0, drs_rate=0.5, max_proposals=1000)
    assert not isinstance(stopped.value, RequestTooCostly | TimeLimitReached)
    assert "bound of 1,000 proposals with 0 of 10 images accepted after 1,000 proposals" in str(stopped.value)


def test_a_time_budget_refuses_up_front_at_the_measured_speed(model):
    model._round_seconds[256] = 2.0  # as if a round of 256 took 2 s: 5 rounds for 256 images at 20%
    started = time.perf_counter()
    with pytest.raises(RequestTooCostly) as refused:
        model.generate(256, seed=0, drs_rate=0.2, max_seconds=5)
    assert time.perf_counter() - started < 0.5 and model._sessions == {}
    assert refused.value.seconds == pytest.approx(10.0) and refused.value.budget == 5
    assert "about 10.0 s" in str(refused.value) and "budget of 5 s" in str(refused.value)


def test_a_time_budget_stops_a_run_midway(model, nothing_accepted, monkeypatch):
    model._round_seconds[256] = 0.01  # the speed is known: no measuring run
    generate_batches = model._generate_batches

    def slow(*args, **kwargs):
        time.sleep(0.1)
        return generate_batches(*args, **kwargs)

    monkeypatch.setattr(model, "_generate_batches", slow)
    started = time.perf_counter()
    with pytest.raises(TimeLimitReached, match="time budget of 0.5 s with 0 of 10 images accepted"):
        model.generate(10, seed=0, drs_rate=0.5, max_proposals=40 * 256, max_seconds=0.5)
    assert time.perf_counter() - started < 2.0


def test_bounds_and_progress_keep_same_seed_same_images(model):
    plain_images, plain_stats = model.generate(40, seed=3, drs_rate=0.3)
    calls = []
    fresh = GanModel.load(MODEL, "cpu")  # measures its speed (max_seconds) first, on noise of its own
    images, stats = fresh.generate(40, seed=3, drs_rate=0.3, max_seconds=60, progress=lambda *c: calls.append(c))
    assert np.array_equal(images, plain_images) and stats.proposals == plain_stats.proposals
    assert 256 in fresh._round_seconds  # the speed was measured
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 40 and {total for _, total in calls} == {40}
    calls.clear()
    images, _ = model.generate(600, seed=1, progress=lambda *c: calls.append(c))
    assert calls == [(256, 600), (512, 600), (600, 600)]
    assert np.array_equal(images, model.generate(600, seed=1)[0])


# ---------------------------------------------------------------------- progress on a terminal only
def on_a_terminal(args, cwd) -> tuple[int, str]:
    """Run gan-runtime with stdout and stderr on a pseudo-terminal; (exit status, everything it wrote)."""
    leader, follower = pty.openpty()
    env = environment(TERM="xterm", COLUMNS="100", LINES="30")
    with subprocess.Popen(
        command(*args), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
    ) as process:
        os.close(follower)
        output = bytearray()
        while select.select([leader], [], [], 120)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed its end of the terminal
                break
            if not chunk:
                break
            output += chunk
        os.close(leader)
        code = process.wait(timeout=120)
    return code, output.decode(errors="replace")


@pytest.fixture
def long_enough(tmp_path):
    # ~3,000 images of the MLP: under a second, several rounds; a terminal shows the bar at least once.
    return ["sample", "--model", "wgan_gp_cond_mlp", "--n", "3000", "--npy", tmp_path / "x.npy"]


def test_progress_bar_with_an_eta_on_a_terminal(long_enough, tmp_path):
    code, output = on_a_terminal(long_enough, tmp_path)
    assert code == 0, output
    assert "generated" in output and "ETA" in output and "3000/3000" in output, output  # drawn to the end


def test_drs_progress_counts_accepted_images(tmp_path):
    args = ["sample", "--model", "wgan_gp_cond_mlp", "--n", "500", "--drs", "0.2", "--npy", tmp_path / "x.npy"]
    code, output = on_a_terminal(args, tmp_path)
    assert code == 0, output
    assert "accepted" in output and "ETA" in output and "500/500" in output, output


def test_no_progress_when_piped_or_quiet(long_enough, tmp_path):
    piped = cli(*long_enough, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
    (tmp_path / "x.npy").unlink()
    code, output = on_a_terminal([*long_enough, "--quiet"], tmp_path)
    assert code == 0 and "3000 images" in output, output
    assert "ETA" not in output and "generated" not in output, output
