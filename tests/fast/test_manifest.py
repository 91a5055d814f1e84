"""The artifact contract (common/manifest.py): what manifest.json holds, how it is checked on every read, and how
evaluation writes into it (evaluation/records.py), against the shipped manifests and copies of them."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from common.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    ArtifactError,
    Manifest,
    NotAGanExport,
    read_manifest,
)
from evaluation.records import record_evaluation, set_default_spread

from ..conftest import REPO
from .conftest import (
    ARTIFACTS,
    BLOCK_IMPORTS,
    CONDITIONAL,
    SHIPPED,
    assert_one_line_error,
    copy_model,
    run_cli,
)

SHIPPED_JSON = json.loads((ARTIFACTS / CONDITIONAL / MANIFEST_NAME).read_text())


# ---------------------------------------------------------------------- reading and writing
@pytest.mark.parametrize("entry", SHIPPED, ids=[entry.name for entry in SHIPPED])
def test_every_shipped_manifest_round_trips_byte_exact(entry):
    text = (entry.folder / MANIFEST_NAME).read_text()
    manifest = read_manifest(entry.folder)
    assert manifest.to_text() == text
    assert Manifest.from_json(json.loads(text), entry.folder) == manifest
    assert manifest.format_version == FORMAT_VERSION and manifest.name == entry.name


@pytest.mark.parametrize("entry", SHIPPED, ids=[entry.name for entry in SHIPPED])
def test_the_generator_architecture_is_the_one_it_was_trained_with(entry):
    assert entry.manifest.generator_architecture == entry.manifest.training["config"]["arch"]


def test_a_manifest_from_before_head_kinds_reads_as_a_score_head_and_writes_back_unchanged():
    data = copy.deepcopy(SHIPPED_JSON)
    for key in ("head_kind", "candidates"):
        data["drs"].pop(key, None)
    drs = Manifest.from_json(data, ARTIFACTS / CONDITIONAL).drs
    assert (drs.head_kind, drs.candidates) == ("score", {})
    assert drs.to_json() == data["drs"]
    assert drs.summary().startswith("DRS head: score")


def test_a_features_head_has_no_score_line_and_round_trips():
    data = copy.deepcopy(SHIPPED_JSON)
    candidates = {
        "score": {"selection_auc": 0.55, "held_out_auc": 0.54},
        "features": {"selection_auc": 0.8, "held_out_auc": 0.79},
    }
    data["drs"].update(scale=None, bias=None, head_kind="features", candidates=candidates)
    data["drs"]["fit"].update(auc=0.79, accuracy=0.72)
    manifest = Manifest.from_json(data, ARTIFACTS / CONDITIONAL)
    assert manifest.drs.scale is None and manifest.drs.candidates == candidates
    assert Manifest.from_json(json.loads(manifest.to_text()), ARTIFACTS / CONDITIONAL) == manifest
    assert manifest.drs.summary() == "DRS head: features, held-out AUC 0.790, accuracy 72.0%"


def _drop(key):
    return lambda data: data.pop(key)


def _set(key, value):
    return lambda data: data.update({key: value})


def _shorten(*path):
    def change(data):
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = data[path[-1]][:-1]

    return change


WHERE = f"{ARTIFACTS / CONDITIONAL / MANIFEST_NAME}"
# (what is wrong, a change to the shipped conditional manifest, the error's class, a fragment of its one line)
BAD_MANIFESTS = [
    ("missing key", _drop("latent_dim"), ArtifactError, f"{WHERE} lacks 'latent_dim' or it is not a whole number"),
    ("missing drs", _drop("drs"), ArtifactError, "lacks 'drs' or it is not a JSON object"),
    ("missing sha256", _drop("sha256"), ArtifactError, "lacks 'sha256' or it is not a JSON object"),
    ("wrong type: text", _set("latent_dim", "100"), ArtifactError, "lacks 'latent_dim' or it is not a whole number"),
    ("wrong type: bool", _set("latent_dim", True), ArtifactError, "lacks 'latent_dim' or it is not a whole number"),
    ("wrong type: flag", _set("conditional", "yes"), ArtifactError, "lacks 'conditional' or it is not true or false"),
    ("wrong type: list", _set("evaluation", {}), ArtifactError, "lacks 'evaluation' or it is not a list"),
    ("wrong type: prior", _set("prior", [10]), ArtifactError, "lacks 'prior' or it is not a JSON object"),
    (
        "wrong type: gamma",
        lambda data: data["drs"].update(gamma=["high"] * len(data["drs"]["rates"])),
        ArtifactError,
        "lacks 'gamma' or it is not a list of numbers",
    ),
    ("no generator graph", lambda data: data["graphs"].pop("generator"), ArtifactError, "lists no generator graph"),
    ("format_version 2", _set("format_version", 2), ArtifactError, "has format_version 2; this runtime reads 1"),
    ("format_version 0", _set("format_version", 0), ArtifactError, "has format_version 0; this runtime reads 1"),
    ("no format_version", _drop("format_version"), ArtifactError, "lacks 'format_version'"),
    ("graph_format", _set("graph_format", "tflite"), ArtifactError, "names an unknown graph_format 'tflite'"),
    (
        "bad default spread",
        _set("sampling", {"spread": -1.0, "chosen_by": {}}),
        ArtifactError,
        "names a default spread -1.0; it must be a finite number > 0",
    ),
    ("sampling not an object", _set("sampling", 0.9), ArtifactError, "has a 'sampling' that is not a JSON object"),
    ("gamma length", _shorten("drs", "gamma"), ArtifactError, "the DRS gamma tables do not match its rates"),
    ("rates length", _shorten("drs", "rates"), ArtifactError, "the DRS gamma tables do not match its rates"),
    (
        "one digit's gamma length",
        lambda data: data["drs"]["gamma_by_digit"].__setitem__(3, data["drs"]["gamma_by_digit"][3][:-1]),
        ArtifactError,
        "the DRS gamma tables do not match its rates",
    ),
    (
        "not a gan artifact",
        _drop("artifact"),
        NotAGanExport,
        'is not a GAN export (its manifest lacks "artifact": "gan")',
    ),
    ("another artifact", _set("artifact", "classifier"), NotAGanExport, "is not a GAN export"),
    ("unknown head", lambda data: data["drs"].update(head_kind="oracle"), ArtifactError, "unknown DRS head_kind"),
    ("score head without scale", lambda data: data["drs"].pop("scale"), ArtifactError, "lacks 'scale'"),
]


@pytest.mark.parametrize("what, change, error, fragment", BAD_MANIFESTS, ids=[case[0] for case in BAD_MANIFESTS])
def test_from_json_refuses_a_broken_manifest_in_one_line(what, change, error, fragment):
    data = copy.deepcopy(SHIPPED_JSON)
    change(data)
    with pytest.raises(error) as refused:
        Manifest.from_json(data, ARTIFACTS / CONDITIONAL)
    assert fragment in str(refused.value) and "\n" not in str(refused.value)
    assert isinstance(refused.value, ArtifactError)


@pytest.mark.parametrize("data", [[], "manifest", None, 1])
def test_from_json_refuses_what_is_not_a_json_object(data):
    with pytest.raises(ArtifactError, match="is not a manifest"):
        Manifest.from_json(data, ARTIFACTS / CONDITIONAL)


def test_the_classifiers_manifest_is_not_a_gan_export():
    with pytest.raises(NotAGanExport, match="is not a GAN export"):
        read_manifest(ARTIFACTS / "mnist_classifier")


def test_read_manifest_refuses_a_missing_or_unparsable_file_in_one_line(tmp_path):
    with pytest.raises(ArtifactError, match="is not a model folder: cannot read manifest.json") as refused:
        read_manifest(tmp_path / "nowhere")
    assert "\n" not in str(refused.value)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(SHIPPED_JSON)[:300])
    with pytest.raises(ArtifactError, match="is not valid JSON") as refused:
        read_manifest(tmp_path)
    assert "\n" not in str(refused.value)


# ---------------------------------------------------------------------- evaluation records
def test_record_evaluation_replaces_the_same_measurement_and_keeps_the_others(tmp_path):
    model = copy_model(CONDITIONAL, tmp_path / "model")
    shipped = read_manifest(model).evaluation
    replaced = next(i for i, r in enumerate(shipped) if r["protocol"] == "p0" and r["drs_rate"] is None)
    again = {**shipped[replaced], "metrics": {"p0/fid": 1.25}, "seconds": 1.0}  # the same measurement, re-run
    manifest = record_evaluation(model, again)
    assert manifest.evaluation == [*shipped[:replaced], *shipped[replaced + 1 :], again]

    new_seed = {**again, "seed": 99, "metrics": {"p0/fid": 2.5}}  # another measurement: kept beside the others
    other_rate = {**again, "drs_rate": 0.5, "metrics": {"p0/fid": 3.5}}
    record_evaluation(model, new_seed)
    manifest = record_evaluation(model, other_rate)
    assert manifest.evaluation == [*shipped[:replaced], *shipped[replaced + 1 :], again, new_seed, other_rate]
    assert read_manifest(model) == manifest and (model / MANIFEST_NAME).read_text() == manifest.to_text()
    assert sorted(p.name for p in model.iterdir()) == sorted(p.name for p in (ARTIFACTS / CONDITIONAL).iterdir())
    # Everything else in the manifest is as shipped.
    expected = {**SHIPPED_JSON, "evaluation": manifest.evaluation}
    assert manifest.to_json() == expected


def test_a_record_at_spread_1_replaces_one_written_before_records_had_a_spread(fresh_model):
    model = fresh_model
    old = {
        "protocol": "p0",
        "samples": 10000,
        "seed": 0,
        "class_sampling": "uniform",
        "drs_rate": None,
        "metrics": {"p0/fid": 9.0},
    }
    for record in (old, {**old, "spread": 0.9, "metrics": {"p0/fid": 12.0}}, {**old, "spread": 1.0}):
        manifest = record_evaluation(model, record)
    assert [(r.get("spread"), r["metrics"]["p0/fid"]) for r in manifest.evaluations()] == [(1.0, 9.0)]
    assert [(r.get("spread"), r["metrics"]["p0/fid"]) for r in manifest.evaluations(spread=0.9)] == [(0.9, 12.0)]
    assert len([r for r in manifest.to_json()["evaluation"] if r["protocol"] == "p0"]) == 2


def test_record_evaluation_refuses_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ArtifactError, match="is not a model folder"):
        record_evaluation(tmp_path, {"protocol": "p0", "metrics": {}})
    assert list(tmp_path.iterdir()) == []  # no lock file left behind


# Records one P0 seed into the model folder; the manifest write is slowed down so that, without the
# lock, every process would read the manifest before any wrote it and all but one record would be lost.
_RECORD_SLOWLY = """
import sys, time
import common.manifest as contract
from evaluation.records import record_evaluation
write = contract.atomic_write_text
contract.atomic_write_text = lambda path, text: (time.sleep(0.3), write(path, text))
record_evaluation(sys.argv[1], {"protocol": "p0", "samples": 10000, "seed": int(sys.argv[2]),
                                "metrics": {"p0/fid": 10.0 + int(sys.argv[2])}})
