"""The training loop: n_critic critic steps per generator step over tensor-resident MNIST.

Per block of n_critic critic steps the generator runs once (no grad) for the whole block's fakes,
and each critic step scores real and fake images in one forward pass; WGAN-GP's interpolates reuse
that pass's input-layer activations (see models.AffineInputCritic).
Everything random comes from two seeded generators whose states are checkpointed, so a resumed
run continues bit for bit on CPU. Under torchrun each rank trains on its rows of every global batch
(training/distributed.py: the data, the noise, what is and is not bit-exact).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import signal
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from common.cli import shows_progress
from common.files import atomic_write_bytes, atomic_write_text
from common.images import grid_png, unit_to_uint8
from evaluation.figures import plot_metrics
from evaluation.scoring import Evaluator

from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    optimizer_tensors,
    prefixed,
    restore_optimizer,
    save_checkpoint,
    unprefixed,
)
from .config import ConfigError, TrainConfig
from .data import load_training_set
from .distributed import World, synchronise_batch_norm
from .models import build_models
from .objectives import CONSTRAINTS, OBJECTIVES, OPTIMIZERS
from .plots import plot_training_curves
from .priors import build_prior
from .run import CHECKPOINT_NAME, METRICS_NAME
from .sampling import sample_run

# Running sums kept per epoch: critic-step stats, then generator-step stats.
CRITIC_STATS = ("loss_d", "wasserstein", "d_real", "d_fake", "penalty")
GENERATOR_STATS = ("loss_g", "g_grad_norm")
STATS = CRITIC_STATS + GENERATOR_STATS
GRID_NOISE_SEED_OFFSET = 10_007  # sample grids use their own noise, never the training RNG
EVAL_NOISE_SEED_OFFSET = 20_011  # so do evaluation samples: the same draws at every evaluation


class TrainingError(RuntimeError):
    """The run stopped (non-finite loss); the message says why and where the last checkpoint is."""


class Interrupted(RuntimeError):
    """SIGINT/SIGTERM: a checkpoint was written and the run can be resumed."""


def learning_rate_scale(progress: float, decay_start: int, epochs: int) -> float:
    """The factor on both base learning rates after `progress` epochs: 1, then linear to 0 at the last epoch."""
    if decay_start == 0 or progress <= decay_start:
        return 1.0
    return max(0.0, (epochs - progress) / (epochs - decay_start))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was requested but CUDA is not available on this machine")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """The GPU's name, or "cpu"."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


class CriticStep(nn.Module):
    """One critic step's losses and scores from real and generated images: the whole critic computation.

    The step calls the critic's parts (`input_layer`, `rest`, and `rest` again on the penalty's interpolates,
    differentiated twice). DistributedDataParallel all-reduces the gradients of the parameters its wrapped
    module's forward uses, so under torchrun it wraps this module: every one of those calls is covered, the
    all-reduce overlaps the backward, and a single process runs the very same ops. (An explicit all-reduce of
    the critic's gradients after backward would cover them too, but would neither overlap nor be DDP.)
    """

    def __init__(self, critic: nn.Module, objective, constraint, autocast: torch.autocast):
        super().__init__()
        self.critic, self.objective, self.constraint, self.autocast = critic, objective, constraint, autocast

    def forward(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor, uniform):
        rows = real.shape[0]
        with self.autocast:
            both_labels = labels.repeat(2)
            activations = self.critic.input_layer(torch.cat([real, fake]), both_labels)
            d_real, d_fake = self.critic.rest(activations, both_labels).float().split(rows)
        loss = self.objective.critic_loss(d_real, d_fake)
        penalty = self.constraint.penalty(self.critic, activations.split(rows), labels, uniform, self.autocast)
        return loss, penalty, d_real, d_fake


