"""What gets scored: uint8 [N, 28, 28] images, as `Samples`, from an exported artifact (through the
torch-free runtime), a folder of PNGs, or any `sample` callable (a training run's: training/sampling.py).

Generated images are quantised exactly as a PNG stores them (common.images.unit_to_uint8), so what is
scored is what a user would save (protocol P0, step 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.manifest import EXACT_PRECISION
from common.mnist import load_mnist_uint8
from common.validation import NUM_DIGITS
from runtime.model import GanModel

from . import EvaluationError

CLASS_SAMPLINGS = ("uniform", "mnist")  # digits for conditional models: equal counts, or MNIST train frequencies


@dataclass
class Samples:
    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray | None  # int64 [N]: the digit each image was generated for (conditional models)
    description: dict = field(default_factory=dict)  # source, samples, seed, class_sampling


def mnist_train_frequencies(data_root: Path) -> np.ndarray:
    labels = load_mnist_uint8(data_root, train=True)[1]
    return np.bincount(labels, minlength=NUM_DIGITS) / len(labels)


def digit_counts(n: int, weights: np.ndarray) -> np.ndarray:
    """n split over the digits in proportion to `weights`, largest remainders rounded up."""
    exact = n * np.asarray(weights, dtype=np.float64) / np.sum(weights)
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def _greyscale(path: Path) -> np.ndarray:
    """A PNG as uint8 [28, 28]; grey, or RGB(A) whose channels are equal and alpha opaque."""
    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
            pixels = np.asarray(image.convert("RGBA") if mode not in ("L", "1") else image.convert("L"))
    except (OSError, UnidentifiedImageError) as error:
        raise EvaluationError(f"{path} is not a readable PNG ({type(error).__name__})") from None
    if size != (28, 28):
        raise EvaluationError(f"{path} is {size[0]}x{size[1]}; images must be 28x28 (MNIST size) greyscale PNGs")
    if pixels.ndim == 3:
        grey, alpha = pixels[..., 0], pixels[..., 3]
        if not (np.array_equal(grey, pixels[..., 1]) and np.array_equal(grey, pixels[..., 2])) or alpha.min() < 255:
            raise EvaluationError(
                f"{path} is a colour ({mode}) image; images must be greyscale "
                "(mode L, or RGB with equal channels and no transparency)"
            )
        return grey
    return pixels


def read_png_folder(folder: Path, n: int | None = None) -> Samples:
    """The folder's PNGs in sorted name order (the first n when n is given)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise EvaluationError(
            f"{folder} holds no .png images; give a folder of 28x28 greyscale PNGs "
            "or a run folder (with its checkpoint)"
        )
    if n is not None:
        if n > len(files):
            raise EvaluationError(f"--n {n} asks for more images than the {len(files)} PNGs in {folder}")
        files = files[:n]
    images = np.stack([_greyscale(path) for path in files])
    return Samples(images, None, {"source": str(folder), "samples": len(images), "seed": None, "class_sampling": None})


def resolve_class_sampling(conditional: bool, class_sampling: str | None) -> str | None:
    """'uniform' by default for conditional models; None (not applicable) for the others."""
    if class_sampling is not None and class_sampling not in CLASS_SAMPLINGS:
        raise EvaluationError(f"class sampling must be one of {', '.join(CLASS_SAMPLINGS)}, got {class_sampling!r}")
    if not conditional:
        if class_sampling is not None:
            raise EvaluationError("--class-sampling applies to conditional models only; this model draws no digits")
        return None
    return class_sampling or "uniform"


def digit_weights(class_sampling: str | None, data_root: Path) -> np.ndarray:
    if class_sampling == "mnist":
        return mnist_train_frequencies(data_root)
    return np.full(NUM_DIGITS, 1.0 / NUM_DIGITS)


def sample_artifact(
    folder: Path,
    n: int,
    seed: int,
    class_sampling: str | None,
    data_root: Path,
    drs_rate: float | None = None,
    spread: float | None = None,
    precision: str = EXACT_PRECISION,
) -> Samples:
    """n images from an exported model through runtime.model (onnxruntime), with DRS at `drs_rate` if given,
    the latent noise scaled by `spread` (None: the model's default spread, which the record names), its image
    graph at `precision` (a variant's records name it; fp32 records do not, as before variants existed).

    Conditional models get exact per-digit counts (DRS then accepts each digit at its own gamma);
    digit d's noise is the runtime's for seed `seed * 10 + d`, so that digits do not share their noise."""
    model = GanModel.load(folder, precision=precision)
    spread = model.default_spread if spread is None else spread
    class_sampling = resolve_class_sampling(model.conditional, class_sampling)
    if model.conditional:
        counts = digit_counts(n, digit_weights(class_sampling, data_root))
        images = np.concatenate(
            [
                model.generate(
                    int(count), seed=seed * NUM_DIGITS + digit, digit=digit, drs_rate=drs_rate, spread=spread
                )[0]
                for digit, count in enumerate(counts)
                if count
            ]
        )
        labels = np.repeat(np.arange(NUM_DIGITS), counts)
    else:
        images, labels = model.generate(n, seed=seed, drs_rate=drs_rate, spread=spread)[0], None
    return Samples(
        images,
        labels,
        {
            "source": str(folder),
            "samples": n,
            "seed": seed,
            "class_sampling": class_sampling,
            "drs_rate": drs_rate,
            "spread": spread,
            **({} if precision == EXACT_PRECISION else {"precision": precision}),
        },
    )


def is_artifact(path: Path) -> bool:
    return (path / "manifest.json").is_file() and any(path.glob("*.onnx"))
