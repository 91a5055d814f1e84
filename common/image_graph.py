"""A generator graph cut to its `image` output: what plain sampling runs (no critic, no DRS head).

The cut is taken from whatever generator.onnx a model holds (onnx.utils.Extractor), so it follows any change to
the graph's other outputs. `onnx` is imported here, when a graph is cut (the runtime caches the result:
runtime/image_cache.py), never when the runtime starts.
"""

from __future__ import annotations

from collections.abc import Mapping

from .manifest import GRAPH_IO

IMAGE_OUTPUT = "image"


def cut_to_image(generator: bytes, external_data: Mapping[str, bytes]) -> bytes:
    """The generator graph's bytes -> a self-contained graph with the same inputs and the `image` output alone:
    the same nodes on the image path, so the same bytes out. Initializers it keeps from the external data (the
    files shared with the critic graph, name -> bytes) are copied into it."""
    import onnx
    import onnx.external_data_helper
    import onnx.utils

    model = onnx.load_from_string(generator)
    inputs, _ = GRAPH_IO["generator"]
    cut = onnx.utils.Extractor(model).extract_model(list(inputs), [IMAGE_OUTPUT])
    for tensor in cut.graph.initializer:
        if onnx.external_data_helper.uses_external_data(tensor):
            info = onnx.external_data_helper.ExternalDataInfo(tensor)
            start = info.offset or 0
            end = len(external_data[info.location]) if info.length is None else start + info.length
            tensor.raw_data = external_data[info.location][start:end]
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
    return cut.SerializeToString()
