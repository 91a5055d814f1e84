"""What evaluation writes into a model's manifest, through the artifact contract (common.manifest)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from common.manifest import Manifest, Sampling, record_precision, record_sampling, update_manifest


def _record_identity(record: dict) -> tuple:
    """Two records describe the same measurement when these agree; a new one replaces the old."""
    return (
        *(record.get(key) for key in ("protocol", "samples", "seed", "class_sampling")),
        *record_sampling(record),
        record_precision(record),
    )


def record_evaluation(folder: Path, record: dict) -> Manifest:
    """Add an `eval-gan score` record to a model's manifest, replacing the same measurement."""

    def add(manifest: Manifest) -> Manifest:
        kept = [
            entry
            for entry in manifest.evaluation
            if not (isinstance(entry, dict) and _record_identity(entry) == _record_identity(record))
        ]
        return dataclasses.replace(manifest, evaluation=[*kept, record])

    return update_manifest(folder, add)


def set_default_spread(folder: Path, spread: float, chosen_by: dict) -> Manifest:
    """Make `spread` the model's default latent spread, with how it was chosen."""
    sampling = Sampling.from_json({"spread": spread, "chosen_by": chosen_by}, str(Path(folder) / "manifest.json"))
    return update_manifest(folder, lambda manifest: dataclasses.replace(manifest, sampling=sampling))
