"""The torch-free runtime: no torch, reproducible sampling, DRS on target, scoring, integrity, one-line errors."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from common.manifest import ArtifactError
from common.mnist import load_holdout_set
from evaluation.records import record_evaluation, set_default_spread
from export.artifact import export_run
from runtime.model import GanModel, InvalidRequest, RequestTooCostly
from runtime.registry import ARTIFACTS_ENV, best_model, shipped_models

from .conftest import DATA_ROOT, REPO, environment_variable, one_line_error_check
from .test_export import single_torch_thread, train_tiny_run

# Modules runtime/ may import: the standard library and what `pip install .` installs (pyproject.toml).
BASE_DEPENDENCIES = {"numpy", "onnxruntime", "PIL", "typer", "rich"}


MODELS = {"cond": "wgan_gp_cond", "mixture": "gmgan_static"}  # conditional; unconditional mixture prior


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("runs")
    with single_torch_thread():
        return {name: train_tiny_run(runs, variant) for name, variant in MODELS.items()}


@pytest.fixture(scope="module")
def artifacts(trained_runs, tmp_path_factory):
    """An artifacts folder ($GAN_ARTIFACTS) with the conditional `cond` and the mixture-prior `mixture`."""
    root = tmp_path_factory.mktemp("artifacts")
    with single_torch_thread():
        for name, run_dir in trained_runs.items():
            export_run(run_dir, "onnx", root / name, DATA_ROOT)  # the default 10k burn-in
    with environment_variable(ARTIFACTS_ENV, str(root)):
        yield root


def run_cli(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-c", "from runtime.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=dict(os.environ),
    )


assert_one_line_error = one_line_error_check("gan-runtime")


# ---------------------------------------------------------------------- no torch
BLOCK_TORCH = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "training", "export"):
            raise ImportError("runtime imported " + name)
sys.meta_path.insert(0, BlockTorch())
import runtime.cli
for args in {commands!r}:
    sys.argv = ["gan-runtime", *args]
    try:
        runtime.cli.main()
    except SystemExit as stop:
        assert stop.code == 0, (args, stop.code)
assert not any(m.split(".")[0] in ("torch", "training") for m in sys.modules)
print("torch-free")
"""


def test_runtime_never_imports_torch(artifacts, tmp_path):
    image = tmp_path / "grid.png"
    commands = [
        ["sample", "--model", "cond", "--digit", "3", "--drs", "0.5", "--n", "8", "--out", str(image)],
        ["sample", "--model", "mixture", "--n", "4", "--npy", str(tmp_path / "x.npy")],
        ["score", "--model", "cond", str(image.with_name("one.png"))],
        ["list"],
        ["info", "cond"],
    ]
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image.with_name("one.png"))
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH.format(commands=commands)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env=dict(os.environ),
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("torch-free"), result.stderr
    assert image.exists() and (tmp_path / "x.npy").exists()
    script = Path(sys.executable).with_name("gan-runtime")  # the installed console script
    help_run = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert help_run.returncode == 0 and "sample" in help_run.stdout and "score" in help_run.stdout


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


