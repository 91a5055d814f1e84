"""Bad input across train-gan, eval-gan, export-gan, gan-runtime and the demo's service layer.

Each CLI case runs the console entry point in this process (importing torch per process would
dominate the time) and asserts: a non-zero exit, exactly one line on stderr, the expected words in
it, and no file added, changed or removed anywhere under the case's folder (no partial output).
An exception other than SystemExit escaping the entry point fails the case: that would have been a
traceback. Demo cases assert the refusal is one of the errors the page shows, on one line.

BAD_INPUTS below is the table the README's Reliability section counts.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.errors import UserError
from common.manifest import sha256_hex
from demo.images import read_image_file
from demo.service import DemoModels
from evaluation.cli import main as eval_main
from export.cli import main as export_main
from runtime.cli import main as runtime_main
from runtime.registry import ARTIFACTS_ENV
from training.cli import main as train_main

from ..conftest import DATA_ROOT
from .conftest import MODEL

ENTRY_POINTS = {"train-gan": train_main, "eval-gan": eval_main, "export-gan": export_main, "gan-runtime": runtime_main}


# ---------------------------------------------------------------------- inputs a case builds in its folder
def _copy_run(trained, work: Path) -> Path:
    return Path(shutil.copytree(trained["run"], work / "run"))


def _copy_model(trained, work: Path) -> Path:
    return Path(shutil.copytree(trained["artifacts"] / MODEL, work / "model"))


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")  # as train-gan and export-gan write them


def _edit_manifest(change):
    def build(trained, work):
        folder = _copy_model(trained, work)
        _edit_json(folder / "manifest.json", change)

    return build


def _png(work: Path, name: str, size=(28, 28), mode="L") -> Path:
    Image.new(mode, size).save(work / name)
    return work / name


class _RunsCode:
    """A pickle whose unpickling would create a marker file: loading it must never execute it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickled_checkpoint(trained, work):
    import pickle

    run = _copy_run(trained, work)
    (run / "checkpoint.safetensors").write_bytes(pickle.dumps({"weights": _RunsCode(work / "EXECUTED")}))


def _truncated_checkpoint(trained, work):
    checkpoint = _copy_run(trained, work) / "checkpoint.safetensors"
    checkpoint.write_bytes(checkpoint.read_bytes()[:4096])


def _checkpoint_with_a_lying_header(trained, work):
    checkpoint = _copy_run(trained, work) / "checkpoint.safetensors"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(struct.pack("<Q", 2**62) + data[8:])  # header length far beyond the file


def _foreign_safetensors(trained, work):
    from safetensors.numpy import save

    run = _copy_run(trained, work)
    (run / "checkpoint.safetensors").write_bytes(save({"weight": np.zeros(3, np.float32)}))  # no train-gan state


def _config_of_another_model(trained, work):
    _edit_json(_copy_run(trained, work) / "config.json", lambda c: c.update(arch="conv", conv_width=8))


def _truncated_config(trained, work):
    config = _copy_run(trained, work) / "config.json"
    config.write_text(config.read_text()[:40])


def _unknown_preset_config(trained, work):
    _edit_json(_copy_run(trained, work) / "config.json", lambda c: c.update(variant="biggan"))


def _write(name: str, content: str):
    def build(trained, work):
        (work / name).write_text(content)

    return build


def _garbage_graph_with_matching_sha256(trained, work):
    folder = _copy_model(trained, work)
    garbage = b"\x08\x07not a protobuf graph" * 10
    (folder / "generator.onnx").write_bytes(garbage)
    _edit_json(folder / "manifest.json", lambda m: m["sha256"].update({"generator.onnx": sha256_hex(garbage)}))


def _truncated_graph(trained, work):
    graph = _copy_model(trained, work) / "generator.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])


def _manifest_as_a_list(trained, work):
    (_copy_model(trained, work) / "manifest.json").write_text("[]")


def _truncated_manifest(trained, work):
    manifest = _copy_model(trained, work) / "manifest.json"
    manifest.write_text(manifest.read_text()[:200])


def _images(trained, work):
    _png(work, "wide.png", size=(27, 28))
    _png(work, "ok.png")
    _png(work, "big.png", size=(20_000, 20_000), mode="1")  # 400 megapixels in a 50 kB file
    (work / "cut.png").write_bytes((work / "ok.png").read_bytes()[:50])
    (work / "empty_pngs").mkdir()
    (work / "mixed_pngs").mkdir()
    _png(work / "mixed_pngs", "a.png")
    _png(work / "mixed_pngs", "b.png", size=(32, 32))


