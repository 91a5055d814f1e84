"""`train-gan` from the outside: listing, dry runs, config files, resume and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from common.mnist import DataError, load_mnist_uint8
from training.config import ConfigError, resolve
from training.presets import PRESETS

from ..conftest import DATA_ROOT, REPO, one_line_error_check


def run_cli(*args, **env):
    return subprocess.run(
        [sys.executable, "-c", "from training.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GAN_DATA_ROOT": str(DATA_ROOT), **env},
        timeout=300,
    )


assert_one_line_error = one_line_error_check("train-gan")


def test_list_prints_one_line_per_preset():
    result = run_cli("--list")
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)


def test_dry_run_prints_resolved_config_with_overrides(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('batch_size = 128\nlr_d = 3e-4\narch = "conv"\n')
    result = run_cli("wgan_gp_cond", "--dry-run", "--config", config, "--lr-d", "5e-4", "--ema-decay", "0.999")
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert resolved["variant"] == "wgan_gp_cond" and resolved["n_critic"] == 3  # the preset
    assert resolved["batch_size"] == 128 and resolved["arch"] == "conv"  # the file
    assert resolved["lr_d"] == 5e-4 and resolved["ema_decay"] == 0.999  # the command line wins
    assert not (REPO / resolved["run_dir"]).exists()


def test_yaml_config_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("n_critic: 2\nseed: 7\n")
    resolved = json.loads(run_cli("wgan_gp", "--dry-run", "--config", config).stdout)
    assert (resolved["n_critic"], resolved["seed"]) == (2, 7)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["nope"], ["unknown preset 'nope'", "wgan_gp_cond"]),
        (["vanilla", "--lr-g", "0"], ["lr_g must be > 0"]),
        (["vanilla", "--lr-d", "-1e-4"], ["lr_d must be > 0"]),
        (["vanilla", "--n-critic", "0"], ["n_critic must be > 0"]),
        (["vanilla", "--epochs", "0"], ["epochs must be > 0"]),
        (["vanilla", "--batch-size", "abc"], ["--batch-size"]),
        (["vanilla", "--arch", "resnet"], ["arch must be one of mlp, conv"]),
        (["vanilla", "--ema-decay", "1.5"], ["ema_decay"]),
        (["vanilla", "--epochs", "5", "--lr-decay-start", "5"], ["lr_decay_start must be < epochs (5)"]),
        (["vanilla", "--condition-critic"], ["condition_critic needs digit labels"]),
        (["wgan_gp_gmm_cond", "--num-components", "5"], ["num_components must be 10"]),
        (["vanilla", "--no-such-flag"], ["--no-such-flag"]),
        ([], ["missing VARIANT"]),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args, fragments):
    assert_one_line_error(run_cli(*args, "--dry-run"), *fragments)


def test_bad_config_files(tmp_path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("batch_size = [")
    assert_one_line_error(run_cli("vanilla", "--config", bad_toml, "--dry-run"), "not valid")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("learning_rate = 1\n")
    assert_one_line_error(run_cli("vanilla", "--config", unknown, "--dry-run"), "unknown option 'learning_rate'")
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text('epochs = "ten"\n')
    assert_one_line_error(run_cli("vanilla", "--config", wrong_type, "--dry-run"), "epochs must be a int")
    assert_one_line_error(run_cli("vanilla", "--config", tmp_path / "missing.toml", "--dry-run"), "cannot read")


def test_unwritable_run_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("vanilla", "--run-dir", blocker / "run", "--epochs", "1", "--train-limit", "64")
    assert_one_line_error(result, "not writable")


def test_missing_data_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError, match="MNIST not found under .* could not be downloaded .*GAN_DATA_ROOT"):
        load_mnist_uint8(tmp_path, train=True)


def test_train_then_resume_for_more_epochs_through_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    common = ["--train-limit", "128", "--batch-size", "32", "--quiet", "--device", "cpu", "--eval-samples", "200"]
    first = run_cli("wgan_gp_cond", "--run-dir", run_dir, "--epochs", "1", *common)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.strip().splitlines()[-1])["epoch"] == 1
    again = run_cli("wgan_gp_cond", "--run-dir", run_dir, "--epochs", "1", *common)
    assert_one_line_error(again, "already holds a checkpoint", "--resume")
    refused = run_cli("--resume", run_dir, "--lr-g", "1")
    assert_one_line_error(refused, "only epochs")
    assert_one_line_error(run_cli("--resume", run_dir, "--eval-samples", "3"), "eval_samples must be >=")
    resumed = run_cli("--resume", run_dir, "--epochs", "2", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["epoch"] == 2
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 2
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    assert any((run_dir / "tensorboard").iterdir())
    assert_one_line_error(run_cli("--resume", tmp_path / "nothing"), "is missing or unreadable")


def test_learning_rate_decay_added_on_resume_then_frozen(tmp_path):
    """A constant-lr run resumed with a decay (how the template's decaying run was made), then the lock."""
    run_dir = tmp_path / "run"
    first = run_cli(
        "wgan_gp_cond",
        "--run-dir",
        run_dir,
        "--epochs",
        "1",
        "--train-limit",
        "128",
        "--batch-size",
        "32",
        "--n-critic",
        "1",
        "--quiet",
        "--device",
        "cpu",
        "--eval-protocol",
        "none",
    )
    assert first.returncode == 0, first.stderr
    resumed = run_cli("--resume", run_dir, "--epochs", "2", "--lr-decay-start", "1", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # 4 steps per epoch: the last step of epoch 1 trains at the full rate, that of epoch 2 at 1/4 of it
    assert [r["lr_g"] for r in records] == pytest.approx([1e-4, 0.25e-4])
    assert json.loads((run_dir / "config.json").read_text())["lr_decay_start"] == 1
    for change in (["--epochs", "3"], ["--epochs", "3", "--lr-decay-start", "2"]):
        assert_one_line_error(run_cli("--resume", run_dir, *change), "cannot change", "lr_decay_start 1 of 2 epochs")
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 2  # the refusal left the folder alone


def test_resolve_rejects_variant_override():
    with pytest.raises(ConfigError):
        resolve("vanilla", {"variant": "wgan_gp"})


def test_corrupt_checkpoint_is_one_line_error(tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli(
        "vanilla", "--run-dir", run_dir, "--epochs", "1", "--train-limit", "64", "--quiet", "--eval-protocol", "none"
    )
    assert first.returncode == 0, first.stderr
    checkpoint = run_dir / "checkpoint.safetensors"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated
    assert_one_line_error(run_cli("--resume", run_dir, "--epochs", "2"), "corrupt")


def test_sigint_checkpoints_a_real_process_and_resume_continues(tmp_path):
    import signal
    import time

    from training.checkpoint import load_checkpoint

    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-c",
        "from training.cli import main; main()",
        "wgan_gp",
        "--run-dir",
        str(run_dir),
        "--epochs",
        "1000",
        "--train-limit",
        "1024",
        "--quiet",
        "--device",
        "cpu",
        "--eval-protocol",
        "none",
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "GAN_DATA_ROOT": str(DATA_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "checkpoint saved" in stderr and "--resume" in stderr and "Traceback" not in stderr
    _, state = load_checkpoint(run_dir / "checkpoint.safetensors")
    assert state["epoch"] >= 1
    finish = state["epoch"] + 1
    resumed = run_cli("--resume", run_dir, "--epochs", finish, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["epoch"] == finish
