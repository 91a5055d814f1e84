"""The real side of each protocol, computed once per machine and reused: features, Gaussian fit, radii.

A reference is keyed by a hash of everything that defines it (protocol, feature extractor and its
weights' sha256, preprocessing version, the real images' sha256), so changing any of them makes
a new file; older files of the same protocol and reference set are then removed. Files are .npz without pickles,
written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.files import atomic_write_bytes, atomic_write_text
from common.manifest import artifacts_root
from common.mnist import default_data_root

from . import EvaluationError
from .fid import GaussianStats, gaussian_stats
from .prdc import neighbour_radii
from .protocols import PREPROCESSING_VERSION, Protocol

CACHE_ENV = "GAN_CACHE_DIR"
FLOOR_FILE = "p0_floor.json"  # `eval-gan floor --protocol p0` record, stored beside the models


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or default_data_root() / "eval")


@dataclass
class Reference:
    features: np.ndarray  # float32 [N, D]
    stats: GaussianStats
    radii: dict[int, np.ndarray]  # k -> float64 [N]


def reference_key(protocol: Protocol, fingerprint: dict, real_images: np.ndarray) -> str:
    definition = {
        "protocol": protocol.name,
        "ks": list(protocol.ks),
        "extractor": fingerprint,
        "preprocessing": PREPROCESSING_VERSION,
        "real_images": {"count": len(real_images), "sha256": hashlib.sha256(real_images.tobytes()).hexdigest()},
    }
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


def cache_stem(protocol: Protocol, holdout: bool, int8: bool = False) -> str:
    """The file-name prefix of a protocol's reference: `p0` (MNIST test) or `p0_holdout`, `_int8` added for the
    features of an int8 Inception (their own file: writing one never removes the other)."""
    return protocol.name + ("_holdout" if holdout else "") + ("_int8" if int8 else "")


def _path(stem: str, key: str, suffix: str) -> Path:
    return cache_dir() / f"{stem}-{key}{suffix}"


def _read(path: Path, ks: tuple[int, ...]) -> Reference | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return Reference(
                data["features"], GaussianStats(data["mean"], data["cov"]), {k: data[f"radii_k{k}"] for k in ks}
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent or unreadable: recompute
        return None


def _write(stem: str, key: str, reference: Reference) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        features=reference.features,
        mean=reference.stats.mean,
        cov=reference.stats.cov,
        **{f"radii_k{k}": radii for k, radii in reference.radii.items()},
    )
    cache_dir().mkdir(parents=True, exist_ok=True)
    for older in cache_dir().glob(f"{stem}-*"):  # this reference's previous definitions
        if not older.name.startswith(f"{stem}-{key}"):
            older.unlink(missing_ok=True)
    atomic_write_bytes(_path(stem, key, ".npz"), buffer.getvalue())


def load_reference(
    protocol: Protocol, key: str, compute_features, holdout: bool = False, int8: bool = False
) -> Reference:
    """The cached reference for `key`, or `compute_features()` turned into one and cached."""
    stem = cache_stem(protocol, holdout, int8)
    path = _path(stem, key, ".npz")
    reference = _read(path, protocol.ks)
    if reference is None:
        features = compute_features()
        reference = Reference(features, gaussian_stats(features), neighbour_radii(features, protocol.ks))
        _write(stem, key, reference)
    return reference


def read_floor(protocol: Protocol, key: str) -> dict | None:
    """The stored real-vs-real floor record of this reference, if `eval-gan floor` measured it."""
    try:
        return json.loads(_path(protocol.name, key, "-floor.json").read_text())
    except (OSError, ValueError):
        return None


def write_floor(protocol: Protocol, key: str, record: dict) -> None:
    path = _path(protocol.name, key, "-floor.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def read_shipped_floor(root: Path) -> dict | None:
    path = root / FLOOR_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise EvaluationError(f"{path} is not valid JSON; rewrite it with `eval-gan floor --json`") from None


def shipped_floor(protocol: Protocol, root: Path | None = None) -> dict | None:
    """The floor stored beside the shipped models, when it was measured under this very protocol definition."""
    floor = read_shipped_floor(root or artifacts_root())
    if floor and floor.get("protocol") == protocol.name and floor.get("protocol_summary") == protocol.summary:
        return floor
    return None
