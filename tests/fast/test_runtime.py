"""The torch-free runtime on the shipped models: `gan-runtime` (sample, score, list, info) in subprocesses with
torch, torchvision, training and export blocked, its one-line errors, integrity, and the default model and spread.
(The runtime on freshly exported tiny models, DRS on target and scoring real MNIST digits:
tests/integration/test_runtime.py.)"""

from __future__ import annotations

import ast
import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from common.manifest import ArtifactError
from evaluation.records import record_evaluation, set_default_spread
from runtime.model import GanModel
from runtime.registry import ARTIFACTS_ENV, best_model, shipped_models

from ..conftest import REPO
from .conftest import (
    ARTIFACTS,
    CONDITIONAL,
    MIXTURE,
    SHIPPED,
    UNCONDITIONAL,
    assert_one_line_error,
    run_cli,
    run_cli_commands,
    run_python,
)

# Modules runtime/ may import: the standard library and what `pip install .` installs (pyproject.toml).
BASE_DEPENDENCIES = {"numpy", "onnxruntime", "PIL", "typer", "rich"}
CONDITIONAL_NAMES = [entry.name for entry in SHIPPED if entry.manifest.conditional]


def test_runtime_code_imports_only_the_base_install():
    """runtime/ imports the base install and common/ anywhere; common/ (the layer everything shares) does so at
    import time (common/mnist.py reads MNIST through torchvision inside the function that needs it)."""
    for package, scope in (("runtime", ast.walk), ("common", lambda tree: tree.body)):
        for path in (REPO / package).glob("*.py"):
            for node in scope(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else ([node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
                )
                for name in names:
                    top = name.split(".")[0]
                    assert top in sys.stdlib_module_names or top in {*BASE_DEPENDENCIES, "common"}, (path.name, name)


# ---------------------------------------------------------------------- gan-runtime on the shipped models
def test_sample_outputs_agree_and_score_reads_them(tmp_path):
    args = ["sample", "--model", CONDITIONAL, "--n", "12", "--seed", "9", "--digit", "7"]
    npy = run_cli(*args, "--npy", tmp_path / "x.npy")
    assert npy.returncode == 0 and npy.stderr == "", npy.stderr
    assert run_cli(*args, "--out-dir", tmp_path / "pngs").returncode == 0
    grid = run_cli(*args, "--out", tmp_path / "grid.png")
    assert grid.returncode == 0 and f"12 images from {CONDITIONAL} (digit 7, seed 9, spread 1)" in grid.stdout
    array = np.load(tmp_path / "x.npy")
    assert array.shape == (12, 28, 28) and array.dtype == np.uint8
    files = sorted((tmp_path / "pngs").iterdir())
    assert [p.name for p in files] == [f"{i:05d}.png" for i in range(12)]
    assert np.array_equal(np.stack([np.asarray(Image.open(p)) for p in files]), array)
    assert Image.open(tmp_path / "grid.png").size == (4 * 30 + 2, 3 * 30 + 2)  # 3 rows x 4 columns
    expected, _ = GanModel.load(ARTIFACTS / CONDITIONAL).generate(12, seed=9, digit=7)
    assert np.array_equal(array, expected)  # the CLI draws what the library draws

    scored = run_cli("score", "--model", CONDITIONAL, "--digit", "7", *files[:2])
    assert scored.returncode == 0, scored.stderr
    rows = scored.stdout.strip().splitlines()
    assert rows[0].split() == ["image", "digit", "realness", "logit", "accept@0.2"]
    assert len(rows) == 3 and rows[1].split()[:2] == [str(files[0]), "7"]
    best = run_cli("score", "--model", CONDITIONAL, "--drs", "0.5", files[0])
    assert best.returncode == 0 and best.stdout.splitlines()[0].endswith("accept@0.5")
    unconditional = run_cli("score", "--model", MIXTURE, files[0])
    assert unconditional.returncode == 0 and unconditional.stdout.strip().splitlines()[1].split()[1] == "-"


def test_same_seed_same_png_and_different_seeds_differ_with_drs(tmp_path):
    common = ["sample", "--model", CONDITIONAL, "--n", "16", "--drs", "0.5"]
    outputs = [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"]
    for seed, out in zip((7, 7, 8), outputs, strict=True):
        result = run_cli(*common, "--seed", seed, "--out", out)
        assert result.returncode == 0, result.stderr
        assert "DRS target 50%: accepted" in result.stdout
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    assert outputs[0].read_bytes() != outputs[2].read_bytes()


def test_a_sample_without_a_bar_imports_no_rich_and_leaves_teardown_no_garbage_to_walk(tmp_path):
    """Cold start: rich's progress bar is imported only to draw one, and gan-runtime freezes the garbage collector
    once its files are written (the interpreter's collections at exit took ~0.1-0.2 s). (Typer itself imports
    rich's console where rich is installed, in some versions: 0.13 does.)"""
    code = "import gc, sys\nfrom runtime.cli import main\ntry:\n    main()\nfinally:\n"
    code += "    print('rich.progress' in sys.modules, gc.get_freeze_count() > 0, file=sys.stderr)\n"
    result = run_python(code, "sample", "--model", CONDITIONAL, "--n", "4", "--out", tmp_path / "g.png")
    assert result.returncode == 0 and (tmp_path / "g.png").is_file(), result.stderr
    assert result.stderr.split() == ["False", "True"], result.stderr


def test_sample_without_a_model_uses_the_default_one(tmp_path):
    result = run_cli("sample", "--n", "4", "--npy", "x.npy", cwd=tmp_path)
    default, _ = best_model(shipped_models(ARTIFACTS))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert f"x.npy: 4 images from {default.name} (" in result.stdout
    assert np.load(tmp_path / "x.npy").shape == (4, 28, 28)
    plain = run_cli("sample", "--model", UNCONDITIONAL, "--n", "4", cwd=tmp_path)  # the default output: grid.png
    assert plain.returncode == 0 and f"4 images from {UNCONDITIONAL} (unconditional, seed 0" in plain.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "x.npy"]


def test_list_shows_every_shipped_model_and_marks_the_default():
    result = run_cli("list")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    listed = result.stdout.splitlines()  # each starts with the default's mark, "*" or " "
    lines, embedded = listed[: len(SHIPPED)], listed[len(SHIPPED) :]
    default, _ = best_model(shipped_models(ARTIFACTS))
    assert [line[2:].split()[0] for line in lines] == [entry.name for entry in SHIPPED]
    assert all(line.endswith("shipped]") and "$GAN_ARTIFACTS" in line for line in lines)
    # then the package's own models, which a name finds only where the artifacts folder lacks it
    assert embedded and all("[embedded, shipped, hidden by the one above]" in line for line in embedded)
    assert [line[0] for line in lines] == ["*" if entry.name == default.name else " " for entry in SHIPPED]
    for line, entry in zip(lines, SHIPPED, strict=True):
        assert entry.manifest.summary() in line and f"P0 FID {entry.manifest.p0_fid():.2f}" in line


def test_info_prints_the_verified_manifest():
    result = run_cli("info", MIXTURE)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    manifest = next(entry.manifest for entry in SHIPPED if entry.name == MIXTURE)
    summary = {"name": MIXTURE, "folder": str(ARTIFACTS / MIXTURE), "drs_head": manifest.drs.summary()}
    assert shown == {**summary, **manifest.to_json()} and shown["drs_head"].startswith("DRS head: ")
    default = json.loads(run_cli("info").stdout)
    assert default["name"] == best_model(shipped_models(ARTIFACTS))[0].name


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert all(command in result.stdout for command in ("sample", "score", "list", "info"))


# ---------------------------------------------------------------------- one-line errors, nothing written
SAMPLE_ERRORS = [
    (["--digit", "10"], ["--digit must be in 0..9"]),
    (["--digit", "-1"], ["--digit must be in 0..9"]),
    (["--digit", "3.5"], ["--digit"]),
    (
        ["--model", MIXTURE, "--digit", "3"],
        ["unconditional", f"models that take --digit: {', '.join(CONDITIONAL_NAMES)}"],
    ),
    (["--drs", "0"], ["--drs must be a target acceptance rate in (0, 1]"]),
    (["--drs", "1.5"], ["--drs must be a target acceptance rate in (0, 1]"]),
    (["--drs", "nan"], ["--drs must be a target acceptance rate in (0, 1]"]),
    (["--n", "0"], ["--n must be in 1..1,000,000"]),
    (["--n", "-3"], ["--n must be in 1..1,000,000"]),
    (["--n", "2000000"], ["--n must be in 1..1,000,000"]),
    (["--n", "many"], ["--n"]),
    (["--seed", "-1"], ["--seed must be >= 0"]),
    (["--seed", "1.5"], ["--seed"]),
    (["--spread", "0"], ["--spread must be a finite number > 0"]),
    (["--spread", "-1"], ["--spread must be a finite number > 0"]),
    (["--spread", "inf"], ["--spread must be a finite number > 0"]),
    (["--batch-size", "0"], ["--batch-size must be >= 1"]),
    (["--batch-size", "-4"], ["--batch-size must be >= 1"]),
    (["--drs", "0.5", "--max-proposals", "0"], ["--max-proposals must be >= 1"]),
    (["--model", "no_such_model"], ["no model 'no_such_model'", f"found: {', '.join(e.name for e in SHIPPED)}"]),
    (["--out", "{work}/missing/grid.png"], ["output folder", "does not exist"]),
    (["--out", "{work}/a.png", "--npy", "{work}/a.npy"], ["choose one output"]),
    (["--out-dir", "{work}"], ["is not an empty folder"]),
    (["--drs", "0.01", "--max-proposals", "50"], ["more than the bound of 50 proposals"]),
]


SCORE_ERRORS = [
    (["--digit", "10", "{work}/ok.png"], ["--digit must be in 0..9"]),
    (["--drs", "0", "{work}/ok.png"], ["--drs must be a target acceptance rate in (0, 1]"]),
    (["--drs", "2", "{work}/ok.png"], ["--drs must be a target acceptance rate in (0, 1]"]),
    (["{work}/none.png"], ["image", "does not exist"]),
    (["{work}/big.png"], ["is 32x32", "28x28"]),
    (["{work}/text.png"], ["is not an image Pillow can read"]),
    (["--model", MIXTURE, "--digit", "2", "{work}/ok.png"], ["unconditional", "models that take --digit"]),
]


SAMPLE_IDS = [" ".join(args) for args, _ in SAMPLE_ERRORS]
SCORE_IDS = [" ".join(args) for args, _ in SCORE_ERRORS]


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> dict:
    """Every command of SAMPLE_ERRORS and SCORE_ERRORS run at once (one interpreter), each in its own folder:
    {(table, id): (result, folder, the folder's files before)}, and the artifacts' files before and after."""
    commands, cases = [], []
    for table, errors, ids in (("sample", SAMPLE_ERRORS, SAMPLE_IDS), ("score", SCORE_ERRORS, SCORE_IDS)):
        for case_id, (args, _) in zip(ids, errors, strict=True):
            work = tmp_path_factory.mktemp(table)
            if table == "sample":
                (work / "keep.txt").write_text("a file the user had")
            else:
                Image.fromarray(np.zeros((28, 28), np.uint8)).save(work / "ok.png")
                Image.fromarray(np.zeros((32, 32), np.uint8)).save(work / "big.png")
                (work / "text.png").write_text("not an image")
            args = [a.format(work=work) for a in args]
            model = [] if "--model" in args else ["--model", CONDITIONAL]
            commands.append((work, [table, *model, *args]))
            cases.append(((table, case_id), work, sorted(work.iterdir())))
    shipped = sorted(ARTIFACTS.rglob("*"))
    results = run_cli_commands(commands)
    return {
        "cases": {key: (result, work, files) for (key, work, files), result in zip(cases, results, strict=True)},
        "artifacts": (shipped, sorted(ARTIFACTS.rglob("*"))),
    }


@pytest.mark.parametrize("args, fragments", SAMPLE_ERRORS, ids=SAMPLE_IDS)
def test_sample_errors_are_one_line_exit_2_and_write_nothing(refused, request, args, fragments):
    result, work, _ = refused["cases"]["sample", request.node.callspec.id]
    assert_one_line_error(result, *fragments, code=2)
    assert list(work.iterdir()) == [work / "keep.txt"]  # no grid.png, no partial files, no staging folders
    before, after = refused["artifacts"]
    assert after == before


@pytest.mark.parametrize("args, fragments", SCORE_ERRORS, ids=SCORE_IDS)
def test_score_errors_are_one_line_exit_2_and_write_nothing(refused, request, args, fragments):
    result, work, files = refused["cases"]["score", request.node.callspec.id]
    assert_one_line_error(result, *fragments, code=2)
    assert sorted(work.iterdir()) == files


def test_info_of_an_unknown_model_is_one_line():
    assert_one_line_error(run_cli("info", "nothing_here"), "no model 'nothing_here'", code=2)


# ---------------------------------------------------------------------- models, integrity
def _copy_with_evaluation(root, name, fid):
    shutil.copytree(ARTIFACTS / CONDITIONAL, root / name)
    manifest = json.loads((root / name / "manifest.json").read_text())
    # Two P0 seeds (the default model is the lowest mean) and a proxy record that must not count.
    manifest["evaluation"] = (
        []
        if fid is None
        else [
            {"protocol": "p0", "seed": 0, "metrics": {"p0/fid": fid - 1}},
            {"protocol": "p0", "seed": 1, "metrics": {"p0/fid": fid + 1}},
            {"protocol": "p0", "seed": 0, "drs_rate": 0.2, "metrics": {"p0/fid": 1.0}},
            {"protocol": "proxy", "seed": 0, "metrics": {"proxy/fid": 1.0}},
        ]
    )
    (root / name / "manifest.json").write_text(json.dumps(manifest))


def test_default_model_is_the_lowest_p0_fid(tmp_path, monkeypatch):
    for name, fid in (("a_model", 40.0), ("b_model", 25.0), ("c_model", None)):
        _copy_with_evaluation(tmp_path, name, fid)
    (tmp_path / "mnist_classifier").mkdir()  # another kind of export shares artifacts/
    (tmp_path / "mnist_classifier" / "manifest.json").write_text(json.dumps({"name": "mnist_classifier"}))
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path))
    chosen, note = best_model(shipped_models())
    assert chosen.name == "b_model" and note is None
    listing = run_cli("list")
    assert listing.returncode == 0
    lines = listing.stdout.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["a_model", "wgan_gp_cond,"],
        ["*", "b_model"],
        ["c_model", "wgan_gp_cond,"],
        ["wgan_gp_cond_mlp_convd", "wgan_gp_cond,"],  # the package's embedded model, after $GAN_ARTIFACTS
    ]
    assert "P0 FID 25.00" in lines[1]
    info = run_cli("info")
    assert info.returncode == 0 and json.loads(info.stdout)["name"] == "b_model"
    assert_one_line_error(run_cli("sample", "--model", "mnist_classifier"), "is not a GAN export")

    shutil.rmtree(tmp_path / "a_model")
    shutil.rmtree(tmp_path / "b_model")
    chosen, note = best_model(shipped_models())
    assert chosen.name == "c_model" and "no manifest records a P0 FID" in note


