"""Faults: `train-gan` killed with SIGKILL at random moments (one of them mid-checkpoint-write), a NaN
in the loss, a read-only run folder and a full disk. Each run is a real process on a tiny CPU run.

After every kill each file of the run folder must still parse (checkpoint, metrics.jsonl, config.json,
PNGs), `--resume` must continue, and the final weights must equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from common.files import TEMP_PREFIX, TEMP_SUFFIX
from training.checkpoint import load_checkpoint
from training.run import CHECKPOINT_NAME, METRICS_NAME

from ..conftest import DATA_ROOT, REPO, one_line_error_check

EPOCHS = 24
# 128 images, batch 32: 4 steps an epoch, ~0.1 s on one busy core; plots and grids every 4 epochs.
TINY_RUN = [
    "vanilla",
    "--train-limit",
    "128",
    "--batch-size",
    "32",
    "--eval-protocol",
    "none",
    "--eval-every",
    "4",
    "--checkpoint-every",
    "1",
    "--device",
    "cpu",
    "--quiet",
]
RANDOM_KILLS = 5
KILL_SEED = 7
# One thread: the runs are tiny, and the reference and the killed runs must do the same float work.
ENV = {**os.environ, "GAN_DATA_ROOT": str(DATA_ROOT), "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-c", "from training.cli import main; main()"]
PROCESS_TIMEOUT_S = 120


def start(*args, preexec_fn=None) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, *map(str, args)],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
    )


def run(*args, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *map(str, args)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
        preexec_fn=preexec_fn,
    )


assert_one_line_error = one_line_error_check("train-gan")


def temp_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"))


def checkpoint_epoch(run_dir: Path) -> int:
    return load_checkpoint(run_dir / CHECKPOINT_NAME)[1]["epoch"]


def assert_every_file_parses(run_dir: Path) -> None:
    """What a kill may leave: complete files, plus temporary files that never replaced anything."""
    leftovers = set(temp_files(run_dir))
    load_checkpoint(run_dir / CHECKPOINT_NAME)  # raises on a truncated or torn checkpoint
    assert json.loads((run_dir / "config.json").read_text())["variant"] == "vanilla"
    epochs = [json.loads(line)["epoch"] for line in (run_dir / METRICS_NAME).read_text().splitlines()]
    assert epochs == list(range(1, len(epochs) + 1))
    for png in [*run_dir.glob("samples/*.png"), *run_dir.glob("plots/*.png")]:
        if png not in leftovers:
            Image.open(png).load()  # raises on a truncated PNG


def wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while not condition():
        assert process.poll() is None, f"train-gan exited ({process.returncode}) before {what}: {process.stderr.read()}"
        assert time.monotonic() < deadline, f"no {what} within {PROCESS_TIMEOUT_S} s"
        time.sleep(0.005)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=PROCESS_TIMEOUT_S)
    assert process.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """The same run, never interrupted."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = run(*TINY_RUN, "--run-dir", run_dir, "--epochs", EPOCHS)
    assert result.returncode == 0, result.stderr
    return run_dir


def test_sigkill_at_random_moments_and_mid_checkpoint_then_resume_bit_identical(reference_run, tmp_path):
    run_dir = tmp_path / "run"
    rng = random.Random(KILL_SEED)
    # Where the checkpoint-write kill falls among the random ones; the rest wait a random time
    # (up to ~2 epochs) after the run has checkpointed once more, then kill.
    plan = ["random"] * RANDOM_KILLS
    plan.insert(rng.randrange(1, RANDOM_KILLS + 1), "checkpoint-write")
    kills = []
    for attempt, moment in enumerate(plan):
        resumed_from = checkpoint_epoch(run_dir) if attempt else 0
        process = (
            start("--resume", run_dir, "--epochs", EPOCHS, "--quiet")
            if attempt
            else start(*TINY_RUN, "--run-dir", run_dir, "--epochs", EPOCHS)
        )
        checkpoint = run_dir / CHECKPOINT_NAME
        if moment == "checkpoint-write":
            # The temporary file exists from mkstemp until its rename over the checkpoint: kill in between.
            wait_for(
                lambda: any(p.name.startswith(f"{TEMP_PREFIX}{CHECKPOINT_NAME}.") for p in temp_files(run_dir)),
                process,
                "checkpoint write",
            )
            kill(process)
            assert any(p.name.startswith(f"{TEMP_PREFIX}{CHECKPOINT_NAME}.") for p in temp_files(run_dir)), (
                "the kill missed the checkpoint write"
            )
        else:
            before = checkpoint.stat().st_ino if checkpoint.exists() else None
            wait_for(
                lambda checkpoint=checkpoint, before=before: checkpoint.exists() and checkpoint.stat().st_ino != before,
                process,
                "a new checkpoint",
            )
            time.sleep(rng.uniform(0.0, 0.5))
            if process.poll() is not None:
                pytest.fail(f"the run finished before kill {attempt + 1}; raise EPOCHS")
            kill(process)
        assert_every_file_parses(run_dir)
        kills.append(
            {"moment": moment, "resumed_from_epoch": resumed_from, "checkpoint_epoch": checkpoint_epoch(run_dir)}
        )

    print("kills:", json.dumps(kills))  # the figures README's Reliability section quotes (pytest -s)
    finish = run("--resume", run_dir, "--epochs", EPOCHS, "--quiet")
    assert finish.returncode == 0, finish.stderr
    assert_every_file_parses(run_dir)
    assert temp_files(run_dir) == []  # --resume removed what the kills left
    assert len(kills) == RANDOM_KILLS + 1 and all(k["checkpoint_epoch"] < EPOCHS for k in kills), kills

    expected, expected_state = load_checkpoint(reference_run / CHECKPOINT_NAME)
    resumed, state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    assert state["epoch"] == expected_state["epoch"] == EPOCHS
    assert resumed.keys() == expected.keys()
    for name in expected:  # weights, EMA, optimizer moments and RNG states
        assert torch.equal(resumed[name], expected[name]), name
    epochs = [json.loads(line)["epoch"] for line in (run_dir / METRICS_NAME).read_text().splitlines()]
    assert epochs == list(range(1, EPOCHS + 1))