# ---------------------------------------------------------------------- sampling
def test_same_seed_same_png_and_different_seeds_differ(artifacts, tmp_path):
    common = ["sample", "--model", "cond", "--n", "16", "--drs", "0.5"]
    outputs = [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"]
    for seed, out in zip((7, 7, 8), outputs, strict=True):
        result = run_cli(*common, "--seed", seed, "--out", out)
        assert result.returncode == 0, result.stderr
        assert "DRS target 50%: accepted" in result.stdout
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    assert outputs[0].read_bytes() != outputs[2].read_bytes()


def test_generate_labels_noise_and_batches(artifacts):
    cond, mixture = GanModel.load("cond"), GanModel.load("mixture")
    images, stats = cond.generate(40, seed=1, digit=4)
    assert images.shape == (40, 28, 28) and images.dtype == np.uint8
    assert (stats.labels == 4).all() and stats.proposals == stats.accepted == 40
    _, free = cond.generate(1000, seed=1)
    assert set(free.labels) == set(range(10))  # digits drawn uniformly
    again, _ = cond.generate(40, seed=1, digit=4)
    assert np.array_equal(images, again)
    small_batches, _ = cond.generate(40, seed=1, digit=4, batch_size=7)
    assert np.abs(small_batches.astype(int) - images).max() <= 1  # same noise; float sums may round apart
    _, everything = cond.generate(40, seed=1, digit=4, drs_rate=1.0)  # rate 1: nothing rejected
    assert everything.proposals == everything.accepted == 40
    narrow, _ = cond.generate(40, seed=1, digit=4, spread=0.5)
    assert not np.array_equal(narrow, images)

    assert not mixture.conditional and mixture.num_components == 10
    _, stats = mixture.generate(2000, seed=2)
    counts = np.bincount(stats.labels, minlength=10)
    assert counts.min() > 120  # uniform mixture weights: ~200 each
    _, one = mixture.generate(5, seed=2, component=3)
    assert (one.labels == 3).all()
    eps = np.random.default_rng(2).standard_normal((2000, 100), dtype=np.float32)  # the documented noise
    raw = ort.InferenceSession(str(artifacts / "mixture" / "generator.onnx"), providers=["CPUExecutionProvider"])
    image = raw.run(None, {"eps": eps[:5], "label": stats.labels[:5]})[0]
    first, _ = mixture.generate(2000, seed=2)
    expected = np.clip(np.rint(image[:, 0].astype(np.float64) * 255), 0, 255)
    assert np.abs(first[:5] - expected).max() <= 1  # batch 5 here, 1024 there: sums may round apart


@pytest.mark.parametrize("model, digit, rate", [("cond", None, 0.2), ("cond", 3, 0.5), ("mixture", None, 0.2)])
def test_drs_hits_the_target_rate_and_keeps_the_more_realistic_samples(artifacts, model, digit, rate):
    gan = GanModel.load(model)
    n = int(3000 * rate)  # enough proposals (>= 2,000) even if acceptance ran a little high
    images, stats = gan.generate(n, seed=3, digit=digit, drs_rate=rate)
    assert images.shape == (n, 28, 28) and stats.requested == n
    assert stats.proposals >= 2000
    assert abs(stats.acceptance_rate - rate) <= 0.05, stats
    assert stats.accepted_mean_logit > stats.rejected_mean_logit
    plain, _ = gan.generate(n, seed=4, digit=digit)  # what rejection sampling draws from
    assert gan.score(images, digit=digit).logit.mean() > gan.score(plain, digit=digit).logit.mean()


def test_drs_running_max_rises_above_a_short_burn_in(artifacts, trained_runs, tmp_path):
    with single_torch_thread():
        export_run(trained_runs["cond"], "onnx", tmp_path / "short", DATA_ROOT, burn_in=20)
    short = GanModel.load(tmp_path / "short")
    _, stats = short.generate(400, seed=0, drs_rate=0.2)
    assert stats.max_logit > short.manifest.drs.max_logit
    # F is recomputed against the risen maximum, so every proposal's F drops and fewer than the
    # target are accepted (with the graph's stale F, proposals above the old maximum would all pass).
    assert stats.acceptance_rate < 0.15
    cond = GanModel.load("cond")
    _, fresh = cond.generate(200, seed=0, drs_rate=0.2)
    assert fresh.max_logit >= cond.manifest.drs.max_logit


def test_drs_refuses_past_its_bound(artifacts):  # mid-way stops: tests/test_drs_bounds.py
    with pytest.raises(RequestTooCostly, match="more than the bound of 300 proposals"):
        GanModel.load("cond").generate(200, seed=0, drs_rate=0.05, max_proposals=300)


# ---------------------------------------------------------------------- scoring
def test_score_prefers_real_digits_and_reports_digits(artifacts):
    gan = GanModel.load("cond")
    real, labels = load_holdout_set(DATA_ROOT, 5000)
    real = real[:200]
    generated, stats = gan.generate(200, seed=6)
    real_scores, fake_scores = gan.score(real), gan.score(generated)
    assert real_scores.realness.mean() > 0.5 > fake_scores.realness.mean()
    assert ((fake_scores.acceptance >= 0) & (fake_scores.acceptance <= 1)).all()
    assert set(real_scores.digit) <= set(range(10))
    as_threes = gan.score(real, digit=3)
    assert (as_threes.digit == 3).all() and (as_threes.logit <= real_scores.logit + 1e-6).all()  # best digit wins
    as_floats = gan.score(real.astype(np.float32) / 255)
    assert np.allclose(as_floats.logit, real_scores.logit)
    assert GanModel.load("mixture").score(generated).digit is None
    with pytest.raises(InvalidRequest, match="28x28"):
        gan.score(np.zeros((2, 32, 32), np.uint8))


def test_cli_outputs_agree(artifacts, tmp_path):
    args = ["sample", "--model", "cond", "--n", "12", "--seed", "9", "--digit", "7"]
    assert run_cli(*args, "--npy", tmp_path / "x.npy").returncode == 0
    assert run_cli(*args, "--out-dir", tmp_path / "pngs").returncode == 0
    grid = run_cli(*args, "--out", tmp_path / "grid.png")
    assert grid.returncode == 0 and "12 images from cond (digit 7, seed 9, spread 1)" in grid.stdout
    array = np.load(tmp_path / "x.npy")
    files = sorted((tmp_path / "pngs").iterdir())
    assert [p.name for p in files] == [f"{i:05d}.png" for i in range(12)]
    assert np.array_equal(np.stack([np.asarray(Image.open(p)) for p in files]), array)
    assert Image.open(tmp_path / "grid.png").size == (4 * 30 + 2, 3 * 30 + 2)  # 3 rows x 4 columns
    scored = run_cli("score", "--model", "cond", "--digit", "7", *files[:2])
    assert scored.returncode == 0, scored.stderr
    rows = scored.stdout.strip().splitlines()
    assert len(rows) == 3 and rows[1].split()[:2] == [str(files[0]), "7"]


# ---------------------------------------------------------------------- models, integrity, errors
def _copy_with_evaluation(artifacts, root, name, fid):
    shutil.copytree(artifacts / "cond", root / name)
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


def test_default_model_is_the_lowest_p0_fid(artifacts, tmp_path, monkeypatch):
    for name, fid in (("a_model", 40.0), ("b_model", 25.0), ("c_model", None)):
        _copy_with_evaluation(artifacts, tmp_path, name, fid)
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
def test_tampered_graph_is_refused_before_loading(artifacts, tmp_path, damage, file_name):
    folder = tmp_path / "damaged"
    shutil.copytree(artifacts / "cond", folder)
    graph = folder / file_name
    data = bytearray(graph.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data) if damage == "flip" else bytes(data[: len(data) // 2]))
    result = run_cli("sample", "--model", folder, "--out", tmp_path / "x.png")
    assert_one_line_error(result, f"{file_name} does not match the sha256")
    assert not (tmp_path / "x.png").exists()
    assert_one_line_error(run_cli("info", folder), "does not match the sha256")


def test_torchscript_artifacts_are_refused_with_a_pointer(artifacts, tmp_path):
    folder = tmp_path / "ts"
    shutil.copytree(artifacts / "cond", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "graph_format": "torchscript"}))
    with pytest.raises(ArtifactError, match="--format onnx"):
        GanModel.load(folder)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--digit", "10"], ["--digit must be in 0..9"]),
        (["--digit", "-1"], ["--digit must be in 0..9"]),
        (["--model", "mixture", "--digit", "3"], ["unconditional", "models that take --digit: cond"]),
        (["--drs", "0"], ["--drs must be a target acceptance rate in (0, 1]"]),
        (["--drs", "1.5"], ["--drs must be a target acceptance rate in (0, 1]"]),
        (["--n", "0"], ["--n must be in 1..1,000,000"]),
        (["--n", "-3"], ["--n must be in 1..1,000,000"]),
        (["--model", "no_such_model"], ["no model 'no_such_model'", "found: cond, mixture"]),
        (["--out", "{tmp}/missing/grid.png"], ["output folder", "does not exist"]),
        (["--npy", "{tmp}/missing/x.npy"], ["output folder", "does not exist"]),
        (["--out-dir", "{tmp}/missing/pngs"], ["output folder", "does not exist"]),
        (["--out", "{tmp}/a.png", "--npy", "{tmp}/a.npy"], ["choose one output"]),
        (["--out-dir", "{tmp}"], ["is not an empty folder"]),
        (["--drs", "0.01", "--max-proposals", "50"], ["10,000 proposals", "more than the bound of 50 proposals"]),
        (["--device", "tpu"], ["--device"]),
        (["--n", "many"], ["--n"]),
    ],
)
def test_sample_errors_are_one_line_and_write_nothing(artifacts, tmp_path, args, fragments):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("a file the user had")
    args = [a.format(tmp=work) for a in args]
    model = [] if "--model" in args else ["--model", "cond"]
    result = run_cli("sample", *model, *args, cwd=work)
    assert_one_line_error(result, *fragments)
    assert list(work.iterdir()) == [work / "keep.txt"]  # no grid.png, no partial files, no staging folders