@pytest.mark.parametrize("damage", ["flip", "truncate"])
@pytest.mark.parametrize("file_name", ["generator.onnx", "critic.weights"])
def test_tampered_graph_is_refused_before_loading(tmp_path, damage, file_name):
    folder = tmp_path / "damaged"
    shutil.copytree(ARTIFACTS / CONDITIONAL, folder)
    graph = folder / file_name
    data = bytearray(graph.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data) if damage == "flip" else bytes(data[: len(data) // 2]))
    # Plain sampling reads the generator graph alone (its image path, cached); DRS reads the critic's weights too.
    drs = ["--drs", "0.5"] if file_name == "critic.weights" else []
    result = run_cli("sample", "--model", folder, *drs, "--out", tmp_path / "x.png")
    assert_one_line_error(result, f"{file_name} does not match the sha256")
    assert not (tmp_path / "x.png").exists()
    assert_one_line_error(run_cli("info", folder), "does not match the sha256")


def test_torchscript_artifacts_are_refused_with_a_pointer(tmp_path):
    folder = tmp_path / "ts"
    shutil.copytree(ARTIFACTS / CONDITIONAL, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "graph_format": "torchscript"}))
    with pytest.raises(ArtifactError, match="--format onnx"):
        GanModel.load(folder)


def test_the_manifest_default_spread_is_what_sampling_and_results_use(fresh_model, tmp_path):
    model = fresh_model
    set_default_spread(model, 0.6, {"rule": "test", "reference": "none"})
    gan = GanModel.load(model)
    assert gan.default_spread == 0.6
    default_images, _ = gan.generate(6, seed=1, digit=2)
    assert np.array_equal(default_images, gan.generate(6, seed=1, digit=2, spread=0.6)[0])
    assert not np.array_equal(default_images, gan.generate(6, seed=1, digit=2, spread=1.0)[0])

    sampled = run_cli(
        "sample", "--model", model, "--n", "6", "--seed", "1", "--digit", "2", "--npy", tmp_path / "a.npy"
    )
    assert sampled.returncode == 0 and "seed 1, spread 0.6)" in sampled.stdout
    assert np.array_equal(np.load(tmp_path / "a.npy"), default_images)
    plain = run_cli(
        "sample",
        "--model",
        model,
        "--n",
        "6",
        "--seed",
        "1",
        "--digit",
        "2",
        "--spread",
        "1",
        "--npy",
        tmp_path / "b.npy",
    )
    assert plain.returncode == 0 and "spread 1)" in plain.stdout
    assert not np.array_equal(np.load(tmp_path / "b.npy"), default_images)

    # The model's P0 FID (what picks the default model) is the one at its default spread.
    base = {"protocol": "p0", "samples": 10000, "seed": 0, "class_sampling": "uniform", "drs_rate": None}
    record_evaluation(model, {**base, "spread": 1.0, "metrics": {"p0/fid": 9.0}})
    manifest = record_evaluation(model, {**base, "spread": 0.6, "metrics": {"p0/fid": 7.0}})
    assert manifest.p0_fid() == 7.0 and manifest.samplings() == [(None, 0.6), (None, 1.0)]
