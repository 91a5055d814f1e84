"""`train-gan` touches nothing before its inputs check out, and an interrupted epoch's cost survives --resume.

(4) A missing or unreachable MNIST, a bad config or a damaged checkpoint: exit 2 with one line that names
the cause, no run folder and no data folder created, an existing run folder left byte for byte as it was.
(5) An epoch stopped by SIGINT/SIGTERM and resumed logs the time of both its parts.
Downloads are refused on purpose (a proxy that refuses connections, or urlopen patched), so these tests
behave the same with or without a network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from common.mnist import DataError, load_mnist_uint8
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import resolve
from training.run import CHECKPOINT_NAME, METRICS_NAME
from training.trainer import Interrupted, Trainer, train

from ..conftest import DATA_ROOT, REPO, one_line_error_check
from .conftest import tiny_overrides

REFUSING_PROXY = "http://127.0.0.1:9"  # nothing listens on the discard port: every download is refused at once
OFFLINE = {name: REFUSING_PROXY for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
TINY_RUN = ["--train-limit", "64", "--batch-size", "32", "--epochs", "1", "--device", "cpu", "--quiet"]
TINY_RUN += ["--eval-protocol", "none"]

assert_one_line_error = one_line_error_check("train-gan")


def run_cli(*args, cwd: Path = REPO, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    environment.update(GAN_DATA_ROOT=str(DATA_ROOT), **OFFLINE, **env)
    # This checkout's code, also from another working directory.
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", "from training.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=300,
    )


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (files by content hash, folders by name): equal before and after means untouched."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for path in sorted(folder.rglob("*"))
    }


# ---------------------------------------------------------------------- (4) MNIST that cannot be had


@pytest.fixture
def refused_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("root", [".", "a/b"], ids=["existing-root", "nested-missing-root"])
def test_failed_download_names_its_cause_and_leaves_no_folder(tmp_path, refused_downloads, root):
    with pytest.raises(DataError) as raised:
        load_mnist_uint8(tmp_path / root, train=True)
    message = str(raised.value)
    assert "\n" not in message and "could not be downloaded" in message
    # torchvision's own first line is "Error downloading train-images-idx3-ubyte.gz:", with the cause below it
    assert "Connection refused" in message, message
    assert list(tmp_path.iterdir()) == []  # MNIST/raw (and a/b) removed again; tmp_path itself was there


def test_failed_download_keeps_a_users_files(tmp_path, refused_downloads):
    notes = tmp_path / "MNIST" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("mine")
    with pytest.raises(DataError, match="Connection refused"):
        load_mnist_uint8(tmp_path, train=False)
    assert snapshot(tmp_path) == {"MNIST": "folder", "MNIST/notes.txt": hashlib.sha256(b"mine").hexdigest()}


def test_missing_data_root_creates_no_run_folder_and_no_data_folder(tmp_path):
    """The newcomer's case: `train-gan wgan_gp --data-root /nonexistent` with the default run folder."""
    missing = tmp_path / "nonexistent"
    result = run_cli("wgan_gp", "--data-root", missing / "deeper", *TINY_RUN, cwd=tmp_path)
    assert_one_line_error(result, "could not be downloaded", "Connection refused", str(missing / "deeper"))
    assert list(tmp_path.iterdir()) == []  # neither runs/wgan_gp_mlp_seed0 nor nonexistent/deeper/MNIST/raw


def test_missing_data_root_leaves_an_existing_run_folder_as_it_was(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"from": "an earlier attempt"}\n')
    (run_dir / "notes.txt").write_text("mine\n")
    (run_dir / ".config.json.abc.tmp").write_text("what a killed write may leave\n")  # a run would clean it up
    before = snapshot(tmp_path)
    result = run_cli("vanilla", "--run-dir", run_dir, "--data-root", tmp_path / "missing", *TINY_RUN)
    assert_one_line_error(result, "could not be downloaded", "Connection refused")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "make_args, fragments",
    [
        (lambda tmp: ["vanilla", "--batch-size", "128"], ["batch_size 128 exceeds the 64 training images"]),
        (lambda tmp: ["vanilla", "--holdout", "60000"], ["holdout 60000 leaves no training images"]),
        (lambda tmp: ["--config", write(tmp / "bad.toml", "batch_size = [")], ["not valid"]),
    ],
    ids=["batch-larger-than-data", "holdout-leaves-nothing", "config-not-toml"],
)
def test_bad_config_creates_no_run_folder(tmp_path, make_args, fragments):
    args = make_args(tmp_path)
    before = snapshot(tmp_path)
    result = run_cli(*args, "--run-dir", tmp_path / "runs" / "run", *TINY_RUN[:2], *TINY_RUN[4:])
    assert_one_line_error(result, *fragments)
    assert snapshot(tmp_path) == before


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    result = run_cli("vanilla", "--run-dir", run_dir, *TINY_RUN)
    assert result.returncode == 0, result.stderr
    return run_dir


def truncate_checkpoint(run_dir: Path) -> None:
    checkpoint = run_dir / CHECKPOINT_NAME
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])


def break_config(run_dir: Path) -> None:
    (run_dir / "config.json").write_text('{"variant": "vanilla", "epochs": ')


def other_model_checkpoint(run_dir: Path) -> None:
    """A checkpoint that reads but does not fit its config.json (config edited after training)."""
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "latent_dim": 64}, indent=2) + "\n")


