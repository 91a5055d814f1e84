"""MNIST as tensors resident on the training device, in [-1, 1] (no per-image transform in the loop)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.mnist import DataError, load_mnist_uint8


def to_signed_unit(images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 1, 28, 28] in [-1, 1], as ToTensor + Normalize(0.5, 0.5)."""
    return torch.as_tensor(images_uint8).unsqueeze(1).float().div(127.5).sub(1.0)


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
    return TrainingSet(to_signed_unit(images[:end]).to(device), torch.from_numpy(labels[:end]).to(device))
