"""Finding models: by name along a search path, by folder path, or the default one.

The search path, first match wins: $GAN_ARTIFACTS (when set), ./artifacts of the working directory (when it
exists), then the models embedded in this package (importlib.resources: an installed wheel needs no other).
A folder's `index.json` names the models the project ships there; any other GAN export in it is a user's
export (runnable, but never counted as shipped by the tests, the results tables or the size cap).

The default model is the best ONNX model of the first folder on the path that holds any: the lowest FID
recorded under protocol P0 in the manifests; when no manifest records one, the first by name (and a note
says so).
"""

from __future__ import annotations

import importlib.resources
import json
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

from .classifier import CLASSIFIER_FOLDER

INDEX_NAME = "index.json"  # {"shipped": [folder names]}


def embedded_root() -> Path:
    """The models this package carries as package data: the wheel's default model and the classifier."""
    return Path(str(importlib.resources.files("runtime").joinpath("embedded")))


@dataclass(frozen=True)
class ModelRoot:
    folder: Path
    source: str  # how the search path reached it: "$GAN_ARTIFACTS", "./artifacts" or "embedded"


def model_roots() -> list[ModelRoot]:
    """The search path, in order (folders that do not exist are left out)."""
    roots = []
    if os.environ.get(ARTIFACTS_ENV):
        roots.append(ModelRoot(artifacts_root(), f"${ARTIFACTS_ENV}"))
    elif artifacts_root().is_dir():
        roots.append(ModelRoot(artifacts_root(), "./artifacts"))
    roots.append(ModelRoot(embedded_root(), "embedded"))
    return [root for root in roots if root.folder.is_dir()]


def shipped_names(root: Path) -> set[str]:
    """The folders `root/index.json` lists as shipped by the project (none without an index)."""
    try:
        names = json.loads((Path(root) / INDEX_NAME).read_text())["shipped"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {name for name in names if isinstance(name, str)}


@dataclass(frozen=True)
class ShippedModel:
    name: str
    folder: Path
    manifest: Manifest | None  # None when the manifest cannot be read
    problem: str | None = None  # why, in that case
    shipped: bool = False  # listed in its folder's index.json (else a user's export)
    source: str = ""  # the search-path entry it was found in ("" when listed from a given folder)

    @property
    def readable(self) -> Manifest:
        """The manifest of a model `runnable` returned (one that could be read)."""
        if self.manifest is None:
            raise ArtifactError(self.problem or f"model {self.name}: its manifest cannot be read")
        return self.manifest


def shipped_models(root: Path | None = None, source: str = "") -> list[ShippedModel]:
    """Every GAN export in one folder (default: the first of the search path), by name: folders whose
    manifest.json is ours, or unreadable."""
    if root is None:
        roots = model_roots()
        if not roots:
            return []
        root, source = roots[0].folder, roots[0].source
    root = Path(root)
    if not root.is_dir():
        return []
    shipped = shipped_names(root)
    models = []
    for folder in sorted(path for path in root.iterdir() if (path / MANIFEST_NAME).is_file()):
        try:
            manifest, problem = read_manifest(folder), None
        except NotAGanExport:
            continue
        except ArtifactError as error:
            manifest, problem = None, str(error)
        models.append(ShippedModel(folder.name, folder, manifest, problem, folder.name in shipped, source))
    return models


def published_models(root: Path) -> list[ShippedModel]:
    """What a folder publishes: the models its index.json lists, or every GAN export in a folder without an
    index (a folder of one's own exports). Results tables, model cards and the size cap count these."""
    models = shipped_models(root)
    if not (Path(root) / INDEX_NAME).is_file():
        return models
    return [model for model in models if model.shipped]


def found_models() -> list[ShippedModel]:
    """The GAN exports of every folder on the search path, in search order (a name may appear twice: the first
    one is the one a name finds)."""
    return [model for root in model_roots() for model in shipped_models(root.folder, root.source)]


def runnable(models: list[ShippedModel]) -> list[ShippedModel]:
    """The models gan-runtime can run: readable manifests of ONNX exports."""
    return [m for m in models if m.manifest is not None and m.manifest.graph_format == "onnx"]


def best_model(models: list[ShippedModel]) -> tuple[ShippedModel, str | None]:
    """(the default model among `models`, a note when the choice is a fallback rather than a measured best)."""
    candidates = runnable(models)
    if not candidates:
        searched = ", ".join(str(root.folder) for root in model_roots()) or "nowhere"
        raise ArtifactError(
            f"no models found (searched {searched}); export one with `export-gan RUN_DIR` "
            f"or pass --model PATH (set ${ARTIFACTS_ENV} to look elsewhere)"
        )
    scored = [(m.readable.p0_fid(), m.name, m) for m in candidates if m.readable.p0_fid() is not None]
    if scored:
        return min(scored, key=lambda item: item[:2])[2], None
    first = candidates[0]
    return first, f"no manifest records a P0 FID; using {first.name} (first by name)"


def _default_folder() -> tuple[Path, list[ShippedModel]]:
    """The first folder on the search path that holds a runnable model, and its models (read once)."""
    roots = model_roots()
    for root in roots:
        models = shipped_models(root.folder, root.source)
        if runnable(models):
            return root.folder, models
    return (roots[0].folder if roots else artifacts_root()), []


def default_root() -> Path:
    """The first folder on the search path that holds a runnable model (the first one when none does)."""
    return _default_folder()[0]


def default_model() -> tuple[ShippedModel, str | None]:
    """The best model of the first folder on the search path that holds a runnable one."""
    return best_model(_default_folder()[1])


def locate(model: str | Path | None) -> tuple[Path, str | None]:
    """(model folder, note) for a name on the search path, a folder path, or None (the default model)."""
    if model is None:
        chosen, note = default_model()
        return chosen.folder, note
    path = Path(model)
    if path.is_dir():
        return path, None
    if os.sep not in str(model):
        for root in model_roots():
            if (root.folder / str(model)).is_dir():
                return root.folder / str(model), None
    names = sorted({m.name for m in runnable(found_models())})
    searched = ", ".join(str(root.folder) for root in model_roots()) or "nowhere"
    raise ArtifactError(
        f"no model {str(model)!r}: not a folder, and not a model in {searched} (found: {', '.join(names) or 'none'})"
    )


def locate_classifier() -> Path:
    """The MNIST classifier's folder: the first on the search path."""
    for root in model_roots():
        if (root.folder / CLASSIFIER_FOLDER / MANIFEST_NAME).is_file():
            return root.folder / CLASSIFIER_FOLDER
    searched = ", ".join(str(root.folder) for root in model_roots()) or "nowhere"
    raise ArtifactError(f"no MNIST classifier ({CLASSIFIER_FOLDER}/) found in {searched}")