def test_score_errors_are_one_line(artifacts, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(big)
    (tmp_path / "text.png").write_text("not an image")
    assert_one_line_error(run_cli("score", "--model", "cond", tmp_path / "none.png"), "does not exist")
    assert_one_line_error(run_cli("score", "--model", "cond", big), "32x32", "28x28")
    assert_one_line_error(run_cli("score", "--model", "cond", tmp_path / "text.png"), "not an image")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "ok.png")
    assert_one_line_error(
        run_cli("score", "--model", "mixture", "--digit", "2", tmp_path / "ok.png"),
        "unconditional",
        "models that take --digit: cond",
    )
    assert_one_line_error(run_cli("info", "nothing_here"), "no model 'nothing_here'")


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA")
def test_cuda_request_without_cuda_is_one_line(artifacts, tmp_path):
    result = run_cli("sample", "--model", "cond", "--device", "cuda", "--out", tmp_path / "x.png")
    assert_one_line_error(result, "no CUDA provider")


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


def test_parallel_records_into_one_manifest_all_survive(artifacts, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(artifacts / "cond", model)
    seeds = range(4)
    workers = [
        subprocess.Popen([sys.executable, "-c", _RECORD_SLOWLY, str(model), str(seed)], cwd=REPO) for seed in seeds
    ]
    assert [worker.wait(timeout=60) for worker in workers] == [0] * len(workers)
    recorded = json.loads((model / "manifest.json").read_text())["evaluation"]
    assert sorted(r["seed"] for r in recorded if r["protocol"] == "p0") == list(seeds)
    assert sorted(model.iterdir()) == sorted(model / p.name for p in (artifacts / "cond").iterdir())  # no lock file


def test_a_record_at_spread_1_replaces_one_written_before_records_had_a_spread(artifacts, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(artifacts / "cond", model)
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


def test_the_manifest_default_spread_is_what_sampling_and_results_use(artifacts, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(artifacts / "cond", model)
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


@pytest.mark.parametrize(
    "sampling, fragment",
    [
        ({"spread": 0}, "names a default spread 0; it must be a finite number > 0"),
        ({"spread": "wide"}, "names a default spread 'wide'"),
        ({}, "names a default spread None"),
        ([0.9], "has a 'sampling' that is not a JSON object"),
    ],
)
def test_a_bad_default_spread_is_refused_in_one_line(artifacts, tmp_path, sampling, fragment):
    model = tmp_path / "model"
    shutil.copytree(artifacts / "cond", model)
    manifest = json.loads((model / "manifest.json").read_text())
    (model / "manifest.json").write_text(json.dumps({**manifest, "sampling": sampling}))
    result = run_cli("sample", "--model", model, "--out", tmp_path / "x.png")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(ArtifactError, match="must be a finite number"):
        set_default_spread(artifacts / "cond", float("nan"), {})