@pytest.mark.parametrize(
    "damage, args, fragments",
    [
        (truncate_checkpoint, [], ["corrupt"]),
        (other_model_checkpoint, [], ["does not match"]),
        (break_config, [], ["config.json"]),
        (None, ["--data-root", "MISSING"], ["could not be downloaded", "Connection refused"]),
    ],
    ids=["truncated-checkpoint", "checkpoint-of-another-model", "broken-config-json", "missing-data-root"],
)
def test_resume_with_a_bad_input_leaves_the_run_folder_as_it_was(trained_run, tmp_path, damage, args, fragments):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    if damage is not None:
        damage(run_dir)
    (run_dir / ".config.json.abc.tmp").write_text("what a killed write may leave\n")  # a resume would clean it up
    args = [str(tmp_path / "missing") if arg == "MISSING" else arg for arg in args]
    before = snapshot(tmp_path)
    result = run_cli("--resume", run_dir, "--epochs", "2", *args)
    assert_one_line_error(result, *fragments)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------- (5) the cost of an interrupted epoch

BUSY_SECONDS = 0.6  # CPU time burnt before the stop: far more than the rest of the tiny epoch takes


def make_trainer(run_dir: Path, data_root: Path) -> Trainer:
    # 256 images, batch 32: 8 steps (blocks) an epoch; the stop falls after the 3rd
    cfg = resolve("vanilla", tiny_overrides(eval_protocol="none"))
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, run_dir, data_root, quiet=True)


def stop_mid_epoch_after_a_long_first_part(trainer: Trainer, blocks: int = 3) -> None:
    original, done = trainer._generator_step, {"blocks": 0}

    def step(labels):
        original(labels)
        done["blocks"] += 1
        if done["blocks"] == blocks:
            start = time.process_time()
            while time.process_time() - start < BUSY_SECONDS:  # CPU and wall time both
                pass
            trainer.stop_signal = 15

    trainer._generator_step = step
    with pytest.raises(Interrupted):
        train(trainer)


def time_the_epoch_loop(trainer: Trainer) -> dict[str, float]:
    """Wall and CPU seconds spent in trainer.train_epoch from now on (filled in as it runs)."""
    spent, original = {"wall": 0.0, "cpu": 0.0}, trainer.train_epoch

    def timed(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent["wall"] += time.perf_counter() - wall
            spent["cpu"] += time.process_time() - cpu

    trainer.train_epoch = timed
    return spent


def test_resumed_epoch_counts_the_time_before_the_stop(tmp_path, data_root):
    run_dir = tmp_path / "run"
    stop_mid_epoch_after_a_long_first_part(make_trainer(run_dir, data_root))
    _, state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    assert (state["epoch"], state["step"]) == (0, 3)
    wall_before, cpu_before = state["epoch_seconds_before"], state["epoch_cpu_seconds_before"]
    assert wall_before >= BUSY_SECONDS and cpu_before >= BUSY_SECONDS, state

    resumed = make_trainer(run_dir, data_root)
    after_resume = time_the_epoch_loop(resumed)
    started = time.perf_counter()
    record = train(resumed, resume=True)
    whole_call = time.perf_counter() - started
    assert record["epoch"] == 1
    # The sum of both parts: at least what ran before the stop plus the resumed loop, at most the
    # stored part plus the whole resumed call.
    assert wall_before + after_resume["wall"] <= record["epoch_seconds"] <= wall_before + whole_call
    assert record["epoch_cpu_seconds"] >= cpu_before + after_resume["cpu"]
    assert record["images_per_second"] == pytest.approx(8 * 32 / record["epoch_seconds"])
    logged = [json.loads(line) for line in (run_dir / METRICS_NAME).read_text().splitlines()]
    assert logged == [record]
    # Counted once: the epoch's checkpoint no longer carries the part before the stop.
    _, state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    assert (state["epoch"], state["epoch_seconds_before"], state["epoch_cpu_seconds_before"]) == (1, 0.0, 0.0)


def test_stopped_twice_in_one_epoch_counts_every_part(tmp_path, data_root):
    run_dir = tmp_path / "run"
    stop_mid_epoch_after_a_long_first_part(make_trainer(run_dir, data_root))
    second = make_trainer(run_dir, data_root)
    second.load(run_dir / CHECKPOINT_NAME)
    stop_mid_epoch_after_a_long_first_part(second, blocks=2)
    _, state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    assert (state["epoch"], state["step"]) == (0, 5)
    assert state["epoch_seconds_before"] >= 2 * BUSY_SECONDS and state["epoch_cpu_seconds_before"] >= 2 * BUSY_SECONDS
    resumed = make_trainer(run_dir, data_root)
    after_resume = time_the_epoch_loop(resumed)
    record = train(resumed, resume=True)
    assert record["epoch_seconds"] >= state["epoch_seconds_before"] + after_resume["wall"]
    assert record["epoch_cpu_seconds"] >= state["epoch_cpu_seconds_before"] + after_resume["cpu"]


def test_checkpoint_from_before_the_field_resumes_as_before(tmp_path, data_root):
    """Older checkpoints have no epoch_seconds_before: the resumed epoch counts the part after the resume."""
    run_dir = tmp_path / "run"
    stop_mid_epoch_after_a_long_first_part(make_trainer(run_dir, data_root))
    tensors, state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    del state["epoch_seconds_before"], state["epoch_cpu_seconds_before"]
    save_checkpoint(run_dir / CHECKPOINT_NAME, tensors, state)
    started = time.perf_counter()
    record = train(make_trainer(run_dir, data_root), resume=True)
    assert record["epoch_seconds"] <= time.perf_counter() - started