def copy_of(reference_run: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    return run_dir


NAN_LOSS_FROM_EPOCH_2 = """
import sys
import training.objectives as objectives
bce = objectives.OBJECTIVES["bce"]
original = bce.critic_loss
bce.critic_loss = lambda self, d_real, d_fake: original(self, d_real, d_fake) * float("nan")
from training.cli import main
main()
"""


def test_nan_in_the_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(reference_run, tmp_path):
    run_dir = copy_of(reference_run, tmp_path)
    good = (run_dir / CHECKPOINT_NAME).read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", NAN_LOSS_FROM_EPOCH_2, "--resume", str(run_dir), "--epochs", str(EPOCHS + 2), "--quiet"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
    )
    assert_one_line_error(result, f"non-finite loss in epoch {EPOCHS + 1}", "last good checkpoint kept", code=1)
    assert (run_dir / CHECKPOINT_NAME).read_bytes() == good
    assert temp_files(run_dir) == []


CAP_DAC_OVERRIDE = 1  # linux/capability.h
PR_CAPBSET_DROP = 24  # linux/prctl.h


def without_root_file_override() -> None:
    """preexec_fn: root ignores file modes through CAP_DAC_OVERRIDE; drop it from the bounding set so
    the process (root or not) really meets a read-only folder."""
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0 and libc.prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE)")


def test_read_only_run_folder_is_one_line_error_and_the_checkpoint_intact(reference_run, tmp_path):
    run_dir = copy_of(reference_run, tmp_path)
    good = (run_dir / CHECKPOINT_NAME).read_bytes()
    run_dir.chmod(0o555)
    try:
        result = run("--resume", run_dir, "--epochs", EPOCHS + 1, "--quiet", preexec_fn=without_root_file_override)
    finally:
        run_dir.chmod(0o755)
    assert_one_line_error(result, "is not writable", "Permission denied")
    assert (run_dir / CHECKPOINT_NAME).read_bytes() == good
    assert temp_files(run_dir) == []


FILE_SIZE_LIMIT = 1 << 20  # 1 MiB: config, metrics and a grid fit; a 35 MB checkpoint does not


def with_a_full_disk() -> None:
    """preexec_fn: writes past 1 MiB fail with EFBIG, as a full disk fails them with ENOSPC
    (SIGXFSZ ignored, so the write returns the error instead of killing the process)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def test_full_disk_while_checkpointing_is_one_line_error_and_the_checkpoint_intact(reference_run, tmp_path):
    run_dir = copy_of(reference_run, tmp_path)
    good = (run_dir / CHECKPOINT_NAME).read_bytes()
    assert len(good) > FILE_SIZE_LIMIT
    result = run("--resume", run_dir, "--epochs", EPOCHS + 1, "--quiet", preexec_fn=with_a_full_disk)
    assert_one_line_error(result, "File too large", "the last checkpoint written is intact", "--resume")
    assert (run_dir / CHECKPOINT_NAME).read_bytes() == good
    assert temp_files(run_dir) == []  # the half-written checkpoint was removed
    # The epoch was logged before its checkpoint failed; the next resume drops that line and redoes it.
    resumed = run("--resume", run_dir, "--epochs", EPOCHS + 1, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint_epoch(run_dir) == EPOCHS + 1
