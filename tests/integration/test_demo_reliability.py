"""The demo under requests it must refuse: a hopeless DRS rate is refused at once, no request holds a worker for
more than a few seconds, and each refused request leaves exactly one line (no traceback) in the server's log.

The shipped MLP models are served as they are (no training), from a folder of links to them.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import runtime.model
from demo.app import build_app, launch
from demo.service import MAX_PROPOSALS, REQUEST_SECONDS, DemoError, DemoModels

from ..conftest import REPO
from .conftest import free_port

CONDITIONAL, UNCONDITIONAL = "wgan_gp_cond_mlp", "wgan_gp_mlp"
pytestmark = [
    pytest.mark.skipif(
        not all((REPO / "artifacts" / name / "manifest.json").exists() for name in (CONDITIONAL, UNCONDITIONAL)),
        reason="the shipped MLP models are not in artifacts/",
    ),
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),  # pandas 3 deprecations inside Gradio's queue
]


@pytest.fixture(scope="module")
def shipped_mlps(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlp-artifacts")
    for name in (CONDITIONAL, UNCONDITIONAL):
        (root / name).symlink_to(REPO / "artifacts" / name, target_is_directory=True)
    return root


@pytest.fixture
def models(shipped_mlps) -> DemoModels:
    return DemoModels(shipped_mlps, "cpu")


@pytest.fixture
def nothing_accepted(monkeypatch):
    """Every proposal rejected: a DRS run can only end at one of its bounds."""
    monkeypatch.setattr(runtime.model, "acceptance_probability", lambda f, gamma: np.zeros(len(f)))


# ---------------------------------------------------------------------- the per-request bounds
def test_a_hopeless_rate_is_refused_at_once(models):
    started = time.perf_counter()
    with pytest.raises(DemoError) as refused:
        models.generate(CONDITIONAL, 64, "any", 1e-9, 0, 1.0)
    assert time.perf_counter() - started < 0.5
    assert models.model(CONDITIONAL)._sessions == {}  # refused before any graph ran
    message = str(refused.value)
    assert "64,000,000,000 proposals for 64 samples" in message and f"more than the {MAX_PROPOSALS:,}" in message


def test_a_rate_too_slow_for_the_time_budget_is_refused_at_once(models):
    model = models.model(CONDITIONAL)
    model._round_seconds[256] = 2.0  # as if this were a slow generator: a round of 256 proposals takes 2 s
    started = time.perf_counter()
    with pytest.raises(DemoError, match=rf"1,280 proposals for 256 samples, about 10 s .* {REQUEST_SECONDS:g} s one"):
        models.generate(CONDITIONAL, 256, "any", 0.2, 0, 1.0)
    assert time.perf_counter() - started < 0.5 and model._sessions == {}
    _, achieved, _ = models.generate(CONDITIONAL, 64, "any", 0.5, 0, 1.0)  # one round: allowed
    assert 0 < achieved <= 1


def test_a_request_that_runs_out_of_time_stops_within_its_budget(models, nothing_accepted, monkeypatch):
    monkeypatch.setattr("demo.service.REQUEST_SECONDS", 1.0)
    model = models.model(CONDITIONAL)
    model._round_seconds[256] = 0.01  # it looks fast, but each round takes 0.25 s more than that
    generate_batches = model._generate_batches

    def slow(*args, **kwargs):
        time.sleep(0.25)
        return generate_batches(*args, **kwargs)

    monkeypatch.setattr(model, "_generate_batches", slow)
    started = time.perf_counter()
    with pytest.raises(DemoError, match="did not accept 200 images within the 1 s one request may take"):
        models.generate(CONDITIONAL, 200, "any", 0.9, 0, 1.0)
    assert time.perf_counter() - started < 1.0 + 0.5  # the budget, and at most one round past it


def test_the_default_bound_stops_a_run_midway(models, nothing_accepted):
    with pytest.raises(DemoError, match="did not accept 10 images within 200 proposals"):
        models.generate(CONDITIONAL, 10, "any", 0.5, 0, 1.0)  # 10 x N / rate = 200 proposals


# ---------------------------------------------------------------------- one log line per refusal
@pytest.fixture(scope="module")
def served(shipped_mlps):
    app = build_app(shipped_mlps, "cpu")
    port = free_port()
    launch(app, port=port, block=False)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    app.close()


GOOD = (CONDITIONAL, 8, "any", 0, 0, 1.0)
REFUSED = [
    ("generate", (CONDITIONAL, 8, "any", 1e-9, 0, 1.0), "DRS at a target rate of 1e-09 needs about"),  # the handler
    ("generate", (UNCONDITIONAL, 8, "3", 0, 0, 1.0), "it takes no digit"),  # the handler
    ("generate", (CONDITIONAL, 500, "any", 0, 0, 1.0), "Value 500 is greater than maximum value 256"),  # Gradio
    ("generate", ("nope\nforged line", 8, "any", 0, 0, 1.0), r"Value: nope\nforged line is not in the list"),
    ("select_model", ("nope",), "Value: nope is not in the list of choices"),  # Gradio's check of the dropdown
    ("score_upload", (CONDITIONAL, None, "best", 0.2), "upload a PNG or JPEG image first"),
]


@pytest.mark.parametrize("endpoint, args, reason", REFUSED, ids=[f"{r[0]}-{i}" for i, r in enumerate(REFUSED)])
def test_each_refused_request_logs_one_line_and_no_traceback(served, capfd, endpoint, args, reason):
    capfd.readouterr()
    with pytest.raises(AppError):
        served.predict(*args, api_name=f"/{endpoint}")
    log = capfd.readouterr().err
    assert "Traceback" not in log, log
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) == 1, log
    assert lines[0].startswith(f"gan-demo: refused {endpoint}: ") and reason in lines[0], lines[0]


def test_a_served_request_logs_nothing(served, capfd):
    capfd.readouterr()
    gallery, achieved, summary = served.predict(*GOOD, api_name="/generate")
    assert len(gallery) == 8 and achieved == 1.0
    assert capfd.readouterr().err.strip() == ""
