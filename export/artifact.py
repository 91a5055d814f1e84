"""A trained run -> an artifact folder (graphs + manifest.json), written all at once or not at all."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from common.files import staged_folder
from common.manifest import MANIFEST_NAME, Manifest, sha256_hex
from common.mnist import load_holdout_set, load_mnist_uint8
from training.run import load_trained

from .drs import AUTO, MIN_BURN_IN, calibrate, generator_sampler
from .graphs import SERIALISERS, DrsF, build_graphs, freeze_, share_common_weights
from .intensity import MatchedGenerator, fit_tone_curve
from .manifest import ExportError, build_manifest, graph_metadata


def check_output_folder(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise ExportError(f"{out} already exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")


def export_run(
    run_dir: Path,
    graph_format: str,
    out: Path,
    data_root: Path,
    burn_in: int = MIN_BURN_IN,
    seed: int = 0,
    evaluation: list[dict] | None = None,
    force: bool = False,
    raw_generator: bool = False,
    match_intensities: bool = False,
    head_kind: str = AUTO,
    progress: bool = False,
) -> Manifest:
    """Train the DRS head (`head_kind`, or the best on held-out data for AUTO) and calibrate it on the run's held-out
    images, export both graphs, write `out`; returns the manifest.

    match_intensities: fit a tone curve to MNIST train's pixel values (export/intensity.py) and bake it
    into the generator graph; DRS is then calibrated on the matched images, which are what it will judge.
    """
    out = Path(out)
    check_output_folder(out, force)
    trained = load_trained(run_dir, raw_generator=raw_generator)
    if trained.cfg.holdout == 0:
        raise ExportError(f"run {run_dir} held out no training images (holdout 0); DRS calibration needs them")
    generator, critic = freeze_(trained.generator), freeze_(trained.critic)
    intensity_fit = None
    if match_intensities:
        real_train = load_mnist_uint8(data_root, train=True)[0]
        curve, intensity_fit = fit_tone_curve(generator, real_train, trained.cfg.latent_dim, seed)
        generator = MatchedGenerator(generator, curve.eval())
    real_images, real_labels = load_holdout_set(data_root, trained.cfg.holdout)
    prior = trained.generator.prior
    critic, head, calibration = calibrate(
        critic,
        generator_sampler(generator, trained.cfg.latent_dim),
        real_images,
        real_labels,
        prior.labels_are_digits,
        prior.num_labels,
        head_kind,
        burn_in,
        seed,
        progress,
    )

    manifest = build_manifest(trained, calibration, graph_format, evaluation or [], out, intensity_fit)
    serialise = SERIALISERS[graph_format]
    graphs = build_graphs(generator, critic, head, DrsF(calibration.max_logit, calibration.epsilon))
    files = {
        manifest.graph_file(role): serialise(graph, role, trained.cfg.latent_dim, graph_metadata(manifest))
        for role, graph in graphs.items()
    }
    if graph_format == "onnx":
        files = share_common_weights(files)
    manifest = dataclasses.replace(manifest, sha256={name: sha256_hex(data) for name, data in files.items()})
    write_artifact(out, files, manifest, force)
    return manifest


def write_artifact(out: Path, files: dict[str, bytes], manifest: Manifest, force: bool) -> None:
    """Write the folder whole or not at all (common.files.staged_folder), replacing it only with `force`."""
    check_output_folder(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_folder(out, replace=force) as staging:
        for name, data in {**files, MANIFEST_NAME: manifest.to_text().encode()}.items():
            with open(staging / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
