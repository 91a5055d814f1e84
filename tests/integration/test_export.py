"""Export: graph parity with PyTorch for every preset, DRS calibration, manifests, `export-gan`. (The DRS maths
export shares with the runtime, common/drs.py, is tested torch-free in tests/fast/test_drs.py.)"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from common.drs import EPSILON, RATE_GRID, drs_f
from common.manifest import GRAPH_IO, SHARED_WEIGHTS_NAME, sha256_hex
from export.artifact import export_run
from export.drs import ScoreHead, fit_logistic_head
from export.graphs import SERIALISERS, DrsF, build_graphs, freeze_
from export.manifest import ExportError
from training.checkpoint import load_checkpoint
from training.presets import PRESETS
from training.run import load_trained

from ..conftest import DATA_ROOT, REPO, one_line_error_check
from .conftest import single_torch_thread, train_tiny_run, untrained_models

CONV = dict(arch="conv", conv_width=8)
# Every preset as it ships (MLP), plus the conv pair with spectral norm, batch norm, conditioning and a
# deeper critic, and the template MLP generator, fed the digit, against the conv critic (as shipped).
PARITY_CASES = [(variant, {}) for variant in PRESETS] + [
    ("wgan_sn", CONV),
    ("wgan_gp_gmm_cond", dict(CONV, critic_depth=2)),
    ("wgan_gp_cond", dict(critic_arch="conv", conv_width=8, condition_generator=True)),
]
# The generator graph runs the critic too; the critic graph alone is checked once per kind of critic
# (plain, conditional, spectral-norm conv, conditional conv), since an ONNX export takes seconds.
CRITIC_PARITY = {("vanilla", "mlp"), ("wgan_gp_cond", "mlp"), ("wgan_sn", "conv"), ("wgan_gp_gmm_cond", "conv")}
HEAD = dict(scale=1.7, bias=-0.3, max_logit=10.0)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_torch_thread():
        yield


def graph_runner(graph_format: str, data: bytes):
    """A callable (first input, label) -> tuple of numpy outputs for serialised graph bytes."""
    if graph_format == "onnx":
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda x, labels: session.run(None, {names[0]: x, names[1]: labels})
    module = torch.jit.load(io.BytesIO(data))  # a file this test just wrote
    return lambda x, labels: [t.numpy() for t in module(torch.from_numpy(x), torch.from_numpy(labels))]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize(
    "variant, extra",
    PARITY_CASES,
    ids=[f"{v}-{e.get('arch', 'mlp')}-{e.get('critic_arch', 'same')}" for v, e in PARITY_CASES],
)
def test_exported_graphs_match_pytorch(variant, extra):
    cfg, generator, critic = untrained_models(variant, **extra)  # spectral norms converged by build_models
    num_labels = max(generator.prior.num_labels, 1)
    rng = np.random.default_rng(0)
    cases = []  # (eps, labels, expected images, expected logits) from the PyTorch modules as trained
    for batch in (1, 7, 1024):
        eps = rng.standard_normal((batch, cfg.latent_dim), dtype=np.float32)
        labels = rng.integers(0, num_labels, batch)
        with torch.no_grad():
            images = generator(torch.from_numpy(eps), torch.from_numpy(labels))
            logits = HEAD["scale"] * critic(images, torch.from_numpy(labels)) + HEAD["bias"]
        cases.append((eps, labels, ((images + 1) / 2).numpy(), logits.numpy()))

    head = ScoreHead(HEAD["scale"], HEAD["bias"])
    graphs = build_graphs(freeze_(generator), freeze_(critic), head, DrsF(HEAD["max_logit"]))
    if (variant, cfg.architecture) not in CRITIC_PARITY:
        del graphs["critic"]
    for graph_format, serialise in SERIALISERS.items():
        run = {
            role: graph_runner(graph_format, serialise(graph, role, cfg.latent_dim, {}))
            for role, graph in graphs.items()
        }
        for eps, labels, expected_images, expected_logits in cases:
            where = (graph_format, len(eps))
            expected_f = drs_f(expected_logits, HEAD["max_logit"])
            image, logit, f = run["generator"](eps, labels)
            assert image.shape == (len(eps), 1, 28, 28) and logit.shape == f.shape == (len(eps),)
            assert np.abs(image - expected_images).max() <= 1e-5, where
            assert np.abs(logit - expected_logits).max() <= 1e-5, where
            assert np.abs(f - expected_f).max() <= 1e-5, where
            if "critic" in run:
                critic_logit, critic_f = run["critic"](expected_images, labels)
                assert np.abs(critic_logit - expected_logits).max() <= 1e-5, where
                assert np.abs(critic_f - expected_f).max() <= 1e-5, where


def test_freezing_folds_spectral_norm_into_plain_weights():
    _, _, critic = untrained_models("wgan_sn")
    x, labels = torch.rand(5, 1, 28, 28) * 2 - 1, torch.zeros(5, dtype=torch.long)
    with torch.no_grad():
        parametrized = critic.eval()(x, labels)  # build_models converged the norms
        freeze_(critic)
        assert torch.allclose(critic(x, labels), parametrized, atol=1e-6)
    assert not any(hasattr(m, "parametrizations") for m in critic.modules())
    assert not any(p.requires_grad for p in critic.parameters()) and not critic.training
    assert torch.linalg.matrix_norm(critic.net[0].weight, 2) == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------------- DRS calibration
def test_logistic_head_recovers_the_bayes_logit():
    # Real scores ~ N(1, 1), fake ~ N(-1, 1): the true log-odds are exactly 2 s + 0.
    rng = np.random.default_rng(0)
    scale, bias = fit_logistic_head(rng.normal(1, 1, 20_000), rng.normal(-1, 1, 20_000))
    assert scale == pytest.approx(2.0, abs=0.06) and bias == pytest.approx(0.0, abs=0.04)


def test_logistic_head_balances_the_classes_whatever_their_counts():
    # Three times as many generated scores: the class-balanced fit still finds log-odds 2 s + 0, not 2 s - log 3.
    rng = np.random.default_rng(1)
    scale, bias = fit_logistic_head(rng.normal(1, 1, 10_000), rng.normal(-1, 1, 30_000))
    assert scale == pytest.approx(2.0, abs=0.08) and bias == pytest.approx(0.0, abs=0.05)


def test_logistic_head_stays_finite_when_real_and_fake_separate():
    scale, bias = fit_logistic_head(np.linspace(5, 6, 100), np.linspace(-6, -5, 100))
    assert np.isfinite([scale, bias]).all() and scale > 0


# ---------------------------------------------------------------------- export-gan
def run_export_cli(*args, **env):
    return subprocess.run(
        [sys.executable, "-c", "from export.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        env={**os.environ, "GAN_DATA_ROOT": str(DATA_ROOT), **env},
    )


assert_one_line_error = one_line_error_check("export-gan")


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("runs"), "wgan_gp_cond")


def test_export_gan_writes_checked_graphs_and_a_complete_manifest(conditional_run, tmp_path):
    evaluation = tmp_path / "eval.json"
    record = {"protocol": "p0", "samples": 10000, "seed": 0, "metrics": {"p0/fid": 123.4, "p0/precision_k3": 0.5}}
    evaluation.write_text(json.dumps({"study": "score", "records": [record], "floor": None}))  # eval-gan --json
    out = tmp_path / "artifacts" / "cond"
    result = run_export_cli(conditional_run, "--format", "onnx", "--out", out, "--evaluation", evaluation)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["out"] == str(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["critic.onnx", "critic.weights", "generator.onnx", "manifest.json"]
    assert (manifest["artifact"], manifest["variant"], manifest["architecture"], manifest["graph_format"]) == (
        "gan",
        "wgan_gp_cond",
        "mlp",
        "onnx",
    )
    assert manifest["conditional"] is True and manifest["latent_dim"] == 100
    assert manifest["prior"]["kind"] == "class_gaussian" and manifest["prior"]["num_labels"] == 10
    assert sum(manifest["prior"]["label_weights"]) == pytest.approx(1.0)
    assert manifest["evaluation"] == [record]
    assert manifest["opset"] == 18 and manifest["producers"]["torch"] == torch.__version__
    assert manifest["training"]["config"]["variant"] == "wgan_gp_cond" and manifest["training"]["epochs_completed"] == 1
    assert manifest["training"]["generator_weights"] == "raw"  # the run kept no EMA
    logged = [json.loads(line) for line in (conditional_run / "metrics.jsonl").read_text().splitlines()]
    assert manifest["training"]["cpu_seconds"] == round(logged[0]["epoch_cpu_seconds"], 1) > 0  # the cost it reports
    assert manifest["training"]["wall_seconds"] == round(logged[0]["epoch_seconds"], 1) > 0
    assert logged[0]["device"] == "cpu" == manifest["training"]["device"]  # where that cost was paid

    drs = manifest["drs"]
    assert drs["burn_in"] == 10_000 and drs["epsilon"] == EPSILON
    # The head is chosen among all kinds on the selection split and reported on a split no choice read.
    assert drs["head_kind"] in drs["candidates"] and sorted(drs["candidates"]) == [
        "classifier",
        "features",
        "finetuned",
        "score",
    ]
    assert drs["fit"]["auc"] == drs["candidates"][drs["head_kind"]]["held_out_auc"]
    best = max(c["selection_auc"] for c in drs["candidates"].values())
    assert drs["candidates"][drs["head_kind"]]["selection_auc"] == best
    fit = drs["fit"]
    assert fit["real_images"] == 750 == fit["generated_images"] and fit["selection_real_images"] == 750
    assert fit["training_real_images"] + fit["selection_real_images"] + fit["real_images"] == 5000
    assert fit["mean_logit_real"] > fit["mean_logit_generated"]
    assert drs["rates"] == list(RATE_GRID) and len(drs["gamma"]) == len(RATE_GRID)
    assert len(drs["gamma_by_digit"]) == 10 and all(len(t) == len(RATE_GRID) for t in drs["gamma_by_digit"])

    # The graphs describe themselves like the manifest, less the hashes and the evaluations (added later).
    facts = {key: value for key, value in manifest.items() if key not in ("sha256", "evaluation")}
    shared = (out / SHARED_WEIGHTS_NAME).read_bytes()
    assert manifest["sha256"][SHARED_WEIGHTS_NAME] == sha256_hex(shared)
    for role, (inputs, outputs) in GRAPH_IO.items():
        name = manifest["graphs"][role]["file"]
        data = (out / name).read_bytes()
        assert manifest["sha256"][name] == sha256_hex(data)
        model = onnx.load_from_string(data)
        onnx.checker.check_model(str(out / name), full_check=True)  # from the path, so with its external data
        # The critic's weights live once, in the shared file, and both graphs read every one of them from it.
        external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        assert {e.value for t in external for e in t.external_data if e.key == "location"} == {SHARED_WEIGHTS_NAME}
        assert sum(int(next(e.value for e in t.external_data if e.key == "length")) for t in external) > 0.9 * len(
            shared
        )
        assert [i.name for i in model.graph.input] == list(inputs)
        assert [o.name for o in model.graph.output] == list(outputs)
        for value in [*model.graph.input, *model.graph.output]:
            assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
        assert {p.key: json.loads(p.value) for p in model.metadata_props} == facts

    # The generator graph's D~ on its own samples never exceeds the burn-in maximum by much.
    session = ort.InferenceSession(str(out / "generator.onnx"), providers=["CPUExecutionProvider"])
    eps = np.random.default_rng(5).standard_normal((500, 100), dtype=np.float32)
    _, logit, f = session.run(None, {"eps": eps, "label": np.arange(500) % 10})
    assert logit.mean() < drs["max_logit"] and np.allclose(f, drs_f(logit, drs["max_logit"]), atol=1e-4)

    again = run_export_cli(conditional_run, "--out", out)
    assert_one_line_error(again, "already exists", "--force")
    assert json.loads((out / "manifest.json").read_text()) == manifest


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_carries_the_same_contract(conditional_run, tmp_path):
    out = tmp_path / "ts"
    manifest = export_run(conditional_run, "torchscript", out, DATA_ROOT, burn_in=1000, head_kind="score").to_json()
    assert sorted(p.name for p in out.iterdir()) == ["critic.pt", "generator.pt", "manifest.json"]
    assert manifest["graph_format"] == "torchscript" and manifest["opset"] is None
    files = {"metadata.json": ""}
    generator = torch.jit.load(str(out / "generator.pt"), _extra_files=files)  # written just above
    # The graphs describe themselves like the manifest, less the hashes and the evaluations (added later).
    facts = {key: value for key, value in manifest.items() if key not in ("sha256", "evaluation")}
    assert {k: json.loads(v) for k, v in json.loads(files["metadata.json"]).items()} == facts
    image, logit, f = generator(torch.randn(3, 100), torch.tensor([1, 2, 3]))
    assert image.shape == (3, 1, 28, 28) and image.min() >= 0 and image.max() <= 1 and logit.shape == f.shape == (3,)
    critic_logit, _ = torch.jit.load(str(out / "critic.pt"))(image, torch.tensor([1, 2, 3]))
    assert torch.allclose(critic_logit, logit, atol=1e-5)


def test_export_replaces_an_artifact_only_with_force(conditional_run, tmp_path):
    out = tmp_path / "cond"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(ExportError, match="already exists"):
        export_run(conditional_run, "onnx", out, DATA_ROOT, burn_in=500, head_kind="score")
    assert (out / "stale.txt").exists()
    export_run(conditional_run, "onnx", out, DATA_ROOT, burn_in=500, force=True, head_kind="score")
    assert sorted(p.name for p in out.iterdir()) == ["critic.onnx", "critic.weights", "generator.onnx", "manifest.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["cond"]  # no staging folders left behind


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["{run}", "--burn-in", "500"], ["--burn-in must be >= 10000"]),
        (["{run}", "--format", "tflite"], ["--format"]),
        (["{tmp}"], ["is not a run folder"]),
        (["{run}", "--evaluation", "{tmp}/missing.json"], ["cannot read evaluation file"]),
        (["{run}", "--evaluation", "{tmp}/bad.json"], ['a p0 record needs a numeric "p0/fid"']),
        (
            ["{run}", "--evaluation", "{tmp}/flat.json"],
            ['every record must be an object with a "protocol" and "metrics"'],
        ),
    ],
)
def test_export_gan_bad_input_is_one_line(conditional_run, tmp_path, args, fragments):
    (tmp_path / "bad.json").write_text(json.dumps([{"protocol": "p0", "metrics": {"p0/fid": "low"}}]))
    (tmp_path / "flat.json").write_text(json.dumps([{"protocol": "p0", "fid": 12.0}]))
    args = [a.format(run=conditional_run, tmp=tmp_path) for a in args]
    result = run_export_cli(*args, "--out", tmp_path / "out")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "out").exists()


def test_the_ema_generator_is_loaded_unless_the_raw_one_is_asked_for(tmp_path):
    run = train_tiny_run(tmp_path, "wgan_gp", ema_decay=0.9)
    ema, raw = load_trained(run), load_trained(run, raw_generator=True)
    assert (ema.generator_weights, raw.generator_weights) == ("ema", "raw")
    tensors, _ = load_checkpoint(run / "checkpoint.safetensors")
    for name, value in raw.generator.state_dict().items():
        assert torch.equal(value, tensors[f"generator.{name}"])
        assert torch.equal(ema.generator.state_dict()[name], tensors[f"ema.module.{name}"])
    assert any(
        not torch.equal(value, ema.generator.state_dict()[name]) for name, value in raw.generator.state_dict().items()
    )
