"""Plain sampling's graphs: the generator graph cut to its image output (the same bytes as the whole graph, cached
by the graph's sha256), and the precision variants (`--precision`, the default rule, DRS's refusal)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from common.images import unit_to_uint8
from common.manifest import read_manifest
from common.validation import InvalidRequest, check_precision
from runtime import image_cache
from runtime.model import CONV_RUN_IMAGES, GanModel

from .conftest import ARTIFACTS, CONDITIONAL, UNCONDITIONAL, assert_one_line_error, copy_model, run_cli

CONV = "wgan_gp_cond_conv_w96"  # the default model: transposed convolutions, and an int8 variant


def whole_graph_images(model: GanModel, n: int, seed: int, digit: int | None = None) -> np.ndarray:
    """What plain sampling returned before it ran the cut graph: the whole generator graph's image output."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((n, model.manifest.latent_dim), dtype=np.float32) * np.float32(model.default_spread)
    labels = model._draw_labels(rng, n, digit, None)
    return model._generate_batches(eps, labels, 256)[0]


@pytest.mark.parametrize(("name", "n", "seed"), [(CONDITIONAL, 300, 0), (UNCONDITIONAL, 7, 5), (CONV, 40, 2)])
def test_plain_sampling_gives_the_whole_graphs_bytes(name, n, seed):
    model = GanModel.load(ARTIFACTS / name, "cpu", precision="fp32")
    images, stats = model.generate(n, seed=seed)
    assert set(model._sessions) == {"image"}  # no critic: not in a session, not read
    assert np.array_equal(images, whole_graph_images(model, n, seed))
    assert np.isnan(stats.accepted_mean_logit)


@pytest.mark.parametrize("name", [CONV, CONDITIONAL])
def test_a_conv_generator_runs_a_few_images_at_a_time_with_the_same_bytes(name):
    """Conv generators run CONV_RUN_IMAGES rows per graph run (their activations grow with the run), in plain
    sampling and DRS alike; the images, logits and F are those of one run over every row. MLPs run whole rounds."""
    model = GanModel.load(ARTIFACTS / name, "cpu", precision="fp32")
    n = 2 * CONV_RUN_IMAGES + 5
    runs = [rows.stop - rows.start for rows in model._graph_runs(0, n)]
    assert runs == ([CONV_RUN_IMAGES, CONV_RUN_IMAGES, 5] if name == CONV else [n])
    images, _ = model.generate(n, seed=4)
    rng = np.random.default_rng(4)
    eps = rng.standard_normal((n, model.manifest.latent_dim), dtype=np.float32) * np.float32(model.default_spread)
    labels = model._draw_labels(rng, n, None, None)
    (one_run,) = model._session("image").run(None, {"eps": eps, "label": labels})
    assert np.array_equal(images, unit_to_uint8(one_run[:, 0]))
    whole_image, logit, f = model._session("generator").run(None, {"eps": eps, "label": labels})
    drs_images, drs_logit, drs_f = model._generate_batches(eps, labels, 256)
    assert np.array_equal(drs_images, unit_to_uint8(whole_image[:, 0]))
    assert np.array_equal(drs_logit, logit) and np.array_equal(drs_f, f)


def test_the_cut_is_cached_by_sha256_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manifest = read_manifest(ARTIFACTS / CONDITIONAL)
    expected, _ = GanModel(manifest, "cpu").generate(20, seed=1)  # a miss: cut and written
    cached = image_cache.cached_file(manifest)
    assert cached.is_file() and cached.parent == tmp_path / "cache" / "mnist-latent-gan" / "image-graphs"
    assert cached.name.startswith(manifest.sha256["generator.onnx"])

    def no_cut(*args):
        raise AssertionError("a cached graph was cut again")

    monkeypatch.setattr(image_cache, "cut_to_image", no_cut)
    assert np.array_equal(GanModel(manifest, "cpu").generate(20, seed=1)[0], expected)  # a hit
    assert image_cache.image_graph(manifest) == cached  # onnxruntime reads the file: no copy held in Python