def _an_existing_file_and_folder(trained, work):
    (work / "taken").write_text("a file the user had")
    (work / "folder").mkdir()


# (entry point, arguments with {work}, {run}, {model} placeholders, fragments of the one line, setup)
# {run} is the fixture's pristine run folder and {model} its artifact, both read-only uses; a case
# that damages one works on a copy in its own folder ({work}/run, {work}/model).
BAD_INPUTS = [
    # train-gan: types and ranges (resolved and refused before anything is written)
    ("train-gan", ["vanilla", "--epochs", "1.5", "--dry-run"], ["--epochs"], None),
    ("train-gan", ["vanilla", "--gp-lambda", "nan", "--dry-run"], ["gp_lambda must be a finite number"], None),
    ("train-gan", ["gmgan_static", "--mixture-radius", "inf", "--dry-run"], ["mixture_radius must be a finite"], None),
    (
        "train-gan",
        ["vanilla", "--latent-dim", "4294967296", "--dry-run"],
        ["latent_dim must be <= 2,147,483,647"],
        None,
    ),
    ("train-gan", ["vanilla", "--beta1", "1.0", "--dry-run"], ["beta1 must be in [0, 1)"], None),
    ("train-gan", ["vanilla", "--seed", "-5", "--dry-run"], ["seed must be >= 0"], None),
    (
        "train-gan",
        ["vanilla", "--config", "{work}/list.yaml", "--dry-run"],
        ["must hold a table"],
        _write("list.yaml", "- batch_size\n- 64\n"),
    ),
    (
        "train-gan",
        ["vanilla", "--config", "{work}/c.json", "--dry-run"],
        ["must end in .toml, .yaml or .yml"],
        _write("c.json", "{}"),
    ),
    # train-gan: damaged run folders given to --resume
    ("train-gan", ["--resume", "{work}/run", "--epochs", "2"], ["is missing or unreadable"], _truncated_config),
    (
        "train-gan",
        ["--resume", "{work}/run", "--epochs", "2"],
        ["does not match", "config.json"],
        _config_of_another_model,
    ),
    (
        "train-gan",
        ["--resume", "{work}/run", "--epochs", "2"],
        ["corrupt or not one of ours"],
        _checkpoint_with_a_lying_header,
    ),
    ("train-gan", ["--resume", "{work}/run", "--epochs", "2"], ["corrupt or not one of ours"], _pickled_checkpoint),
    # eval-gan
    (
        "eval-gan",
        ["score", "{work}/mixed_pngs", "--protocol", "proxy", "--json", "{work}/r.json"],
        ["b.png is 32x32", "28x28"],
        _images,
    ),
    ("eval-gan", ["score", "{work}/empty_pngs", "--protocol", "proxy"], ["holds no .png images"], _images),
    ("eval-gan", ["score", "{run}", "--protocol", "fast"], ["unknown protocol 'fast'"], None),
    ("eval-gan", ["score", "{model}", "--drs-rate", "2"], ["--drs-rate must be a target acceptance rate"], None),
    ("eval-gan", ["score", "{run}", "--n", "0"], ["--n"], None),
    (
        "eval-gan",
        ["score", "{work}/run", "--protocol", "proxy", "--n", "100"],
        ["corrupt or not one of ours"],
        _truncated_checkpoint,
    ),
    ("eval-gan", ["sigma-sweep", "{run}", "--sigmas", "0.1,abc"], ["--sigmas must be comma-separated numbers"], None),
    (
        "eval-gan",
        ["score", "{work}/model", "--protocol", "proxy", "--n", "100"],
        ["is not valid JSON"],
        _truncated_manifest,
    ),
    # export-gan
    ("export-gan", ["{work}/run", "--out", "{work}/out"], ["corrupt or not one of ours"], _pickled_checkpoint),
    ("export-gan", ["{work}/run", "--out", "{work}/out"], ["corrupt or not one of ours"], _foreign_safetensors),
    ("export-gan", ["{work}/run", "--out", "{work}/out"], ["corrupt or not one of ours"], _truncated_checkpoint),
    ("export-gan", ["{work}/run", "--out", "{work}/out"], ["does not match its config.json"], _config_of_another_model),
    ("export-gan", ["{work}/run", "--out", "{work}/out"], ["unknown preset 'biggan'"], _unknown_preset_config),
    (
        "export-gan",
        ["{run}", "--out", "{work}/taken", "--force"],
        ["exists and is not a folder"],
        _an_existing_file_and_folder,
    ),
    ("export-gan", ["{run}", "--burn-in", "many", "--out", "{work}/out"], ["--burn-in"], None),
    (
        "export-gan",
        ["{run}", "--evaluation", "{work}/eval.json", "--out", "{work}/out"],
        ["evaluation"],
        _write("eval.json", "{not json"),
    ),
    # gan-runtime sample: types, ranges, outputs
    ("gan-runtime", ["sample", "--seed", "-1", "--out", "{work}/g.png"], ["--seed must be >= 0"], None),
    (
        "gan-runtime",
        ["sample", "--spread", "inf", "--out", "{work}/g.png"],
        ["spread must be a finite number > 0"],
        None,
    ),
    ("gan-runtime", ["sample", "--spread", "0", "--out", "{work}/g.png"], ["spread must be a finite number > 0"], None),
    ("gan-runtime", ["sample", "--n", "2000000", "--npy", "{work}/x.npy"], ["--n must be in 1..1,000,000"], None),
    ("gan-runtime", ["sample", "--batch-size", "0", "--out", "{work}/g.png"], ["--batch-size must be >= 1"], None),
    (
        "gan-runtime",
        ["sample", "--drs", "0.5", "--max-proposals", "0", "--out", "{work}/g.png"],
        ["--max-proposals must be >= 1"],
        None,
    ),
    (
        "gan-runtime",
        ["sample", "--drs", "nan", "--out", "{work}/g.png"],
        ["--drs must be a target acceptance rate"],
        None,
    ),
    ("gan-runtime", ["sample", "--digit", "3.5", "--out", "{work}/g.png"], ["--digit"], None),
    ("gan-runtime", ["sample", "--out", "{work}/folder"], ["is a folder, not a file"], _an_existing_file_and_folder),
    ("gan-runtime", ["sample", "--out", "{work}/../no_such_folder/g.png"], ["output folder", "does not exist"], None),
    ("gan-runtime", ["sample", "--out-dir", "{work}/taken"], ["is not an empty folder"], _an_existing_file_and_folder),
    # gan-runtime: models that escape the artifacts folder, or are damaged
    (
        "gan-runtime",
        ["sample", "--model", "../" * 20 + "etc", "--out", "{work}/g.png"],
        ["is not a model folder"],
        None,
    ),
    (
        "gan-runtime",
        ["sample", "--model", "{work}/model", "--out", "{work}/g.png"],
        ["is not valid JSON"],
        _truncated_manifest,
    ),
    (
        "gan-runtime",
        ["sample", "--model", "{work}/model", "--out", "{work}/g.png"],
        ["lacks 'latent_dim'"],
        _edit_manifest(lambda m: m.update(latent_dim="100")),
    ),
    (
        "gan-runtime",
        ["sample", "--model", "{work}/model", "--out", "{work}/g.png"],
        ["format_version 2"],
        _edit_manifest(lambda m: m.update(format_version=2)),
    ),
    (
        "gan-runtime",
        ["sample", "--model", "{work}/model", "--out", "{work}/g.png"],
        ["does not match the sha256"],
        _edit_manifest(lambda m: m["sha256"].update({"generator.onnx": "0" * 64})),
    ),
    (
        "gan-runtime",
        ["sample", "--model", "{work}/model", "--out", "{work}/g.png"],
        ["does not match the sha256"],
        _truncated_graph,
    ),
    (
        "gan-runtime",
        ["sample", "--model", "{work}/model", "--out", "{work}/g.png"],
        ["onnx cannot read generator.onnx"],  # plain sampling cuts the graph to its image first (onnx)
        _garbage_graph_with_matching_sha256,
    ),
    (
        "gan-runtime",
        ["sample", "--model", "{work}/model", "--drs", "0.5", "--out", "{work}/g.png"],
        ["onnxruntime cannot load"],  # DRS runs the whole graph
        _garbage_graph_with_matching_sha256,
    ),
    ("gan-runtime", ["info", "{work}/model"], ["is not a manifest"], _manifest_as_a_list),
    # gan-runtime score: image sizes and damaged images
    ("gan-runtime", ["score", "{work}/wide.png"], ["is 27x28", "28x28"], _images),
    ("gan-runtime", ["score", "{work}/big.png"], ["far larger than 28x28"], _images),
    ("gan-runtime", ["score", "{work}/cut.png"], ["is not an image Pillow can read"], _images),
    ("gan-runtime", ["score", "--drs", "0", "{work}/ok.png"], ["--drs must be a target acceptance rate"], _images),
]


