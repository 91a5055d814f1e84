"""The models shipped in artifacts/: intact, runnable, deterministic, small. (That the README's results are their
manifests' numbers needs `eval-gan`, which imports torch: tests/integration/test_shipped_artifacts.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from common.manifest import P0_PROTOCOL
from runtime.model import GanModel
from runtime.registry import best_model, embedded_root, shipped_models, shipped_names

from ..conftest import REPO
from .conftest import SHIPPED

TOTAL_BYTES_LIMIT = 150 * 10**6  # the 150 MB, decimal


def test_models_are_shipped_and_artifacts_stay_small():
    """The cap counts what the project ships (index.json), not a user's export beside it."""
    assert SHIPPED, "artifacts/ holds no exported GAN"
    shipped = shipped_names(REPO / "artifacts")
    assert shipped == {path.name for path in (REPO / "artifacts").iterdir() if path.name in shipped and path.is_dir()}
    files = [path for path in (REPO / "artifacts").rglob("*") if path.is_file()]
    total = sum(
        path.stat().st_size
        for path in files
        if path.relative_to(REPO / "artifacts").parts[0] in shipped or path.parent == REPO / "artifacts"
    )
    assert total <= TOTAL_BYTES_LIMIT, f"the shipped artifacts are {total / 1e6:.1f} MB"


def test_the_embedded_models_are_the_shipped_ones_byte_for_byte():
    """The wheel's models (runtime/embedded) are copies of shipped ones: same files, same bytes."""
    embedded = embedded_root()
    names = shipped_names(embedded)
    assert names and names <= shipped_names(REPO / "artifacts")
    for name in names:
        ours = sorted(path.relative_to(embedded / name) for path in (embedded / name).rglob("*") if path.is_file())
        theirs = sorted(p.relative_to(REPO / "artifacts" / name) for p in (REPO / "artifacts" / name).rglob("*"))
        assert ours == theirs, name
        for relative in ours:
            assert (embedded / name / relative).read_bytes() == (REPO / "artifacts" / name / relative).read_bytes()


@pytest.mark.parametrize("entry", SHIPPED, ids=[entry.name for entry in SHIPPED])
def test_every_shipped_model_verifies_and_generates(entry):
    entry.manifest.verify()  # every graph and the shared weights against their sha256
    model = GanModel(entry.manifest)
    images, stats = model.generate(64, seed=0)
    again, _ = model.generate(64, seed=0)
    assert images.shape == (64, 28, 28) and images.dtype == np.uint8 and np.array_equal(images, again)
    assert images.std() > 20  # digits, not a constant image
    assert stats.proposals == 64
    drs_images, drs_stats = model.generate(64, seed=0, drs_rate=0.2)
    assert drs_images.shape == (64, 28, 28) and drs_stats.proposals > 64
    assert entry.manifest.to_json()["training"]["cpu_seconds"] > 0
    assert entry.manifest.metric_summary("proxy"), "no proxy result recorded"


@pytest.mark.parametrize("entry", SHIPPED, ids=[entry.name for entry in SHIPPED])
def test_every_shipped_model_samples_the_same_images_with_drs_for_the_same_seed(entry):
    model = GanModel(entry.manifest)
    digit = 7 if model.conditional else None
    drs = dict(digit=digit, drs_rate=0.3, batch_size=16)  # rounds of 16 proposals: a few rounds, not one of 256
    images, stats = model.generate(32, seed=5, **drs)
    again, again_stats = model.generate(32, seed=5, **drs)
    assert np.array_equal(images, again) and np.array_equal(stats.labels, again_stats.labels)
    assert (stats.proposals, stats.accepted, stats.max_logit) == (
        again_stats.proposals,
        again_stats.accepted,
        again_stats.max_logit,
    )
    assert stats.requested == 32 <= stats.accepted < stats.proposals
    other, _ = model.generate(32, seed=6, **drs)
    assert not np.array_equal(images, other)
    plain, _ = model.generate(32, seed=5, digit=digit, batch_size=16)
    assert not np.array_equal(images, plain)  # DRS rejected some of the plain draws


def test_the_default_model_is_the_lowest_p0_fid():
    scored = [(entry.manifest.p0_fid(), entry.name) for entry in SHIPPED if entry.manifest.p0_fid() is not None]
    chosen, _ = best_model(shipped_models(REPO / "artifacts"))
    if scored:
        assert chosen.name == min(scored)[1]
    assert all(
        record["protocol"] in (P0_PROTOCOL, "proxy")
        for entry in SHIPPED
        for record in entry.manifest.to_json()["evaluation"]
    )


def test_the_shipped_models_record_p0_fids_so_the_default_is_measured():
    chosen, note = best_model(shipped_models(REPO / "artifacts"))
    assert note is None and chosen.manifest.p0_fid() is not None
