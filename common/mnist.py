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
    """(images uint8 [N, 28, 28], labels int64 [N]) via torchvision, downloading when allowed.

    A failed attempt leaves nothing behind: the folders it created (ROOT, ROOT/MNIST, ROOT/MNIST/raw, as
    far up as they were missing) are removed again while they are empty.
    """
    from torchvision.datasets import MNIST

    root = Path(root).expanduser()  # as torchvision expands it
    missing = _missing_folders(root / "MNIST" / "raw")
    try:
        dataset = MNIST(root=str(root), train=train, download=True)
    except Exception as error:  # URLError, OSError, RuntimeError: all mean "not here, not reachable"
        _remove_empty(missing)
        raise DataError(
            f"MNIST not found under {root}/MNIST/raw and could not be downloaded ({_reason(error)}); "
            f"pass --data-root or set {DATA_ROOT_ENV} to a folder holding MNIST/raw"
        ) from None
    return dataset.data.numpy(), dataset.targets.numpy()


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and each of its parents that does not exist yet, deepest first."""
    missing = []
    while not os.path.lexists(folder) and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove these folders, deepest first, while they are empty (a file in one keeps it and its parents)."""
    for folder in folders:
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return


def _reason(error: BaseException) -> str:
    """One line naming the cause. torchvision's download error is several lines whose first one is only
    `Error downloading FILE:`; the cause (each mirror's URLError) follows, the last mirror's on the last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    head = lines[0]
    if head.endswith(":") and len(lines) > 1:
        return f"{head} {lines[-1].strip('<>')}"
    return head.rstrip(":") or type(error).__name__


def load_holdout_set(root: Path, holdout: int = HOLDOUT_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """The held-out tail of MNIST train (uint8), disjoint from training and from the test set."""
    images, labels = load_mnist_uint8(root, train=True)
    return images[images.shape[0] - holdout :], labels[labels.shape[0] - holdout :]
