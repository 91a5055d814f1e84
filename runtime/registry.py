"""Finding models: the shipped ones under artifacts/ (or $GAN_ARTIFACTS), by name or by path.

The default model is the best shipped ONNX model: the lowest FID recorded under protocol P0 in the
manifests; when no manifest records one, the first by name (and a note says so).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from common.manifest import (
    ARTIFACTS_ENV,
    MANIFEST_NAME,
    ArtifactError,
    Manifest,
    NotAGanExport,
    artifacts_root,
    read_manifest,
)


@dataclass(frozen=True)
class ShippedModel:
    name: str
    folder: Path
    manifest: Manifest | None  # None when the manifest cannot be read
    problem: str | None = None  # why, in that case

    @property
    def readable(self) -> Manifest:
        """The manifest of a model `runnable` returned (one that could be read)."""
        if self.manifest is None:
            raise ArtifactError(self.problem or f"model {self.name}: its manifest cannot be read")
        return self.manifest


def shipped_models(root: Path | None = None) -> list[ShippedModel]:
    """Every GAN export under `root` (folders whose manifest.json is ours, or unreadable), by name."""
    root = artifacts_root() if root is None else root
    if not root.is_dir():
        return []
    models = []
    for folder in sorted(path for path in root.iterdir() if (path / MANIFEST_NAME).is_file()):
        try:
            models.append(ShippedModel(folder.name, folder, read_manifest(folder)))
        except NotAGanExport:
            continue
        except ArtifactError as error:
            models.append(ShippedModel(folder.name, folder, None, str(error)))
    return models


def runnable(models: list[ShippedModel]) -> list[ShippedModel]:
    """The models gan-runtime can run: readable manifests of ONNX exports."""
    return [m for m in models if m.manifest is not None and m.manifest.graph_format == "onnx"]


def best_model(models: list[ShippedModel]) -> tuple[ShippedModel, str | None]:
    """(the default model, a note when the choice is a fallback rather than a measured best)."""
    candidates = runnable(models)
    if not candidates:
        raise ArtifactError(
            f"no models in {artifacts_root()}; export one with `export-gan RUN_DIR` "
            f"or pass --model PATH (set ${ARTIFACTS_ENV} to look elsewhere)"
        )
    scored = [(m.readable.p0_fid(), m.name, m) for m in candidates if m.readable.p0_fid() is not None]
    if scored:
        return min(scored, key=lambda item: item[:2])[2], None
    first = candidates[0]
    return first, f"no manifest records a P0 FID; using {first.name} (first by name)"


def locate(model: str | Path | None) -> tuple[Path, str | None]:
    """(model folder, note) for a name under artifacts/, a folder path, or None (the best shipped)."""
    if model is None:
        chosen, note = best_model(shipped_models())
        return chosen.folder, note
    path = Path(model)
    if path.is_dir():
        return path, None
    root = artifacts_root()
    if os.sep not in str(model) and (root / str(model)).is_dir():
        return root / str(model), None
    names = [m.name for m in runnable(shipped_models(root))]
    shipped = ", ".join(names) if names else "none"
    raise ArtifactError(f"no model {str(model)!r}: not a folder and not a model in {root} (shipped: {shipped})")
