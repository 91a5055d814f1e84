"""Fréchet distance between Gaussian fits of two feature sets, by pytorch-fid's own formula."""

from __future__ import annotations

import contextlib
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from pytorch_fid.fid_score import calculate_frechet_distance


@dataclass
class GaussianStats:
    mean: np.ndarray  # float64 [D]
    cov: np.ndarray  # float64 [D, D]


def gaussian_stats(features: np.ndarray) -> GaussianStats:
    """Mean and covariance in float64, as pytorch-fid's calculate_activation_statistics."""
    features = np.asarray(features, dtype=np.float64)
    return GaussianStats(features.mean(axis=0), np.cov(features, rowvar=False))


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    # pytorch-fid prints its singular-covariance notice on stdout, where our report goes; scipy's
    # warnings about its sqrtm call (singular with fewer samples than dimensions, deprecated
    # argument) are pytorch-fid's to handle, and it does (eps on the diagonal when not finite).
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=scipy.linalg.LinAlgWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        return float(calculate_frechet_distance(a.mean, a.cov, b.mean, b.cov))