def _case_id(case) -> str:
    entry, args, fragments, setup = case
    return f"{entry}:{setup.__name__.strip('_') if setup else ' '.join(args)[:40]}:{fragments[0][:30]}"


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("entry, args, fragments, setup", BAD_INPUTS, ids=[_case_id(c) for c in BAD_INPUTS])
def test_bad_input_is_one_line_non_zero_and_writes_nothing(
    trained, tmp_path, monkeypatch, capsys, entry, args, fragments, setup
):
    work = tmp_path / "work"
    work.mkdir()
    if setup is not None:
        setup(trained, work)
    watched = {"work": work, "run": trained["run"], "artifacts": trained["artifacts"]}
    before = {name: _tree(folder) for name, folder in watched.items()}
    monkeypatch.chdir(work)
    monkeypatch.setenv(ARTIFACTS_ENV, str(trained["artifacts"]))
    monkeypatch.setenv("GAN_DATA_ROOT", str(DATA_ROOT))
    argv = [a.format(work=work, run=trained["run"], model=trained["artifacts"] / MODEL) for a in args]
    if entry == "gan-runtime" and "--model" not in argv and argv[0] in ("sample", "score"):
        argv[1:1] = ["--model", MODEL]
    monkeypatch.setattr(sys, "argv", [entry, *argv])
    capsys.readouterr()

    with pytest.raises(SystemExit) as stopped:
        ENTRY_POINTS[entry]()
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith(f"{entry}: note:")]
    assert stopped.value.code not in (0, None), err
    assert len(lines) == 1 and lines[0].startswith(f"{entry}: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert {name: _tree(folder) for name, folder in watched.items()} == before
    assert not (work / "EXECUTED").exists()  # the pickled checkpoint was never unpickled


# ---------------------------------------------------------------------- the demo's service layer
GOOD_GENERATE = dict(name=MODEL, count=4, digit="any", rate=0, seed=0, spread=1.0)
BAD_DEMO_REQUESTS = [
    ({"count": "12"}, "whole number"),
    ({"count": 10**9}, "number of samples must be in 1..256"),
    ({"spread": float("inf")}, "spread must be a number in"),
    ({"spread": float("nan")}, "spread must be a number in"),
    ({"seed": 2**32}, "seed must be in 0..4,294,967,295"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"rate": -0.1}, r"rate in \(0, 1\]"),
    ({"digit": "3.0"}, "digit must be 'any' or 0..9"),
    ({"name": f"../{MODEL}"}, "no model"),
    ({"name": None}, "no model"),
]


