"""What gets scored: uint8 [N, 28, 28] images from a run's generator, an exported artifact (through
the torch-free runtime), or a folder of PNGs.

Generated images are quantised exactly as a PNG stores them (runtime.images.unit_to_uint8 on
(x + 1) / 2), so what is scored is what a user would save (protocol P0, step 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from runtime.images import unit_to_uint8
from runtime.model import GanModel
from training.data import load_mnist_uint8
from training.models import GeneratorBundle
from training.priors import NUM_DIGITS
from training.run import CHECKPOINT_NAME, load_trained

from . import EvaluationError

CLASS_SAMPLINGS = ("uniform", "mnist")  # digits for conditional models: equal counts, or MNIST train frequencies
GENERATE_BATCH = 1000


@dataclass
class Samples:
    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray | None  # int64 [N]: the digit each image was generated for (conditional models)
    description: dict = field(default_factory=dict)  # source, samples, seed, class_sampling


def mnist_train_frequencies(data_root: Path) -> np.ndarray:
    labels = load_mnist_uint8(data_root, train=True)[1].numpy()
    return np.bincount(labels, minlength=NUM_DIGITS) / len(labels)


def digit_counts(n: int, weights: np.ndarray) -> np.ndarray:
    """n split over the digits in proportion to `weights`, largest remainders rounded up."""
    exact = n * np.asarray(weights, dtype=np.float64) / np.sum(weights)
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def is_conditional(generator: GeneratorBundle) -> bool:
    return generator.prior.labels_are_digits


@torch.no_grad()
def generate(generator: GeneratorBundle, n: int, seed: int, digit_weights: np.ndarray,
             progress: bool = False) -> Samples:
    """n images from noise seeded by `seed` (a generator of its own, never the training RNG).

    Conditional models get `digit_weights` as exact per-digit counts; mixture priors draw their
    components as the model samples them.
    """
    prior = generator.prior
    rng = torch.Generator().manual_seed(seed)
    if is_conditional(generator):
        labels = torch.from_numpy(np.repeat(np.arange(NUM_DIGITS), digit_counts(n, digit_weights)))
    else:
        labels = prior.sample_labels(n, rng, torch.device("cpu"))
    eps = torch.randn(n, prior.latent_dim, generator=rng)
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    images = np.empty((n, 28, 28), dtype=np.uint8)
    for start in tqdm(range(0, n, GENERATE_BATCH), desc="sampling", unit="batch", disable=not progress, leave=False):
        rows = slice(start, start + GENERATE_BATCH)
        out = generator(eps[rows].to(device), labels[rows].to(device)).float().cpu().numpy()
        images[rows] = unit_to_uint8((out[:, 0] + 1.0) / 2.0)
    generator.train(was_training)
    return Samples(images, labels.numpy() if is_conditional(generator) else None)


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
            raise EvaluationError(f"{path} is a colour ({mode}) image; images must be greyscale "
                                  "(mode L, or RGB with equal channels and no transparency)")
        return grey
    return pixels


def read_png_folder(folder: Path, n: int | None = None) -> Samples:
    """The folder's PNGs in sorted name order (the first n when n is given)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise EvaluationError(f"{folder} holds no .png images; give a folder of 28x28 greyscale PNGs "
                              f"or a run folder (with {CHECKPOINT_NAME})")
    if n is not None:
        if n > len(files):
            raise EvaluationError(f"--n {n} asks for more images than the {len(files)} PNGs in {folder}")
        files = files[:n]
    images = np.stack([_greyscale(path) for path in files])
    return Samples(images, None, {"source": str(folder), "samples": len(images), "seed": None, "class_sampling": None})


def _run_dir(path: Path) -> Path | None:
    if path.is_file() and path.name == CHECKPOINT_NAME:
        return path.parent
    return path if (path / CHECKPOINT_NAME).is_file() else None


def load_generator(path: Path, raw_generator: bool = False) -> GeneratorBundle:
    """The generator of a run folder (or of its checkpoint file); EMA weights when the run kept them, unless
    `raw_generator` (to study the generator that was exported with `export-gan --raw-generator`)."""
    run_dir = _run_dir(Path(path))
    if run_dir is None:
        raise EvaluationError(f"{path} is not a run folder (no {CHECKPOINT_NAME})")
    return load_trained(run_dir, raw_generator=raw_generator).generator


