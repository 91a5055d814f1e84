"""Plain sampling's graph, cached: the generator graph cut to its image output (common/image_graph.py), kept in a
user cache folder under the generator graph's sha256, so the cut (onnx, ~0.7 s to import and run) happens once
per graph and machine. Where the folder cannot be written the cut stays in memory for the process.

    $XDG_CACHE_HOME/mnist-latent-gan/image-graphs/SHA256.v1.onnx   (else ~/.cache/...)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from common.errors import UserError
from common.files import atomic_write_bytes
from common.image_graph import cut_to_image
from common.manifest import Manifest

CACHE_ENV = "XDG_CACHE_HOME"
# Part of each file's name: a change to how graphs are cut changes it, and old files are never read again.
CUT_VERSION = "v1"


def cache_folder() -> Path:
    """Where cut graphs are kept: $XDG_CACHE_HOME (an absolute path, as the XDG spec asks) or ~/.cache."""
    base = os.environ.get(CACHE_ENV, "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "mnist-latent-gan" / "image-graphs"


def cached_file(manifest: Manifest) -> Path:
    return cache_folder() / f"{manifest.sha256[manifest.graph_file('generator')]}.{CUT_VERSION}.onnx"


def image_graph(manifest: Manifest, refresh: bool = False) -> Path | bytes:
    """The model's generator graph cut to `image`: the cached file's path (onnxruntime reads it itself, so no copy
    of the graph stays in Python: a session made from bytes keeps them), else the graph cut now, cached when the
    folder can be written. The generator graph is read and checked against its sha256 either way, so a modified
    model is refused as before; `refresh` ignores a cached file (one onnxruntime could not load)."""
    generator = manifest.read_graph("generator")
    path = cached_file(manifest)
    if not refresh and path.is_file():
        return path
    graph = cut_to_image(generator, manifest.external_data())
    with contextlib.suppress(OSError, UserError):  # read-only home, full disk: the cut is used from memory
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, graph)
    return graph
