"""MNIST as tensors resident on the training device, in [-1, 1] (no per-image transform in the loop)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

# Where MNIST lives (torchvision layout: ROOT/MNIST/raw/...). CI points it at ../shared/data.
DATA_ROOT_ENV = "GAN_DATA_ROOT"


class DataError(RuntimeError):
    """MNIST cannot be found or downloaded; the CLI prints the message on one line and exits 2."""


def default_data_root() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "mnist-latent-gan"


def resolve_data_root(cli_value: Path | None = None) -> Path:
    if cli_value is not None:
        return Path(cli_value)
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV])
    return default_data_root()


def load_mnist_uint8(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 28, 28], labels int64 [N]) via torchvision, downloading when allowed."""
    from torchvision.datasets import MNIST

    try:
        dataset = MNIST(root=str(root), train=train, download=True)
    except Exception as error:  # URLError, OSError, RuntimeError: all mean "not here, not reachable"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"MNIST not found under {root}/MNIST/raw and could not be downloaded ({reason}); "
            f"pass --data-root or set {DATA_ROOT_ENV} to a folder holding MNIST/raw"
        ) from None
    return dataset.data, dataset.targets


def to_signed_unit(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 1, 28, 28] in [-1, 1], as ToTensor + Normalize(0.5, 0.5)."""
    return images_uint8.unsqueeze(1).float().div(127.5).sub(1.0)


@dataclass
class TrainingSet:
    images: torch.Tensor  # float32 [N, 1, 28, 28] in [-1, 1], on the training device
    labels: torch.Tensor  # int64 [N], on the training device

    def __len__(self) -> int:
        return self.images.shape[0]


def load_training_set(root: Path, holdout: int, limit: int, device: torch.device) -> TrainingSet:
    """MNIST train minus its last `holdout` images (kept for DRS calibration), optionally truncated."""
    images, labels = load_mnist_uint8(root, train=True)
    if holdout >= images.shape[0]:
        raise DataError(f"holdout {holdout} leaves no training images (MNIST train has {images.shape[0]})")
    end = images.shape[0] - holdout
    if limit:
        end = min(end, limit)
    return TrainingSet(to_signed_unit(images[:end]).to(device), labels[:end].to(device))


def load_holdout_set(root: Path, holdout: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out tail of MNIST train (uint8), disjoint from training and from the test set."""
    images, labels = load_mnist_uint8(root, train=True)
    return images[images.shape[0] - holdout:], labels[labels.shape[0] - holdout:]