def resolve_class_sampling(conditional: bool, class_sampling: str | None) -> str | None:
    """'uniform' by default for conditional models; None (not applicable) for the others."""
    if class_sampling is not None and class_sampling not in CLASS_SAMPLINGS:
        raise EvaluationError(f"class sampling must be one of {', '.join(CLASS_SAMPLINGS)}, got {class_sampling!r}")
    if not conditional:
        if class_sampling is not None:
            raise EvaluationError("--class-sampling applies to conditional models only; this model draws no digits")
        return None
    return class_sampling or "uniform"


def _digit_weights(class_sampling: str | None, data_root: Path) -> np.ndarray:
    if class_sampling == "mnist":
        return mnist_train_frequencies(data_root)
    return np.full(NUM_DIGITS, 1.0 / NUM_DIGITS)


def sample_run(generator: GeneratorBundle, source: str, n: int, seed: int, class_sampling: str | None,
               data_root: Path, progress: bool = False) -> Samples:
    """n samples with `class_sampling` resolved for this model, described for the report."""
    class_sampling = resolve_class_sampling(is_conditional(generator), class_sampling)
    samples = generate(generator, n, seed, _digit_weights(class_sampling, data_root), progress)
    samples.description = {"source": source, "samples": n, "seed": seed, "class_sampling": class_sampling}
    return samples


def sample_artifact(folder: Path, n: int, seed: int, class_sampling: str | None, data_root: Path,
                    drs_rate: float | None = None, spread: float | None = None) -> Samples:
    """n images from an exported model through runtime.model (onnxruntime), with DRS at `drs_rate` if given,
    the latent noise scaled by `spread` (None: the model's default spread, which the record names).

    Conditional models get exact per-digit counts (DRS then accepts each digit at its own gamma);
    digit d's noise is the runtime's for seed `seed * 10 + d`, so that digits do not share their noise."""
    model = GanModel.load(folder)
    spread = model.default_spread if spread is None else spread
    class_sampling = resolve_class_sampling(model.conditional, class_sampling)
    if model.conditional:
        counts = digit_counts(n, _digit_weights(class_sampling, data_root))
        images = np.concatenate([model.generate(int(count), seed=seed * NUM_DIGITS + digit, digit=digit,
                                                drs_rate=drs_rate, spread=spread)[0]
                                 for digit, count in enumerate(counts) if count])
        labels = np.repeat(np.arange(NUM_DIGITS), counts)
    else:
        images, labels = model.generate(n, seed=seed, drs_rate=drs_rate, spread=spread)[0], None
    return Samples(images, labels, {"source": str(folder), "samples": n, "seed": seed,
                                    "class_sampling": class_sampling, "drs_rate": drs_rate, "spread": spread})


def is_artifact(path: Path) -> bool:
    return (path / "manifest.json").is_file() and any(path.glob("*.onnx"))


def open_source(path: Path, n: int | None, seed: int, class_sampling: str | None, data_root: Path,
                default_samples: int, progress: bool = False, drs_rate: float | None = None,
                spread: float | None = None) -> Samples:
    """A run folder or checkpoint, or an exported artifact (n samples, default `default_samples`, from
    `seed`, through DRS at `drs_rate` if given, noise scaled by `spread`, default the model's), or a folder
    of PNGs (the first n, default all)."""
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"{path} does not exist; give a run folder, its {CHECKPOINT_NAME}, an exported "
                              "artifact or a folder of PNGs")
    if drs_rate is not None and not is_artifact(path):
        raise EvaluationError(f"--drs-rate needs an exported artifact (its calibrated DRS head); {path} is not one")
    if spread is not None and not is_artifact(path):
        raise EvaluationError(f"--spread needs an exported artifact; {path} is not one")
    if _run_dir(path) is not None:
        return sample_run(load_generator(path), str(path), n or default_samples, seed, class_sampling, data_root,
                          progress)
    if is_artifact(path):
        return sample_artifact(path, n or default_samples, seed, class_sampling, data_root, drs_rate, spread)
    if path.is_dir():
        if class_sampling is not None:
            raise EvaluationError("--class-sampling applies to run folders, not to a folder of PNGs")
        return read_png_folder(path, n)
    raise EvaluationError(f"{path} is neither a run folder, a checkpoint, an exported artifact nor a folder of PNGs")
