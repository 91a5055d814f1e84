"""Lower-precision variants of an exported generator's image path, written beside its graphs and listed in its
manifest (`variants`); plain sampling runs one by default once its P0 quality matches fp32's (common/manifest.py).

    python -m export.variants artifacts/wgan_gp_cond_conv_w96 [--precision int8] [--calibration 1024] [--seed 0]

int8: the generator graph cut to its image output (common/image_graph.py, so it follows whatever generator.onnx
holds), each stride-2 4x4 ConvTranspose rewritten as four 2x2 Convs, one per output phase, interleaved by
DepthToSpace (the same sums in another order; onnxruntime's int8 Conv kernels are its fast ones, its
ConvTranspose has none that are), then onnxruntime.quantization's static QDQ quantisation of those phase Convs:
weights int8 per output channel, activations uint8 with ranges from the generator's own images of
`--calibration` latent draws of its prior (eps ~ N(0, I) x its default spread, labels uniform). Everything else
(the projection, the last Conv to one channel, the tone curve) stays fp32.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import onnx
import typer
from onnx import helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from common.cli import checked_option, run_app
from common.files import atomic_write_bytes
from common.image_graph import cut_to_image
from common.manifest import ImageVariant, Manifest, read_manifest, sha256_hex, update_manifest
from common.validation import check_count, check_precision, check_seed

from .manifest import ExportError

VARIANT_FILES = {"int8": "generator.int8.onnx"}
CALIBRATION_BATCH = 128
# A ConvTranspose with stride 2, kernel 4, padding 1: output row 2m takes input rows m-1, m through kernel rows
# 3, 1; row 2m+1 takes rows m, m+1 through kernel rows 2, 0 (and the same for columns).
PHASE_TAPS = {0: [3, 1], 1: [2, 0]}


def _is_upsampling_2x(node: onnx.NodeProto) -> bool:
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return (
        node.op_type == "ConvTranspose"
        and list(attributes.get("strides", [])) == [2, 2]
        and list(attributes.get("kernel_shape", [])) == [4, 4]
        and list(attributes.get("pads", [])) == [1, 1, 1, 1]
        and attributes.get("group", 1) == 1
        and not any(attributes.get("output_padding", [0, 0]))
        and list(attributes.get("dilations", [1, 1])) == [1, 1]
    )


def phase_convolutions(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Each stride-2 4x4 ConvTranspose -> four 2x2 Convs (output phases (dy, dx)), Concat, DepthToSpace (DCR);
    returns the model and the new Convs' names. Exact in real arithmetic (tested against the ConvTranspose)."""
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    nodes, phase_convs, replaced = [], [], set()
    for node in graph.node:
        if not (_is_upsampling_2x(node) and node.input[1] in weights):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])  # [C_in, C_out, 4, 4]
        replaced.add(node.input[1])
        phases = []
        for dy in (0, 1):
            for dx in (0, 1):
                kernel = weight[:, :, PHASE_TAPS[dy]][:, :, :, PHASE_TAPS[dx]].transpose(1, 0, 2, 3)
                name = f"{node.input[1]}.phase{dy}{dx}"
                graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(kernel), name))
                inputs = [node.input[0], name, *node.input[2:3]]
                phases.append(f"{node.output[0]}.phase{dy}{dx}")
                phase_convs.append(f"{node.name}.phase{dy}{dx}")
                pads = [1 - dy, 1 - dx, dy, dx]  # top, left, bottom, right
                nodes.append(
                    helper.make_node("Conv", inputs, [phases[-1]], phase_convs[-1], kernel_shape=[2, 2], pads=pads)
                )
        stacked = f"{node.output[0]}.phases"
        nodes.append(helper.make_node("Concat", phases, [stacked], f"{node.name}.concat", axis=1))
        nodes.append(
            helper.make_node("DepthToSpace", [stacked], [node.output[0]], f"{node.name}.interleave", blocksize=2)
        )
    kept = [tensor for tensor in graph.initializer if tensor.name not in replaced]
    del graph.node[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model, phase_convs


class PriorDraws(CalibrationDataReader):
    """Generator inputs as plain sampling draws them: eps ~ N(0, I) x the default spread, labels uniform."""

    def __init__(self, manifest: Manifest, count: int, seed: int):
        rng = np.random.default_rng(seed)
        labels = max(manifest.prior.num_labels, 1)
        self.batches = iter(
            [
                {
                    "eps": rng.standard_normal((size, manifest.latent_dim), dtype=np.float32)
                    * np.float32(manifest.default_spread),
                    "label": rng.integers(0, labels, size, dtype=np.int64),
                }
                for size in np.diff([*range(0, count, CALIBRATION_BATCH), count])
            ]
        )

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def int8_image_graph(manifest: Manifest, calibration: int, seed: int) -> tuple[bytes, dict]:
    """(the int8 image graph's bytes, its recipe for the manifest)."""
    image = onnx.load_from_string(cut_to_image(manifest.read_graph("generator"), manifest.external_data()))
    image, phase_convs = phase_convolutions(image)
    if not phase_convs:
        raise ExportError(
            f"model {manifest.name} has no stride-2 4x4 ConvTranspose to quantise; int8 variants are for the "
            "convolutional generators"
        )
    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "image.onnx", Path(scratch) / "image.int8.onnx"
        onnx.save(image, source)
        logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice to pre-process (shapes are static)
        quantize_static(
            source,
            target,
            PriorDraws(manifest, calibration, seed),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=phase_convs,
        )
        graph = target.read_bytes()
    recipe = {
        "tool": "onnxruntime.quantization.quantize_static (QDQ)",
        "graph": "generator.onnx cut to its image output; ConvTranspose 4x4/2 as four 2x2 phase Convs + DepthToSpace",
        "int8": "the phase Convs: weights int8 per output channel, activations uint8 (min-max)",
        "fp32": "everything else",
        "calibration": {"draws": calibration, "seed": seed, "spread": manifest.default_spread},
    }
    return graph, recipe


def add_variant(folder: Path, precision: str, calibration: int, seed: int) -> Manifest:
    """Write the variant into the model folder and list it (file, recipe, sha256) in the manifest."""
    manifest = read_manifest(folder)
    graph, recipe = int8_image_graph(manifest, calibration, seed)
    name = VARIANT_FILES[precision]
    atomic_write_bytes(Path(folder) / name, graph)

    def listed(current: Manifest) -> Manifest:
        return dataclasses.replace(
            current,
            variants={**current.variants, precision: ImageVariant(name, recipe)},
            sha256={**current.sha256, name: sha256_hex(graph)},
        )

    return update_manifest(folder, listed)


app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(epilog="Example: python -m export.variants artifacts/wgan_gp_cond_conv_w96 --precision int8")
def variants_command(
    folder: Annotated[Path, typer.Argument(help="an exported ONNX model folder")],
    precision: Annotated[str, checked_option(check_precision, "--precision", help="the variant to write")] = "int8",
    calibration: Annotated[
        int, checked_option(check_count, "--calibration", help="latent draws that set the activation ranges")
    ] = 1024,
    seed: Annotated[int, checked_option(check_seed, "--seed", help="seed of the calibration draws")] = 0,
) -> None:
    """Write a lower-precision copy of a model's image path beside its graphs and list it in its manifest."""
    if precision not in VARIANT_FILES:
        raise ExportError(f"--precision {precision} is the exported graphs' own; variants: {', '.join(VARIANT_FILES)}")
    manifest = add_variant(folder, precision, calibration, seed)
    name = VARIANT_FILES[precision]
    typer.echo(f"{folder}/{name}: {precision} image graph, sha256 {manifest.sha256[name]}")


def main() -> None:
    run_app(app, "python -m export.variants")


if __name__ == "__main__":
    main()
