"""Where MNIST is and how it is read: uint8 numpy arrays, the same for training, export and evaluation.

torchvision (the train extra) reads and downloads the files; it is imported only when MNIST is loaded,
so this module stays importable without torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import UserError

# Where MNIST lives (torchvision layout: ROOT/MNIST/raw/...). CI points it at ../shared/data.
DATA_ROOT_ENV = "GAN_DATA_ROOT"
HOLDOUT_IMAGES = 5000  # MNIST train's last 5,000 images: training's default --holdout, never trained on
HOLDOUT_SET = f"MNIST train's last {HOLDOUT_IMAGES:,} images (held out from training)"


class DataError(UserError):
    """MNIST cannot be found or downloaded."""


def default_data_root() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "mnist-latent-gan"


def resolve_data_root(cli_value: Path | None = None) -> Path:
    if cli_value is not None:
        return Path(cli_value)
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV])
    return default_data_root()


def load_mnist_uint8(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
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
    return dataset.data.numpy(), dataset.targets.numpy()


def load_holdout_set(root: Path, holdout: int = HOLDOUT_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """The held-out tail of MNIST train (uint8), disjoint from training and from the test set."""
    images, labels = load_mnist_uint8(root, train=True)
    return images[images.shape[0] - holdout :], labels[labels.shape[0] - holdout :]