@pytest.fixture(scope="module")
def demo_models(trained) -> DemoModels:
    return DemoModels(trained["artifacts"])


@pytest.mark.parametrize("change, message", BAD_DEMO_REQUESTS, ids=[str(c) for c, _ in BAD_DEMO_REQUESTS])
def test_bad_demo_requests_are_refused_in_one_line(demo_models, change, message):
    with pytest.raises(UserError, match=message) as refused:
        demo_models.generate(**{**GOOD_GENERATE, **change})
    assert "\n" not in str(refused.value)


def test_a_wrong_size_array_sent_to_score_is_refused(demo_models):
    with pytest.raises(UserError, match="28x28") as refused:
        demo_models.score(MODEL, np.zeros((32, 32), np.uint8), "best", 0.2)
    assert "\n" not in str(refused.value)


BAD_UPLOADS = [
    ("scan.tiff", lambda path: Image.new("L", (28, 28)).save(path, format="TIFF"), "upload a PNG or JPEG"),
    ("empty.png", lambda path: path.write_bytes(b""), "not a PNG or JPEG image"),
    ("cut.jpg", lambda path: path.write_bytes(_jpeg_bytes()[:300]), "damaged"),
]


def _jpeg_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, write, message", BAD_UPLOADS, ids=[name for name, _, _ in BAD_UPLOADS])
def test_bad_uploads_are_refused_in_one_line(tmp_path, name, write, message):
    write(tmp_path / name)
    with pytest.raises(UserError, match=message) as refused:
        read_image_file(tmp_path / name)
    assert "\n" not in str(refused.value)


BAD_INPUT_COUNT = len(BAD_INPUTS) + len(BAD_DEMO_REQUESTS) + 1 + len(BAD_UPLOADS)


def test_the_table_covers_at_least_30_distinct_bad_inputs_across_every_entry_point():
    assert BAD_INPUT_COUNT >= 30
    assert {entry for entry, *_ in BAD_INPUTS} == set(ENTRY_POINTS)
    assert len({(entry, tuple(args), setup) for entry, args, _, setup in BAD_INPUTS}) == len(BAD_INPUTS)
