"""Training throughput: our `wgan_gp` loop vs a course-template-style loop, same model, same batch.

The template-style loop is what the course's train.py does: a torchvision DataLoader with
ToTensor + Normalize per image, a fresh G forward per critic step, separate critic passes for
real, fake and interpolated images, plain Adam, and a generator backward through the critic's
weights. Prints one JSON object: images/s for both (real images consumed per second) and the ratio.

    python bench/train_speed.py --data-root ../shared/data [--images 19200] [--repeats 3] [--device cuda]
        [--batch-size 64]

Our loop is timed in fp32 and with bf16 autocast (`--precision bf16`); each figure is the best of
`--repeats` timed passes, after one warm-up pass of each loop. On a GPU (`--device cuda`) both loops keep
their models and batches there (the template's DataLoader still prepares each image on the CPU, as it does).

Under torchrun only our fp32 loop runs, on every process at the same global batch (each rank trains on its
share of every batch), and rank 0 prints:

    torchrun --standalone --nproc-per-node 2 bench/train_speed.py --data-root ../shared/data
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
import typer
from machine import cpu_name
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import MNIST

from common.mnist import resolve_data_root
from training.config import resolve
from training.distributed import World
from training.models import MLPCritic, MLPGenerator
from training.objectives import gradient_penalty
from training.trainer import Trainer, device_name, pick_device


def finished(device: torch.device) -> float:
    """perf_counter once the device's queued work is done (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def template_style_images_per_second(
    root: Path, images: int, batch_size: int, n_critic: int, seed: int, device: torch.device
) -> float:
    torch.manual_seed(seed)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    dataset = Subset(MNIST(str(root), train=True, download=True, transform=transform), range(images))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    G, D = MLPGenerator(100).to(device), MLPCritic().to(device)
    G_opt = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.9))
    D_opt = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.9))
    no_labels = torch.zeros(batch_size, dtype=torch.long, device=device)
    started = finished(device)
    for step, (x, _) in enumerate(loader):
        x = x.to(device)
        D.zero_grad()
        fake = G(torch.randn(batch_size, 100, device=device), no_labels).detach()
        eps = torch.rand(batch_size, 1, 1, 1, device=device)
        x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
        loss = D(fake, no_labels).mean() - D(x, no_labels).mean() + 10 * gradient_penalty(D(x_hat, no_labels), x_hat)
        loss.backward()
        D_opt.step()
        if step % n_critic == n_critic - 1:
            G.zero_grad()
            (-D(G(torch.randn(batch_size, 100, device=device), no_labels), no_labels).mean()).backward()
            G_opt.step()
    return len(loader) * batch_size / (finished(device) - started)


def ours_images_per_second(
    root: Path,
    images: int,
    batch_size: int,
    precision: str,
    seed: int,
    device: str = "cpu",
    world: World | None = None,
) -> float:
    cfg = resolve(
        "wgan_gp",
        {"batch_size": batch_size, "train_limit": images, "precision": precision, "device": device, "seed": seed},
    )
    trainer = Trainer(cfg, Path(tempfile.mkdtemp()), root, quiet=True, world=world)
    started = finished(trainer.device)
    trainer.train_epoch()
    return trainer.steps_per_epoch * batch_size / (finished(trainer.device) - started)


def main(
    data_root: Path = typer.Option(None, help="MNIST root (default: $GAN_DATA_ROOT or the user cache)"),
    images: int = typer.Option(19_200, help="training images per timed pass (300 critic steps at batch 64)"),
    batch_size: int = typer.Option(64),
    repeats: int = typer.Option(3, help="timed passes per loop; the best is reported"),
    device: str = typer.Option("cpu", help="cpu or cuda (under torchrun: each rank's GPU, NCCL)"),
    seed: int = typer.Option(0),
):
    root = resolve_data_root(data_root)
    world = World.from_environment()
    if world.distributed:
        distributed_main(root, images, batch_size, repeats, seed, device, world)
        return
    where = pick_device(device)
    loops = {
        "template_style": lambda n: template_style_images_per_second(root, n, batch_size, 5, seed, where),
        "ours_fp32": lambda n: ours_images_per_second(root, n, batch_size, "fp32", seed, device),
        "ours_bf16": lambda n: ours_images_per_second(root, n, batch_size, "bf16", seed, device),
    }
    for loop in loops.values():  # warm-up: allocator, oneDNN or CUDA kernels
        loop(batch_size * 10)
    best = {name: max(loop(images) for _ in range(repeats)) for name, loop in loops.items()}
    print(
        json.dumps(
            {
                "benchmark": "train_speed_wgan_gp_mlp",
                "batch_size": batch_size,
                "images_per_pass": images,
                "repeats": repeats,
                **{f"{name}_images_per_s": round(value, 1) for name, value in best.items()},
                "speedup_fp32": round(best["ours_fp32"] / best["template_style"], 3),
                "speedup_bf16": round(best["ours_bf16"] / best["template_style"], 3),
                "target_speedup": 2.0,
                "ours_fp32_steps_per_s": round(best["ours_fp32"] / batch_size, 1),
                "device": device_name(where),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "cpu": cpu_name(),
            }
        )
    )


def distributed_main(
    root: Path, images: int, batch_size: int, repeats: int, seed: int, device: str, world: World
) -> None:
    def timed(n: int) -> float:
        return ours_images_per_second(root, n, batch_size, "fp32", seed, device, world)

    timed(batch_size * 10)  # warm-up
    best = max(timed(images) for _ in range(repeats))
    world.leave()
    if world.is_main:
        print(
            json.dumps(
                {
                    "benchmark": "train_speed_wgan_gp_mlp_distributed",
                    "processes": world.size,
                    "batch_size": batch_size,
                    "images_per_pass": images,
                    "repeats": repeats,
                    "ours_fp32_images_per_s": round(best, 1),
                    "ours_fp32_steps_per_s": round(best / batch_size, 1),
                    "device": device,
                    "torch": torch.__version__,
                    "threads_per_process": torch.get_num_threads(),
                    "cpu": cpu_name(),
                }
            )
        )


if __name__ == "__main__":
    typer.run(main)