class Trainer:
    def __init__(
        self, cfg: TrainConfig, run_dir: Path, data_root: Path, quiet: bool = False, world: World | None = None
    ):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.world = world or World()
        self.world.check_batch_size(cfg.batch_size)
        self.quiet = quiet or not self.world.is_main  # rank 0 alone draws progress and prints
        self.device = self.world.join(pick_device(cfg.device))
        # Logged with every epoch: a run's cost is CPU-hours on a CPU but GPU-minutes on an accelerator.
        name = device_name(self.device)
        self.device_name = f"{self.world.size} x {name}" if self.world.distributed else name
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        torch.manual_seed(cfg.seed)  # model initialisation and static mixture means

        self.prior = build_prior(cfg.prior, cfg.latent_dim, cfg.num_components, cfg.mixture_radius, cfg.mixture_sigma)
        self.objective = OBJECTIVES[cfg.objective]()
        self.constraint = CONSTRAINTS[cfg.lipschitz](cfg)
        self.generator, self.critic = build_models(cfg, self.prior, self.constraint.spectral_norm)
        self.generator.to(self.device)
        self.critic.to(self.device)
        self.ema = None
        if cfg.ema_decay > 0:
            # Updated by every rank from the same weights, so it stays the same on every rank (checked at
            # each checkpoint); copied before batch norm is synchronised: it is only ever evaluated.
            self.ema = AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        self.generator = synchronise_batch_norm(self.generator, self.world, self.device)
        self.g_params = list(self.generator.parameters())
        self.opt_g = OPTIMIZERS[cfg.optimizer](self.g_params, cfg.lr_g, cfg)
        self.opt_d = OPTIMIZERS[cfg.optimizer](self.critic.parameters(), cfg.lr_d, cfg)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
        # What the steps call forward through (DDP wrappers under torchrun); checkpoints and sampling use the modules.
        self.critic_forward: nn.Module = CriticStep(self.critic, self.objective, self.constraint, self.autocast)
        self.generator_forward: nn.Module = self.generator
        if self.world.distributed:
            device_ids = [self.device] if self.device.type == "cuda" else None
            self.critic_forward = DistributedDataParallel(self.critic_forward, device_ids=device_ids)
            self.generator_forward = DistributedDataParallel(self.generator, device_ids=device_ids)

        self.data_rng = torch.Generator().manual_seed(cfg.seed)  # epoch permutations (CPU)
        self.noise_rng = torch.Generator(self.device).manual_seed(cfg.seed + 1)  # latents, GP mixes
        self.data_root = data_root
        self.data = self.world.together(lambda: load_training_set(data_root, cfg.holdout, cfg.train_limit, self.device))
        if len(self.data) < cfg.batch_size:
            raise ConfigError(f"batch_size {cfg.batch_size} exceeds the {len(self.data)} training images")
        self.steps_per_epoch = len(self.data) // cfg.batch_size  # global batches
        self.local_batch = cfg.batch_size // self.world.size
        self.base_learning_rates = ((self.opt_g, cfg.lr_g), (self.opt_d, cfg.lr_d))

        self.epoch = 0  # completed epochs
        self.step = 0  # critic steps done in the current epoch
        self.perm = torch.empty(0, dtype=torch.long, device=self.device)
        self.sums = torch.zeros(len(STATS), dtype=torch.float64, device=self.device)
        self.counts = torch.zeros(2, dtype=torch.float64)  # critic steps, generator steps
        # Wall and CPU seconds the current epoch ran before a stop (SIGINT/SIGTERM) and its --resume: kept in
        # the checkpoint so that the epoch's logged cost is the sum of its parts.
        self.epoch_seconds_before = 0.0
        self.epoch_cpu_seconds_before = 0.0
        self.stop_signal: int | None = None

    # ------------------------------------------------------------------ one block of steps
    def _labels(self, rows: int, steps: int = 1) -> torch.Tensor:
        """The prior's labels for this rank's `rows` of `steps` global batches (priors without digit labels)."""
        return self.world.draw(lambda n: self.prior.sample_labels(n, self.noise_rng, self.device), rows, steps)

    def _latents(self, rows: int, steps: int = 1) -> torch.Tensor:
        return self.world.draw(
            lambda n: torch.randn(n, self.cfg.latent_dim, generator=self.noise_rng, device=self.device), rows, steps
        )

    def _uniform(self, rows: int) -> torch.Tensor:
        """One U[0, 1) per row (the penalty's mixing weights)."""
        return self.world.draw(lambda n: torch.rand(n, generator=self.noise_rng, device=self.device), rows)

    def _critic_block(self, real: torch.Tensor, labels: torch.Tensor, block: int) -> None:
        """`block` critic steps on this rank's rows of `block` global batches (`real`, `labels`: step after step)."""
        rows = self.local_batch
        with torch.no_grad(), self.autocast:
            fake_labels = labels if self.prior.labels_are_digits else self._labels(real.shape[0], block)
            fakes = self.generator(self._latents(real.shape[0], block), fake_labels).float()
        for i in range(block):
            step_rows = slice(i * rows, (i + 1) * rows)
            loss, penalty, d_real, d_fake = self.critic_forward(
                real[step_rows], fakes[step_rows], labels[step_rows], self._uniform
            )
            total = loss if penalty is None else loss + penalty
            self.opt_d.zero_grad(set_to_none=True)
            total.backward()
            self.opt_d.step()
            self.constraint.after_critic_step(self.critic)
            with torch.no_grad():
                self.sums[: len(CRITIC_STATS)] += torch.stack(
                    [
                        loss,
                        d_real.mean() - d_fake.mean(),
                        self.objective.mean_score(d_real),
                        self.objective.mean_score(d_fake),
                        penalty if penalty is not None else torch.zeros(()),
                    ]
                ).double()
        self.counts[0] += block

    def _generator_step(self, labels: torch.Tensor) -> None:
        if not self.prior.labels_are_digits:
            labels = self._labels(labels.shape[0])
        eps = self._latents(labels.shape[0])
        with self.autocast:
            # The critic itself, not its DDP wrapper: its weight gradients are neither needed nor all-reduced here.
            scores = self.critic(self.generator_forward(eps, labels), labels)
        loss = self.objective.generator_loss(scores.float())
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward(inputs=self.g_params)  # the critic's weight gradients are not needed here
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.g_params if p.grad is not None])
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update_parameters(self.generator)
        with torch.no_grad():
            self.sums[len(CRITIC_STATS) :] += torch.stack([loss.detach(), grad_norm]).double()
        self.counts[1] += 1

    def _stop_requested(self) -> bool:
        """Whether to stop at this block boundary: any rank's signal stops every rank at the same one."""
        self.stop_signal = self.world.any_signal(self.stop_signal)
        return self.stop_signal is not None

    def train_epoch(self, progress: tqdm | None = None) -> bool:
        """Run the rest of the current epoch; False if a stop signal arrived first."""
        cfg, bs = self.cfg, self.cfg.batch_size
        if self._stop_requested():  # before the permutation: a resumed epoch must draw the same one
            return False
        if self.step == 0:
            self.perm = torch.randperm(len(self.data), generator=self.data_rng).to(self.device)
            self.sums.zero_()
            self.counts.zero_()
        self.generator.train()
        blocks_done = 0
        while self.step < self.steps_per_epoch:
            if self._stop_requested():
                break
            block = min(cfg.n_critic, self.steps_per_epoch - self.step)
            self._set_learning_rates()
            index = self.world.rows(self.perm[self.step * bs : (self.step + block) * bs], block)
            real, labels = self.data.images[index], self.data.labels[index]
            self._critic_block(real, labels, block)
            self._generator_step(labels[-self.local_batch :])
            self.step += block
            blocks_done += 1
            if progress is not None:
                progress.update(block)
                if blocks_done % 20 == 0:  # rank 0's rows only, under torchrun: a glance, not the log
                    progress.set_postfix(
                        {
                            k: f"{v:.3f}"
                            for k, v in self.epoch_stats().items()
                            if k in ("loss_d", "loss_g", "wasserstein")
                        }
                    )
        self.world.mean(self.sums)  # each rank's sums of its rows' means -> the global batches' (the log's)
        return self.step == self.steps_per_epoch

    @property
    def progress(self) -> float:
        """Epochs trained so far, fractional within the current epoch."""
        return self.epoch + self.step / self.steps_per_epoch

    def _set_learning_rates(self) -> None:
        scale = learning_rate_scale(self.progress, self.cfg.lr_decay_start, self.cfg.epochs)
        for optimizer, base in self.base_learning_rates:
            for group in optimizer.param_groups:
                group["lr"] = base * scale

    def epoch_stats(self) -> dict[str, float]:
        critic_steps, generator_steps = (max(float(c), 1.0) for c in self.counts)
        sums = self.sums.tolist()
        stats = {name: sums[i] / critic_steps for i, name in enumerate(CRITIC_STATS)}
        stats.update({name: sums[len(CRITIC_STATS) + i] / generator_steps for i, name in enumerate(GENERATOR_STATS)})
        return stats

    # ------------------------------------------------------------------ state
    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {
            **prefixed("generator", self.generator.state_dict()),
            **prefixed("critic", self.critic.state_dict()),
            "rng.data": self.data_rng.get_state(),
            "rng.noise": self.noise_rng.get_state(),
            "loop.perm": self.perm,
            "loop.sums": self.sums,
            "loop.counts": self.counts,
        }
        if self.ema is not None:
            tensors.update(prefixed("ema", self.ema.state_dict()))
        return tensors

    def save(self) -> Path:
        opt_g_tensors, g_groups = optimizer_tensors("optim_g", self.opt_g)
        opt_d_tensors, d_groups = optimizer_tensors("optim_d", self.opt_d)
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "epoch_seconds_before": self.epoch_seconds_before,
            "epoch_cpu_seconds_before": self.epoch_cpu_seconds_before,
            "optim_g_groups": g_groups,
            "optim_d_groups": d_groups,
            "config": self.cfg.to_dict(),
        }
        path = self.run_dir / CHECKPOINT_NAME
        tensors = {**self.state_tensors(), **opt_g_tensors, **opt_d_tensors}
        self.world.check_identical(tensors)  # the global state: any rank's, so rank 0's
        self.world.on_main(lambda: save_checkpoint(path, tensors, state))
        return path

    def load(self, path: Path) -> None:
        tensors, state = load_checkpoint(path)
        try:
            self.generator.load_state_dict(unprefixed("generator", tensors))
            self.critic.load_state_dict(unprefixed("critic", tensors))
            if self.ema is not None:
                self.ema.load_state_dict(unprefixed("ema", tensors))
            restore_optimizer("optim_g", self.opt_g, tensors, state["optim_g_groups"])
            restore_optimizer("optim_d", self.opt_d, tensors, state["optim_d_groups"])
            self.data_rng.set_state(tensors["rng.data"])
            self.noise_rng.set_state(tensors["rng.noise"])
            self.perm = tensors["loop.perm"].to(self.device)
            self.sums = tensors["loop.sums"].to(self.device)
            self.counts = tensors["loop.counts"]
            self.epoch, self.step = state["epoch"], state["step"]
            # Checkpoints written before these were kept count only the part after the resume, as then.
            self.epoch_seconds_before = float(state.get("epoch_seconds_before", 0.0))
            self.epoch_cpu_seconds_before = float(state.get("epoch_cpu_seconds_before", 0.0))
            trained_under = state["config"]
        except (RuntimeError, KeyError, ValueError, TypeError):  # a config.json edited after training began
            raise CheckpointError(
                f"checkpoint {path} does not match {self.run_dir / 'config.json'} "
                "(another model, optimizer or ema_decay)"
            ) from None
        self._check_schedule_unchanged(trained_under.get("lr_decay_start", 0), trained_under["epochs"])

    def _check_schedule_unchanged(self, decay_start: int, epochs: int) -> None:
        """A resumed run may move the decay or the last epoch only while its learning rate is still constant."""
        began = [start for start in (decay_start, self.cfg.lr_decay_start) if 0 < start < self.progress]
        if began and (decay_start, epochs) != (self.cfg.lr_decay_start, self.cfg.epochs):
            raise CheckpointError(
                f"the learning rate would change before epoch {self.progress:g}, where this run stopped: it was "
                f"trained with lr_decay_start {decay_start} of {epochs} epochs, and a resumed run cannot change "
                f"either once the decay has begun (asked for {self.cfg.lr_decay_start} of {self.cfg.epochs})"
            )

    # ------------------------------------------------------------------ evaluation
    def sampling_generator(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.generator

    @torch.no_grad()
    def sample_grid(self, per_row: int = 10) -> bytes:
        """A grid from fixed noise: one row per label (digit or component), or 10 rows of 10."""
        generator = self.sampling_generator()
        rows = self.prior.num_labels if self.prior.num_labels else 10
        rng = torch.Generator(self.device).manual_seed(self.cfg.seed + GRID_NOISE_SEED_OFFSET)
        eps = torch.randn(rows * per_row, self.cfg.latent_dim, generator=rng, device=self.device)
        labels = torch.arange(rows, device=self.device).repeat_interleave(per_row)
        generator.eval()
        images = generator(eps, labels if self.prior.num_labels else torch.zeros_like(labels))
        generator.train()
        return grid_png(unit_to_uint8(((images.float().cpu().numpy() + 1) / 2)[:, 0]), rows)

    @functools.cached_property
    def evaluator(self) -> Evaluator:
        return Evaluator(self.cfg.eval_protocol, self.data_root, shows_progress(self.quiet), device=self.device.type)

    def evaluate(self) -> dict:
        """The sampling generator's metrics under cfg.eval_protocol, keyed PROTOCOL/metric ({} for none)."""
        if self.cfg.eval_protocol == "none":
            return {}
        samples = sample_run(
            self.sampling_generator(),
            str(self.run_dir),
            self.cfg.eval_samples,
            self.cfg.seed + EVAL_NOISE_SEED_OFFSET,
            None,
            self.data_root,
            progress=shows_progress(self.quiet),
        )
        return self.evaluator.score(samples)["metrics"]


class RunLogger:
    """metrics.jsonl, TensorBoard events, sample grids and plots of one run folder."""

    def __init__(self, run_dir: Path, resume_epoch: int):
        from torch.utils.tensorboard import SummaryWriter

        self.metrics_path = run_dir / METRICS_NAME
        self.records = self._read_records(resume_epoch)
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_epoch + 1 if resume_epoch else None)
        (run_dir / "samples").mkdir(exist_ok=True)
        self.run_dir = run_dir

    def _read_records(self, resume_epoch: int) -> list[dict]:
        """Records up to the checkpoint's epoch: later ones were written by a run that then died."""
        if not self.metrics_path.exists():
            return []
        records = [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]
        kept = [r for r in records if r["epoch"] <= resume_epoch]
        if len(kept) != len(records):
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
        return kept

    def log(self, record: dict) -> None:
        self.records.append(record)
        # Rewritten whole and atomically, not appended: a kill mid-append would leave a torn last line
        # that the next --resume cannot parse.
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in self.records))
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, record["epoch"])
        self.writer.flush()

    def evaluation(self, epoch: int, grid: bytes) -> None:
        atomic_write_bytes(self.run_dir / "samples" / f"epoch_{epoch:04d}.png", grid)
        plot_training_curves(self.records, self.run_dir / "plots")
        plot_metrics(self.records, self.run_dir / "plots" / "metrics.png")

    def close(self) -> None:
        self.writer.close()