def test_a_damaged_cache_file_is_cut_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    manifest = read_manifest(ARTIFACTS / UNCONDITIONAL)
    expected, _ = GanModel(manifest, "cpu").generate(10, seed=4)
    image_cache.cached_file(manifest).write_bytes(b"not a graph")
    assert np.array_equal(GanModel(manifest, "cpu").generate(10, seed=4)[0], expected)
    assert image_cache.cached_file(manifest).read_bytes() != b"not a graph"  # rewritten


@pytest.mark.parametrize("cache", ["a_file", "read_only"])
def test_an_unwritable_cache_keeps_the_cut_in_memory(tmp_path, monkeypatch, cache):
    root = tmp_path / "cache"
    if cache == "a_file":
        root.write_text("")  # the cache home is a file: no folder can be made under it
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        root.mkdir(mode=0o500)
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    manifest = read_manifest(ARTIFACTS / CONDITIONAL)
    images, _ = GanModel(manifest, "cpu").generate(12, seed=2)
    assert np.array_equal(images, whole_graph_images(GanModel(manifest, "cpu"), 12, seed=2))
    assert not image_cache.cached_file(manifest).exists()


def test_a_relative_cache_home_is_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert image_cache.cache_folder() == tmp_path / ".cache" / "mnist-latent-gan" / "image-graphs"


def test_precisions_are_one_rule_refused_in_one_line():
    assert check_precision("int8") == "int8"
    with pytest.raises(InvalidRequest, match="precision must be one of fp32, int8, got 'fp16'"):
        check_precision("fp16")
    with pytest.raises(InvalidRequest, match=f"model {CONDITIONAL} has no int8 variant \\(it runs at: fp32\\)"):
        GanModel.load(ARTIFACTS / CONDITIONAL, precision="int8")
    assert_one_line_error(run_cli("sample", "--precision", "bf16"), "--precision must be one of fp32, int8")
    assert_one_line_error(
        run_cli("sample", "--model", CONDITIONAL, "--precision", "int8"), f"model {CONDITIONAL} has no int8 variant"
    )


def test_the_int8_variant_is_close_to_fp32_and_refuses_drs():
    exact = GanModel.load(ARTIFACTS / CONV, "cpu", precision="fp32")
    fast = GanModel.load(ARTIFACTS / CONV, "cpu", precision="int8")
    assert fast.precisions == ["fp32", "int8"]
    reference, quantised = exact.generate(64, seed=3)[0], fast.generate(64, seed=3)[0]
    difference = np.abs(reference.astype(int) - quantised.astype(int))
    assert 0 < difference.mean() < 1.0 and np.percentile(difference, 99) <= 8  # pixel levels of 255
    with pytest.raises(InvalidRequest, match="DRS runs the fp32 graphs"):
        fast.generate(8, seed=0, drs_rate=0.5)


def _p0_record(seed: int, fid: float, precision: str | None) -> dict:
    metrics = {"p0/fid": fid, "p0/precision_k3": 0.80, "p0/recall_k3": 0.70}
    return {"protocol": "p0", "seed": seed, "drs_rate": None, "metrics": metrics} | (
        {"precision": precision} if precision else {}
    )


@pytest.mark.parametrize(("variant_fid", "seeds", "default"), [(4.1, 3, "int8"), (4.3, 3, "fp32"), (4.0, 2, "fp32")])
def test_the_variant_is_the_default_once_its_p0_records_match_fp32s(tmp_path, variant_fid, seeds, default):
    folder = copy_model(CONV, tmp_path / "model", evaluation=[])
    manifest = read_manifest(folder)
    records = [_p0_record(s, 4.0, None) for s in range(3)] + [_p0_record(s, variant_fid, "int8") for s in range(seeds)]
    manifest = dataclasses.replace(manifest, evaluation=records, sampling=None)
    assert GanModel(manifest, "cpu").precision == default
    assert manifest.p0_fid() == pytest.approx(4.0)  # a variant's records never count as the model's fp32 score