"""


def test_parallel_records_into_one_manifest_all_survive(fresh_model):
    model = fresh_model
    seeds = range(4)
    workers = [
        subprocess.Popen([sys.executable, "-c", BLOCK_IMPORTS + _RECORD_SLOWLY, str(model), str(seed)], cwd=REPO)
        for seed in seeds
    ]
    assert [worker.wait(timeout=60) for worker in workers] == [0] * len(workers)
    recorded = json.loads((model / "manifest.json").read_text())["evaluation"]
    assert sorted(r["seed"] for r in recorded if r["protocol"] == "p0") == list(seeds)
    assert sorted(model.iterdir()) == sorted(model / p.name for p in (ARTIFACTS / CONDITIONAL).iterdir())  # no lock


# ---------------------------------------------------------------------- the default spread
def test_set_default_spread_writes_the_spread_and_how_it_was_chosen_and_nothing_else(tmp_path):
    model = copy_model(CONDITIONAL, tmp_path / "model")
    chosen_by = {"rule": "test", "reference": "none", "scores": [{"spread": 0.8, "fid": 1.0}]}
    manifest = set_default_spread(model, 0.8, chosen_by)
    assert manifest.default_spread == 0.8 and manifest.sampling.chosen_by == chosen_by
    assert manifest.to_json() == {**SHIPPED_JSON, "sampling": {"spread": 0.8, "chosen_by": chosen_by}}
    assert read_manifest(model) == manifest and (model / MANIFEST_NAME).read_text() == manifest.to_text()
    assert set_default_spread(model, 1.1, {}).to_json()["sampling"] == {"spread": 1.1, "chosen_by": {}}  # replaced
    assert read_manifest(ARTIFACTS / CONDITIONAL).default_spread == 1.0  # the shipped one: no sampling, spread 1


@pytest.mark.parametrize("spread", [0, -0.5, float("nan"), float("inf"), "wide", None, True])
def test_set_default_spread_refuses_a_bad_spread_and_writes_nothing(tmp_path, spread):
    model = copy_model(CONDITIONAL, tmp_path / "model")
    with pytest.raises(ArtifactError, match="must be a finite number > 0") as refused:
        set_default_spread(model, spread, {})
    assert "\n" not in str(refused.value)
    assert (model / MANIFEST_NAME).read_text() == (ARTIFACTS / CONDITIONAL / MANIFEST_NAME).read_text()
    assert sorted(p.name for p in model.iterdir()) == sorted(p.name for p in (ARTIFACTS / CONDITIONAL).iterdir())


@pytest.mark.parametrize(
    "sampling, fragment",
    [
        ({"spread": 0}, "names a default spread 0; it must be a finite number > 0"),
        ({"spread": "wide"}, "names a default spread 'wide'"),
        ({}, "names a default spread None"),
        ([0.9], "has a 'sampling' that is not a JSON object"),
    ],
)
def test_a_bad_default_spread_is_refused_in_one_line(tmp_path, sampling, fragment):
    model = copy_model(CONDITIONAL, tmp_path / "model")
    manifest = json.loads((model / "manifest.json").read_text())
    (model / "manifest.json").write_text(json.dumps({**manifest, "sampling": sampling}))
    result = run_cli("sample", "--model", model, "--out", tmp_path / "x.png")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(ArtifactError, match="must be a finite number"):
        set_default_spread(copy_model(CONDITIONAL, tmp_path / "pristine"), float("nan"), {})