def _nonfinite(stats: dict[str, float]) -> list[str]:
    return [f"{k}={v}" for k, v in stats.items() if isinstance(v, float) and not math.isfinite(v)]


def _report(trainer: Trainer, logger: RunLogger, record: dict, evaluating: bool) -> None:
    """The end of an epoch on rank 0: evaluate (when due), log the record, write the sample grid and plots."""
    if evaluating:
        record.update(trainer.evaluate())
    logger.log(record)
    if evaluating:
        logger.evaluation(trainer.epoch, trainer.sample_grid())


@contextlib.contextmanager
def stop_on_signals(trainer: Trainer):
    """SIGINT/SIGTERM ask the loop to stop at the next block boundary and checkpoint there."""

    def request_stop(signum, frame):
        trainer.stop_signal = signum

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train(trainer: Trainer, resume: bool = False) -> dict:
    """Train to cfg.epochs, logging, evaluating and checkpointing; returns the last epoch's record.
    Under torchrun every rank calls it; rank 0 alone writes (log, samples, plots, checkpoints) and evaluates."""
    cfg, run_dir, world = trainer.cfg, trainer.run_dir, trainer.world
    checkpoint_path = run_dir / CHECKPOINT_NAME
    if resume:
        trainer.load(checkpoint_path)
    logger = world.on_main(lambda: RunLogger(run_dir, trainer.epoch))
    record: dict = logger.records[-1] if logger is not None and logger.records else {}
    try:
        with stop_on_signals(trainer):
            while trainer.epoch < cfg.epochs:
                started, cpu_started = time.perf_counter(), time.process_time()
                with tqdm(
                    total=trainer.steps_per_epoch,
                    initial=trainer.step,
                    disable=not shows_progress(trainer.quiet),
                    desc=f"epoch {trainer.epoch + 1}/{cfg.epochs}",
                    unit="step",
                    leave=False,
                ) as progress:
                    finished = trainer.train_epoch(progress)
                if not finished:
                    trainer.epoch_seconds_before += time.perf_counter() - started
                    trainer.epoch_cpu_seconds_before += world.sum(time.process_time() - cpu_started)
                    trainer.save()
                    raise Interrupted(
                        f"stopped by signal {trainer.stop_signal} at epoch {trainer.epoch + 1} step {trainer.step}; "
                        f"checkpoint saved, continue with: train-gan --resume {run_dir}"
                    )
                stats = trainer.epoch_stats()
                bad = _nonfinite(stats)
                if bad:
                    raise TrainingError(
                        f"non-finite loss in epoch {trainer.epoch + 1} ({', '.join(bad)}); run stopped, last good "
                        f"checkpoint kept at {checkpoint_path}" + ("" if checkpoint_path.exists() else " (none yet)")
                    )
                trainer.epoch += 1
                trainer.step = 0
                # The whole epoch's cost: this process's part plus what ran before a stop and --resume.
                seconds = trainer.epoch_seconds_before + time.perf_counter() - started
                cpu_seconds = trainer.epoch_cpu_seconds_before + world.sum(time.process_time() - cpu_started)
                trainer.epoch_seconds_before = trainer.epoch_cpu_seconds_before = 0.0
                record = {
                    "epoch": trainer.epoch,
                    **stats,
                    **trainer.constraint.diagnostics(trainer.critic),
                    "epoch_seconds": seconds,
                    # CPU time of every thread of every process: the cost in CPU-hours, whatever the threads.
                    "epoch_cpu_seconds": cpu_seconds,
                    "images_per_second": trainer.steps_per_epoch * cfg.batch_size / seconds,
                    "lr_g": trainer.opt_g.param_groups[0]["lr"],  # at the epoch's last step
                    "device": trainer.device_name,
                }
                evaluating = trainer.epoch % cfg.eval_every == 0 or trainer.epoch == cfg.epochs
                world.on_main(functools.partial(_report, trainer, logger, record, evaluating))
                if trainer.epoch % cfg.checkpoint_every == 0 or trainer.epoch == cfg.epochs:
                    trainer.save()
                if not trainer.quiet:
                    tqdm.write(
                        f"epoch {trainer.epoch}: "
                        + ", ".join(
                            f"{k}={v:.4g}" for k, v in record.items() if k != "epoch" and isinstance(v, (int, float))
                        )
                    )
    finally:
        if logger is not None:
            logger.close()
    return record
