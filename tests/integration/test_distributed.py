"""`torchrun --nproc-per-node 2 train-gan` on the CPU (gloo): trains what one process trains at the same global
batch, rank 0 alone writes, a checkpoint resumes at either world size; launch errors are one line from rank 0.

Why not bit-exact: both runs draw the same data order and noise (training/distributed.py), but two processes
average two half-batch means where one process takes one mean over the batch (the gradients, the losses, the
penalty), and sum their gradients in an all-reduce; batch norm's statistics come from all-reduced sums. Those
roundings (~1e-7 relative) then grow through the steps; and Adam turns a gradient that is zero up to rounding
(e.g. a bias feeding a batch norm, which subtracts it again) into full-size steps of either sign. Hence the
tolerance on the whole update, not per weight: ||w_2 - w_1|| <= 1e-3 ||w_1 - w_init|| over all weights of G and
D (measured: 1e-5 for the MLP, 1.3e-4 for the conv pair after 8 critic steps); the RNG states, the data
permutation and the step counters are equal exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from training.checkpoint import load_checkpoint
from training.config import resolve
from training.trainer import CHECKPOINT_NAME, Trainer, train

from ..conftest import DATA_ROOT, REPO, one_line_error_check
from .conftest import single_torch_thread

RELATIVE_TOLERANCE = 1e-3
ARCHITECTURES = {"mlp": {}, "conv": {"arch": "conv", "conv_width": 8}}
OPTIONS = {"train_limit": 256, "batch_size": 32, "epochs": 1, "device": "cpu", "eval_protocol": "none"}


def cli_arguments(options: dict) -> list[str]:
    return [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]


def torchrun(*arguments: str, per_rank_run_dir=None) -> subprocess.CompletedProcess:
    """train-gan on 2 processes (gloo); `per_rank_run_dir`: rank r gets --run-dir FOLDER/rankR."""
    command = [sys.executable, "-c", "from training.cli import main; main()", *arguments]
    if per_rank_run_dir is not None:
        command = ["sh", "-c", 'exec "$@" --run-dir "$RUNS/rank$RANK"', "sh", *command]
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--no-python", *command],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GAN_DATA_ROOT": str(DATA_ROOT), "RUNS": str(per_rank_run_dir), "OMP_NUM_THREADS": "1"},
        timeout=300,
    )


def one_process(run_dir, options: dict, resume: bool = False) -> Trainer:
    cfg = resolve("wgan_gp_cond", options)
    if not resume:
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    trainer = Trainer(cfg, run_dir, DATA_ROOT, quiet=True)
    with single_torch_thread():
        train(trainer, resume=resume)
    return trainer


def assert_same_training(run_a, run_b, initial: dict[str, torch.Tensor]) -> None:
    a, state_a = load_checkpoint(run_a / CHECKPOINT_NAME)
    b, state_b = load_checkpoint(run_b / CHECKPOINT_NAME)
    assert a.keys() == b.keys() and (state_a["epoch"], state_a["step"]) == (state_b["epoch"], state_b["step"])
    for name in ("rng.data", "rng.noise", "loop.perm", "loop.counts"):
        assert torch.equal(a[name], b[name]), name
    weights = [name for name in a if name.split(".")[0] in ("generator", "critic") and a[name].is_floating_point()]
    averaged = [name for name in a if name.startswith("ema.module.") and a[name].is_floating_point()]
    for names in (weights, averaged):  # the EMA of G follows the weights
        difference = torch.stack([(a[name].double() - b[name].double()).norm() for name in names]).norm()
        update = torch.stack([(a[name].double() - initial[name].double()).norm() for name in names]).norm()
        assert difference <= RELATIVE_TOLERANCE * update, (names[0], float(difference), float(update))
    assert torch.allclose(a["loop.sums"], b["loop.sums"], rtol=1e-2), "the logged statistics"


def logged_epochs(run_dir) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_two_processes_train_as_one_and_resume_at_either_world_size(tmp_path, data_root, arch):
    options = {**OPTIONS, **ARCHITECTURES[arch], "ema_decay": 0.9}
    # One process: epoch 1 (kept), then resumed to epoch 2.
    cfg = resolve("wgan_gp_cond", options)
    initial = {name: tensor.clone() for name, tensor in Trainer(cfg, tmp_path, DATA_ROOT).state_tensors().items()}
    one_process(tmp_path / "one", options)
    shutil.copytree(tmp_path / "one", tmp_path / "one-epoch1")
    one_process(tmp_path / "one", {**options, "epochs": 2}, resume=True)

    # Two processes from the start: rank 1's --run-dir names another folder, which must stay unmade.
    result = torchrun("wgan_gp_cond", *cli_arguments(options), "--quiet", per_rank_run_dir=tmp_path / "two")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.strip().splitlines()) == 1  # rank 0's final record, once
    two = tmp_path / "two" / "rank0"
    assert not (tmp_path / "two" / "rank1").exists()
    assert (two / "samples" / "epoch_0001.png").is_file() and any((two / "tensorboard").iterdir())
    assert logged_epochs(two) == [1]
    assert_same_training(two, tmp_path / "one-epoch1", initial)

    # The 2-process checkpoint resumed by one process, the 1-process one by two: both match one process.
    shutil.copytree(two, tmp_path / "two-then-one")
    one_process(tmp_path / "two-then-one", {**options, "epochs": 2}, resume=True)
    assert_same_training(tmp_path / "two-then-one", tmp_path / "one", initial)

    result = torchrun("--resume", tmp_path / "one-epoch1", "--epochs=2", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    assert logged_epochs(tmp_path / "one-epoch1") == [1, 2]
    assert_same_training(tmp_path / "one-epoch1", tmp_path / "one", initial)


def run_as_both_ranks(*arguments: str) -> list[subprocess.CompletedProcess]:
    """train-gan as torchrun starts ranks 0 and 1 of 2, side by side (the checks below fail before any peer is
    needed)."""
    command = [sys.executable, "-c", "from training.cli import main; main()", *arguments]
    processes = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={
                **os.environ,
                "GAN_DATA_ROOT": str(DATA_ROOT),
                **{"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"},
            },
        )
        for rank in (0, 1)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    return [
        subprocess.CompletedProcess(command, process.returncode, out, err)
        for process, (out, err) in zip(processes, outputs, strict=True)
    ]


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (["--batch-size=33"], "batch_size 33 is the global batch and must split evenly across the 2 processes"),
        (["--device=cuda"], "CUDA is not available"),
    ],
    ids=["batch-not-divisible", "nccl-without-gpus"],
)
def test_launch_errors_are_one_line_from_rank_0_alone(tmp_path, arguments, fragment):
    if fragment == "CUDA is not available" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run_dir = tmp_path / "run"
    arguments = ["wgan_gp_cond", *cli_arguments(OPTIONS), *arguments, f"--run-dir={run_dir}"]
    rank_0, rank_1 = run_as_both_ranks(*arguments)
    one_line_error_check("train-gan")(rank_0, fragment)
    assert (rank_1.returncode, rank_1.stderr) == (2, "")
    assert not run_dir.exists()
