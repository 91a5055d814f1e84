"""Improved precision/recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

Blockwise k-NN: distances are computed `block_rows` rows at a time into one reused buffer, so
10k x 10k sets need block_rows x N floats of memory, never N x N. Float64 Euclidean distances; a
point's radius is the distance to its k-th nearest neighbour in its own set, itself excluded;
balls are open (strict `<`). Matches `prdc.compute_prdc` on the same arrays.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from . import EvaluationError

DEFAULT_BLOCK_ROWS = 1024  # 1024 x 10,000 float64 distances = 80 MB


def _row_blocks(count: int, block_rows: int) -> Iterator[slice]:
    for start in range(0, count, block_rows):
        yield slice(start, min(start + block_rows, count))


def _distances(rows: torch.Tensor, points: torch.Tensor, points_sq: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [len(rows), len(points)] via |b|^2 - 2ab + |a|^2, clipped at 0, into `out`."""
    torch.addmm(points_sq[None, :], rows, points.T, alpha=-2.0, out=out)
    return out.add_((rows * rows).sum(dim=1)[:, None]).clamp_min_(0.0).sqrt_()


def check_enough(count: int, ks: tuple[int, ...], what: str) -> None:
    needed = max(ks) + 1
    if count < needed:
        raise EvaluationError(
            f"the {what} set has {count} samples; precision/recall with k={max(ks)} needs at least {needed} "
            "(k neighbours besides each point): score more samples"
        )


def _as_float64(features: np.ndarray, ks: tuple[int, ...], what: str) -> torch.Tensor:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise EvaluationError(f"{what} features must be a 2-D array [N, D], got shape {features.shape}")
    check_enough(features.shape[0], ks, what)
    return torch.from_numpy(features)


def neighbour_radii(
    features: np.ndarray, ks: tuple[int, ...], block_rows: int = DEFAULT_BLOCK_ROWS
) -> dict[int, np.ndarray]:
    """For each k: the distance from every point to its k-th nearest neighbour in the set, itself excluded."""
    points = _as_float64(features, ks, "reference")
    count = points.shape[0]
    points_sq = (points * points).sum(dim=1)
    buffer = torch.empty(min(block_rows, count), count, dtype=torch.float64)
    radii = {k: np.empty(count) for k in ks}
    for rows in _row_blocks(count, block_rows):
        size = rows.stop - rows.start
        distances = _distances(points[rows], points, points_sq, buffer[:size])
        distances[torch.arange(size), torch.arange(rows.start, rows.stop)] = torch.inf  # itself
        nearest = torch.topk(distances, max(ks), dim=1, largest=False, sorted=True).values.numpy()
        for k in ks:
            radii[k][rows] = nearest[:, k - 1]
    return radii


def precision_recall(
    real: np.ndarray,
    fake: np.ndarray,
    ks: tuple[int, ...],
    real_radii: dict[int, np.ndarray] | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> dict[int, dict[str, float]]:
    """{k: {precision, recall, density, coverage}}; `real_radii` may come from a cache."""
    real_t = _as_float64(real, ks, "real")
    fake_t = _as_float64(fake, ks, "generated")
    if real_t.shape[1] != fake_t.shape[1]:
        raise EvaluationError(f"real and generated features differ in size ({real_t.shape[1]} vs {fake_t.shape[1]})")
    if real_radii is None:
        real_radii = neighbour_radii(real, ks, block_rows)
    real_r = {k: torch.from_numpy(real_radii[k]) for k in ks}
    fake_r = {k: torch.from_numpy(r) for k, r in neighbour_radii(fake, ks, block_rows).items()}
    n_real, n_fake = real_t.shape[0], fake_t.shape[0]
    real_sq = (real_t * real_t).sum(dim=1)
    buffer = torch.empty(min(block_rows, n_fake), n_real, dtype=torch.float64)
    inside = torch.empty(buffer.shape, dtype=torch.bool)
    real_balls_holding = {k: torch.zeros(n_fake, dtype=torch.int32) for k in ks}  # per generated point
    recalled = {k: torch.zeros(n_real, dtype=torch.bool) for k in ks}  # real point in a generated ball
    nearest_fake = torch.full((n_real,), torch.inf, dtype=torch.float64)  # per real point, for coverage
    for rows in _row_blocks(n_fake, block_rows):
        size = rows.stop - rows.start
        distances = _distances(fake_t[rows], real_t, real_sq, buffer[:size])
        torch.minimum(nearest_fake, distances.amin(dim=0), out=nearest_fake)
        for k in ks:
            # int32 sums of a reused bool buffer: several times faster than a fresh int64 sum
            real_balls_holding[k][rows] = torch.lt(distances, real_r[k][None, :], out=inside[:size]).sum(
                dim=1, dtype=torch.int32
            )
            recalled[k] |= torch.lt(distances, fake_r[k][rows, None], out=inside[:size]).any(dim=0)
    return {
        k: {
            "precision": (real_balls_holding[k] > 0).double().mean().item(),
            "recall": recalled[k].double().mean().item(),
            "density": real_balls_holding[k].sum().item() / (k * n_fake),
            "coverage": (nearest_fake < real_r[k]).double().mean().item(),
        }
        for k in ks
    }


def realism_scores(real: np.ndarray, fake: np.ndarray, k: int = 3, block_rows: int = DEFAULT_BLOCK_ROWS) -> np.ndarray:
    """Realism score of each generated point (Kynkäänniemi et al. 2019, section 5): the largest
    radius_k(r) / |fake - r| over the real points r; above 1 means inside some real ball.

    As in the paper, only real points whose radius is at most the median count, so that the wide balls
    of outliers do not call everything realistic."""
    real_t = _as_float64(real, (k,), "real")
    fake_t = torch.from_numpy(np.asarray(fake, dtype=np.float64))
    if fake_t.ndim != 2 or fake_t.shape[1] != real_t.shape[1]:
        raise EvaluationError(f"generated features must be [N, {real_t.shape[1]}], got shape {tuple(fake_t.shape)}")
    radii = torch.from_numpy(neighbour_radii(real, (k,), block_rows)[k])
    typical = radii <= radii.median()
    real_t, radii = real_t[typical], radii[typical]
    real_sq = (real_t * real_t).sum(dim=1)
    buffer = torch.empty(min(block_rows, max(len(fake_t), 1)), len(real_t), dtype=torch.float64)
    scores = np.empty(len(fake_t))
    for rows in _row_blocks(len(fake_t), block_rows):
        distances = _distances(fake_t[rows], real_t, real_sq, buffer[: rows.stop - rows.start])
        scores[rows] = (radii[None, :] / distances).amax(dim=1).numpy()  # an exact copy of a real point: inf
    return scores
