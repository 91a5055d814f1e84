"""`eval-gan` from the outside and evaluation during training, on tiny runs under the proxy protocol."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from common.manifest import read_manifest
from training.config import ConfigError, resolve
from training.trainer import Trainer, train

from ..conftest import DATA_ROOT, REPO, one_line_error_check
from .conftest import tiny_overrides

PROXY_KEYS = (
    "proxy/fid",
    "proxy/precision_k3",
    "proxy/recall_k3",
    "proxy/precision_k5",
    "proxy/recall_k5",
    "proxy/density_k5",
    "proxy/coverage_k5",
    "proxy/digits_covered",
    "proxy/kl_from_uniform",
)


def run_eval_process(*args):
    """The console entry point in its own process."""
    return subprocess.run(
        [sys.executable, "-c", "from evaluation.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GAN_DATA_ROOT": str(DATA_ROOT)},
        timeout=300,
    )


assert_one_line_error = one_line_error_check("eval-gan")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    """Tiny trained runs: conditional (wgan_gp_cond), static mixture with an EMA of G (gmgan_static), plain
    (vanilla)."""
    folder = tmp_path_factory.mktemp("runs")
    trained = {}
    for variant, extra in (("wgan_gp_cond", {"epochs": 2}), ("gmgan_static", {"ema_decay": 0.9}), ("vanilla", {})):
        cfg = resolve(variant, tiny_overrides(**extra))
        run_dir = folder / variant
        run_dir.mkdir()
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))  # as train-gan writes it
        train(Trainer(cfg, run_dir, data_root, quiet=True))
        trained[variant] = run_dir
    return trained


def test_training_evaluates_into_metrics_jsonl_and_plots(runs):
    records = [json.loads(line) for line in (runs["wgan_gp_cond"] / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert all(isinstance(record[key], float | int) for key in PROXY_KEYS), record
        assert 0 <= record["proxy/label_accuracy"] <= 1 and len(record["proxy/class_histogram"]) == 10
    assert (runs["wgan_gp_cond"] / "plots" / "metrics.png").stat().st_size > 0
    assert "proxy/label_accuracy" not in (runs["vanilla"] / "metrics.jsonl").read_text()  # unconditional


def test_evaluation_can_be_turned_off_and_eval_samples_is_validated(tmp_path, data_root):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = train(Trainer(resolve("vanilla", tiny_overrides(eval_protocol="none")), run_dir, data_root, quiet=True))
    assert not any(key.startswith("proxy/") for key in record) and not (run_dir / "plots" / "metrics.png").exists()
    with pytest.raises(ConfigError, match="eval_samples must be >= 6"):
        resolve("vanilla", {"eval_samples": 5})
    with pytest.raises(ConfigError, match="eval_protocol must be one of p0, proxy, none"):
        resolve("vanilla", {"eval_protocol": "fid"})


def test_score_a_run_writes_json_and_markdown_with_protocol_samples_and_seed(runs, tmp_path):
    out_json, out_md = tmp_path / "score.json", tmp_path / "score.md"
    result = run_eval_process(
        "score",
        runs["wgan_gp_cond"],
        "--protocol",
        "proxy",
        "--n",
        300,
        "--seed",
        3,
        "--class-sampling",
        "mnist",
        "--json",
        out_json,
        "--markdown",
        out_md,
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(out_json.read_text())
    record = document["records"][0]
    assert (document["study"], record["protocol"], record["samples"], record["seed"], record["class_sampling"]) == (
        "score",
        "proxy",
        300,
        3,
        "mnist",
    )
    assert set(PROXY_KEYS) <= set(record["metrics"]) and all(key.startswith("proxy/") for key in record["metrics"])
    assert out_md.read_text() == result.stdout
    assert "Protocol **proxy**" in result.stdout and "| 300 | 3 | mnist |" in result.stdout


def test_score_a_png_folder_and_the_floor_printed_beside_later_tables(run_eval, tmp_path, data_root):
    floor = run_eval("floor", "--protocol", "proxy", "--quiet")  # MNIST train 10k vs test 10k
    assert floor.returncode == 0, floor.stderr
    assert "| MNIST train (10,000 random images, seed 0) | 10000 | 0 |" in floor.stdout
    folder = tmp_path / "pngs"
    folder.mkdir()
    from common.mnist import load_mnist_uint8

    for index, image in enumerate(load_mnist_uint8(data_root, train=True)[0][:200]):
        Image.fromarray(image).save(folder / f"{index}.png")
    result = run_eval("score", folder, "--protocol", "proxy", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "| 200 | – | – |" in result.stdout  # a folder has no seed and no class sampling
    assert "Real-vs-real floor (proxy, MNIST train (10,000 random images, seed 0) vs MNIST test" in result.stdout
    real_fid = float(result.stdout.split("| – | – | ")[1].split(" |")[0])
    assert real_fid < 50  # real digits are close to the reference in the classifier's features


def test_class_sampling_study(run_eval, runs, tmp_path):
    out_json = tmp_path / "classes.json"
    result = run_eval(
        "class-sampling", runs["wgan_gp_cond"], "--protocol", "proxy", "--n", 200, "--json", out_json, "--quiet"
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(out_json.read_text())["records"]
    assert [r["class_sampling"] for r in records] == ["uniform", "mnist"]
    assert all("proxy/digit_accuracy" in r["metrics"] for r in records)
    assert_one_line_error(run_eval("class-sampling", runs["vanilla"], "--protocol", "proxy"), "draws no digits")


def test_sigma_sweep_table_and_figure(run_eval, runs, tmp_path):
    figure = tmp_path / "sweep.png"
    result = run_eval(
        "sigma-sweep",
        runs["gmgan_static"],
        "--sigmas",
        "0.15,1.0,3",
        "--protocol",
        "proxy",
        "--n",
        200,
        "--figure",
        figure,
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| 0.15", "| 1.0", "| 3.0"]
    assert Image.open(figure).size[0] > 500
    assert_one_line_error(
        run_eval("sigma-sweep", runs["vanilla"], "--protocol", "proxy"), "needs a Gaussian-mixture prior"
    )
    assert_one_line_error(run_eval("sigma-sweep", runs["gmgan_static"], "--sigmas", "0.1,x"), "--sigmas")


def test_sigma_sweep_can_study_the_raw_generator_instead_of_the_ema(run_eval, runs, tmp_path):
    fids = {}
    for weights in ("ema", "raw"):
        records = tmp_path / f"{weights}.json"
        flags = ["--raw-generator"] if weights == "raw" else []
        result = run_eval(
            "sigma-sweep",
            runs["gmgan_static"],
            "--sigmas",
            "0.5",
            "--protocol",
            "proxy",
            "--n",
            200,
            "--figure",
            tmp_path / f"{weights}.png",
            "--json",
            records,
            "--quiet",
            *flags,
        )
        assert result.returncode == 0, result.stderr
        fids[weights] = json.loads(records.read_text())["records"][0]["metrics"]["proxy/fid"]
    assert fids["ema"] != fids["raw"]  # same seed and σ: only the weights differ


def test_bad_input_is_one_line_and_exit_2(run_eval, runs, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "big").mkdir()
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(tmp_path / "big" / "a.png")
    out_json = tmp_path / "never.json"
    cases = [
        (["score", tmp_path / "empty", "--json", out_json], ["holds no .png images"]),
        (["score", tmp_path / "big", "--protocol", "proxy", "--json", out_json], ["is 32x32", "28x28"]),
        (["score", runs["vanilla"], "--protocol", "proxy", "--n", 3, "--json", out_json], ["has 3 samples", "k=5"]),
        (["score", runs["vanilla"], "--protocol", "proxy", "--class-sampling", "mnist"], ["conditional models only"]),
        (["score", tmp_path / "missing"], ["does not exist"]),
        (["score", runs["vanilla"], "--protocol", "fid50k"], ["unknown protocol 'fid50k'"]),
        (["score", runs["vanilla"], "--n", 0], ["--n"]),
        (
            ["score", runs["vanilla"], "--protocol", "proxy", "--drs-rate", 0.2],
            ["--drs-rate needs an exported artifact"],
        ),
        (["score", runs["vanilla"], "--drs-rate", 1.5], ["--drs-rate must be a target acceptance rate in (0, 1]"]),
        (["score", runs["vanilla"], "--record"], ["--record needs an exported artifact folder"]),
    ]
    for args, fragments in cases:
        assert_one_line_error(run_eval(*args), *fragments)
    assert not out_json.exists()  # no half-written report


@pytest.fixture(scope="module")
def artifact(runs, tmp_path_factory):
    """The tiny conditional run, exported."""
    from export.artifact import export_run

    folder = tmp_path_factory.mktemp("artifact") / "wgan_gp_cond"
    export_run(runs["wgan_gp_cond"], "onnx", folder, DATA_ROOT, burn_in=500, head_kind="score")
    return folder


def test_rejection_study_scores_each_rule_at_equal_counts(run_eval, artifact, runs, tmp_path):
    out_json = tmp_path / "rejection.json"
    result = run_eval(
        "rejection-study",
        artifact,
        "--protocol",
        "proxy",
        "--n",
        200,
        "--keep",
        0.5,
        "--keep",
        0.8,
        "--json",
        out_json,
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(out_json.read_text())["records"]
    assert [(r["rule"], r["keep"], r["samples"]) for r in records] == [
        ("none", 1.0, 200),
        *[
            (rule, keep, count)
            for keep, count in ((0.5, 100), (0.8, 160))
            for rule in ("random", "realism", "critic logit")
        ],
    ]
    assert all(r["proposals"] == 200 for r in records[1:])
    kept_by = {(r["rule"], r["keep"]): r["metrics"] for r in records}
    # Different rules keep different images; each scores its own.
    assert kept_by[("realism", 0.5)] != kept_by[("random", 0.5)] != kept_by[("critic logit", 0.5)]
    assert "realism, 100 of 200" in result.stdout
    for args, fragment in (
        ([artifact, "--keep", 1.0], "--keep must be a share"),
        ([artifact, "--n", 10, "--keep", 0.2], "kept (0.2 of 10) set has 2 samples"),
        ([runs["wgan_gp_cond"]], "is not an exported artifact folder"),
    ):
        assert_one_line_error(run_eval("rejection-study", *args, "--protocol", "proxy"), fragment)


def test_rejection_keeps_the_highest_scores_within_each_digit():
    from evaluation.studies import keep_highest

    scores = np.array([5.0, 1.0, 0.5, 2.0, 3.0, 7.0, 9.0, 8.0])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # Digit 1 holds three of the four highest scores, yet each digit keeps its own half.
    assert keep_highest(scores, labels, 0.5).tolist() == [0, 3, 6, 7]
    assert keep_highest(scores, None, 0.5).tolist() == [0, 5, 6, 7]
    assert keep_highest(scores, None, 0.25).tolist() == [6, 7]
    assert keep_highest(scores, labels, 0.25).tolist() == [0, 6]


def test_score_an_exported_artifact(run_eval, artifact, tmp_path):
    out_json = tmp_path / "artifact.json"
    result = run_eval("score", artifact, "--protocol", "proxy", "--n", 200, "--json", out_json, "--quiet")
    assert result.returncode == 0, result.stderr
    record = json.loads(out_json.read_text())["records"][0]
    assert (record["source"], record["samples"], record["class_sampling"]) == (str(artifact), 200, "uniform")
    assert 0 <= record["metrics"]["proxy/label_accuracy"] <= 1

    # --record adds each measurement to the manifest; the same measurement again replaces it.
    for drs_rate, spread in ((None, None), (0.5, None), (0.5, None), (None, 0.8), (None, 0.8)):
        extra = (["--drs-rate", drs_rate] if drs_rate else []) + (["--spread", spread] if spread else [])
        result = run_eval("score", artifact, "--protocol", "proxy", "--n", 200, "--record", "--quiet", *extra)
        assert result.returncode == 0, result.stderr
    manifest = read_manifest(artifact)
    recorded = manifest.to_json()["evaluation"]
    assert [(r["protocol"], r["seed"], r["samples"], r["drs_rate"], r["spread"]) for r in recorded] == [
        ("proxy", 0, 200, None, 1.0),
        ("proxy", 0, 200, 0.5, 1.0),
        ("proxy", 0, 200, None, 0.8),
    ]
    assert recorded[0]["metrics"] == record["metrics"]  # same seed, same samples, same numbers
    assert recorded[1]["metrics"] != record["metrics"]  # DRS kept other images
    assert recorded[2]["metrics"] != record["metrics"]  # narrower noise, other images
    assert manifest.samplings() == [(None, 1.0), (None, 0.8), (0.5, 1.0)]
    assert manifest.metric_summary("proxy", 0.5)["fid"].seeds == 1
    # Each setting is summarised alone: the spread record does not leak into the plain one.
    assert manifest.metric_summary("proxy")["fid"].mean == record["metrics"]["proxy/fid"]
    assert manifest.metric_summary("proxy", spread=0.8)["fid"].mean == recorded[2]["metrics"]["proxy/fid"]


def test_tune_spread_chooses_on_the_holdout_and_becomes_the_default(run_eval, artifact, tmp_path):
    from runtime.model import GanModel

    model = tmp_path / "model"
    shutil.copytree(artifact, model)
    out_json = tmp_path / "tune.json"
    # Neither candidate is 1, so the default visibly changes whichever wins.
    result = run_eval(
        "tune-spread",
        model,
        "--protocol",
        "proxy",
        "--n",
        300,
        "--spreads",
        "0.5,1.5",
        "--write",
        "--json",
        out_json,
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(out_json.read_text())["records"]
    assert [(r["spread"], r["samples"], r["reference"]) for r in records] == [
        (spread, 300, "MNIST train's last 5,000 images (held out from training)") for spread in (0.5, 1.5)
    ]
    assert "Reference: MNIST train's last 5,000 images" in result.stdout and "not its test set" in result.stdout
    balance = {r["spread"]: min(r["metrics"]["proxy/precision_k3"], r["metrics"]["proxy/recall_k3"]) for r in records}
    chosen = max(balance, key=lambda spread: (balance[spread], -abs(spread - 1)))
    assert f"{chosen:g} (chosen)" in result.stdout and f"default spread {chosen:g}" in result.stdout
    sampling = read_manifest(model).to_json()["sampling"]
    assert sampling["spread"] == chosen and sampling["chosen_by"]["samples"] == 300
    assert [(s["spread"], s["precision_k3"]) for s in sampling["chosen_by"]["scores"]] == [
        (r["spread"], r["metrics"]["proxy/precision_k3"]) for r in records
    ]

    # `eval-gan score` then samples at the default spread, and its record says so.
    result = run_eval("score", model, "--protocol", "proxy", "--n", 200, "--record", "--quiet")
    assert result.returncode == 0, result.stderr
    assert read_manifest(model).to_json()["evaluation"][-1]["spread"] == chosen
    assert GanModel.load(model).default_spread == chosen


def test_tune_spread_refuses_bad_input_and_a_model_that_saw_the_holdout(run_eval, artifact, runs, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(artifact, model)
    for args, fragment in (
        (["--spreads", "wide,narrow"], "--spreads must be comma-separated numbers"),
        (["--spreads", "0,1"], "--spreads must be a finite number > 0, got 0"),
        (["--spreads", ","], "--spreads is empty"),
    ):
        assert_one_line_error(run_eval("tune-spread", model, "--protocol", "proxy", "--n", 50, *args), fragment)
    assert_one_line_error(
        run_eval("tune-spread", runs["wgan_gp_cond"], "--protocol", "proxy"), "is not an exported artifact folder"
    )
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["training"]["config"]["holdout"] = 100
    (model / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(
        run_eval("tune-spread", model, "--protocol", "proxy", "--n", 50, "--write"), "was trained with holdout 100"
    )
    del manifest["training"]["config"]["holdout"]
    (model / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(
        run_eval("tune-spread", model, "--protocol", "proxy", "--n", 50, "--write"), "records no training holdout"
    )
    assert "sampling" not in read_manifest(model).to_json()


def test_the_balanced_spread_maximises_the_smaller_of_precision_and_recall():
    from evaluation.studies import balanced_spread

    def record(spread, precision, recall):
        return {"spread": spread, "metrics": {"p0/precision_k3": precision, "p0/recall_k3": recall}}

    assert balanced_spread([record(0.9, 0.80, 0.60), record(1.0, 0.72, 0.70), record(1.1, 0.65, 0.78)], "p0") == 1.0
    assert balanced_spread([record(0.9, 0.80, 0.71), record(1.0, 0.72, 0.70)], "p0") == 0.9
    # A tie goes to the spread nearer 1 (the least change to the trained model).
    assert balanced_spread([record(0.8, 0.70, 0.75), record(0.95, 0.75, 0.70), record(1.2, 0.7, 0.9)], "p0") == 0.95
