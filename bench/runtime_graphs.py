"""Plain sampling's graphs side by side on the same weights, in one run; prints one JSON object (and writes it with
--json, e.g. bench/results/runtime_graphs.json).

    python bench/runtime_graphs.py [--model wgan_gp_cond_conv_w96 --model wgan_gp_cond_mlp ...] [--repeats 3]
                                   [--cold-runs 5] [--json bench/results/runtime_graphs.json]

Per model (shipped artifacts; no training checkpoint needed):
- images/s at batch 256 (best of --repeats, after a warm-up) of: the whole generator graph (what plain sampling
  ran before, critic and DRS head included), the graph cut to its image output (plain sampling now, fp32, the
  same bytes), each precision variant the model lists, and PyTorch eager (fp32, bf16 autocast) on the same
  architecture, rebuilt by training/models.py from the ONNX initializers (their names are the state_dict keys;
  the prior's constants and BatchNorm are folded in the graph, so those keep their initial values: same work);
- achieved GFLOP/s of the image graph (multiply-adds x 2 of its Gemm / Conv / ConvTranspose nodes, counted from
  the graph's inferred shapes) against an fp32 GEMM of the size of the model's largest layer at batch 256, run by
  onnxruntime in the same process;
- DRS at a 20 % target: time for 2,048 images (conv: 256) against plain sampling's (default precision), the
  proposals it drew per image, and the ratio of the graphs' work: proposals per image x (G + D) / G, from the FLOPs
  of the image graph and the critic graph (and from the measured speeds of the whole and the cut graph); work
  outside the graphs, the same per image in both, can pull a measured ratio below it;
- cold start: `gan-runtime sample --n 100 --out grid.png --quiet` in the repository (so ./artifacts), from process
  start to exit, median of --cold-runs after one run that fills a fresh graph cache, and the peak RSS (wait4), with
  the load average before and after: the default model as gan-runtime picks it (no --model) at its default precision,
  at fp32 and at each of its variants (--precision), then each other --model; the settings take turns, run by run.
Onnxruntime and torch run in separate processes (no shared thread pools), one after the other; the cold starts last.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BATCH = 256
IMAGES = {"mlp": 8192, "conv": 1024}  # per timing
DRS_IMAGES = {"mlp": 2048, "conv": 256}  # accepted images per timing (5x as many proposals at 20 %)


def best_rate(work, images: int, repeats: int) -> float:
    work()  # warm-up: sessions, allocations
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return images / min(times)


def graph_flops(graph: bytes) -> tuple[float, tuple[int, int, int]]:
    """(FLOPs per image of the Gemm / Conv / ConvTranspose nodes, the (M, K, N) of the largest one at BATCH)."""
    import numpy as np
    import onnx

    model = onnx.load_from_string(graph)
    for value in model.graph.input:
        value.type.tensor_type.shape.dim[0].dim_value = 1
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]
    }
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total, largest = 0.0, (0.0, (0, 0, 0))
    for node in model.graph.node:
        if node.op_type not in ("Gemm", "Conv", "ConvTranspose", "MatMul") or node.input[1] not in weights:
            continue
        weight = weights[node.input[1]]
        if node.op_type in ("Gemm", "MatMul"):
            k, n = (weight[1], weight[0]) if node.op_type == "Gemm" else (weight[0], weight[1])
            macs, gemm = k * n, (BATCH, k, n)
        elif node.op_type == "Conv":
            pixels = int(np.prod(shapes[node.output[0]][2:]))
            k = int(np.prod(weight[1:]))
            macs, gemm = pixels * weight[0] * k, (BATCH * pixels, k, weight[0])
        else:  # ConvTranspose [C_in, C_out, kh, kw]: every input pixel scatters C_out * kh * kw products
            pixels = int(np.prod(shapes[node.input[0]][2:]))
            macs, gemm = pixels * int(np.prod(weight)), (BATCH * pixels, weight[0], int(np.prod(weight[1:])))
        total += 2 * macs
        largest = max(largest, (2 * macs, gemm))
    return total, largest[1]


def gemm_ceiling(shape: tuple[int, int, int], repeats: int) -> float:
    """GFLOP/s of onnxruntime's fp32 MatMul [M, K] x [K, N] (its MLAS kernels, the ones Conv and Gemm use)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    m, k, n = shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
        [helper.make_tensor("b", TensorProto.FLOAT, [k, n], np.ones(k * n, dtype=np.float32))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a = np.random.default_rng(0).standard_normal((m, k), dtype=np.float32)
    return best_rate(lambda: session.run(None, {"a": a}), 2 * m * k * n, repeats) / 1e9


def onnxruntime_worker(model_name: str, repeats: int) -> dict:
    import numpy as np

    from common.manifest import read_manifest
    from runtime.image_cache import image_graph
    from runtime.model import GanModel

    manifest = read_manifest(REPO / "artifacts" / model_name)
    kind = manifest.architecture if manifest.architecture in IMAGES else "mlp"
    images = IMAGES[kind]
    model = GanModel(manifest, "cpu", precision="fp32")
    rng = np.random.default_rng(0)
    eps = rng.standard_normal((images, manifest.latent_dim), dtype=np.float32)
    labels = rng.integers(0, max(manifest.prior.num_labels, 1), images)
    rates = {"whole_graph": best_rate(lambda: model._generate_batches(eps, labels, BATCH), images, repeats)}
    for precision in model.precisions:
        variant = GanModel(manifest, "cpu", precision=precision)
        rates[f"image_graph_{precision}"] = best_rate(
            lambda v=variant: v._generate_images(eps, labels, BATCH), images, repeats
        )
    graph = image_graph(manifest)
    flops, largest = graph_flops(graph if isinstance(graph, bytes) else graph.read_bytes())
    critic_flops, _ = graph_flops(manifest.read_graph("critic"))  # shapes only: its external weights are not needed
    ceiling = gemm_ceiling(largest, repeats)
    default = GanModel(manifest, "cpu")
    ratios, proposals = [], []
    for seed in range(repeats):  # plain and DRS alternate, so each ratio compares like moments
        started = time.perf_counter()
        default.generate(DRS_IMAGES[kind], seed=seed)
        plain = time.perf_counter() - started
        started = time.perf_counter()
        _, stats = default.generate(DRS_IMAGES[kind], seed=seed, drs_rate=0.2)
        ratios.append((time.perf_counter() - started) / plain)
        proposals.append(stats.proposals / stats.requested)
    drawn = statistics.median(proposals)
    return {
        "images_per_s": rates,
        "mflop_per_image": flops / 1e6,
        "critic_mflop_per_image": critic_flops / 1e6,
        "achieved_gflop_per_s": {name: rate * flops / 1e9 for name, rate in rates.items() if name != "whole_graph"},
        "gemm_ceiling": {"shape_mkn": largest, "gflop_per_s": ceiling},
        "drs_20_percent_vs_plain": {
            "ratio": statistics.median(ratios),
            "default_precision": default.precision,
            "proposals_per_image": drawn,
            "least_ratio_from_flops": drawn * (flops + critic_flops) / flops,
            "least_ratio_from_speeds": drawn * rates[f"image_graph_{default.precision}"] / rates["whole_graph"],
        },
    }


def torch_worker(model_name: str, repeats: int) -> dict:
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    from common.manifest import read_manifest
    from training.config import resolve
    from training.models import build_models
    from training.priors import build_prior

    manifest = read_manifest(REPO / "artifacts" / model_name)
    config = dict(manifest.training["config"])
    cfg = resolve(config.pop("variant"), config)
    prior = build_prior(cfg.prior, cfg.latent_dim, cfg.num_components, cfg.mixture_radius, cfg.mixture_sigma)
    bundle, _ = build_models(cfg, prior, use_spectral_norm=False)
    graph = onnx.load_from_string(manifest.read_graph("generator")).graph  # the critic's weights stay external
    prefix = next(
        p for p in ("generator.bundle.", "generator.") if any(t.name.startswith(p) for t in graph.initializer)
    )
    state = {
        t.name.removeprefix(prefix): torch.from_numpy(numpy_helper.to_array(t).copy())
        for t in graph.initializer
        if t.name.startswith(prefix + "network.")
    }
    # The export folds BatchNorm into the preceding layer's weights: those layers keep their initial statistics
    # here (eager still runs them, as it would for the trained model), so the FLOPs and the kernels are the same.
    loaded = bundle.network.load_state_dict({k.removeprefix("network."): v for k, v in state.items()}, strict=False)
    bundle.eval().requires_grad_(False)
    torch.set_num_threads(os.cpu_count() or 1)
    images = IMAGES[manifest.architecture if manifest.architecture in IMAGES else "mlp"]
    rng = np.random.default_rng(0)
    eps = torch.from_numpy(rng.standard_normal((images, cfg.latent_dim), dtype=np.float32))
    labels = torch.from_numpy(rng.integers(0, max(manifest.prior.num_labels, 1), images))

    def run(bf16: bool) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, images, BATCH):
                image = bundle(eps[start : start + BATCH], labels[start : start + BATCH])
                np.clip(np.rint((image.float()[:, 0].numpy() + 1) * 127.5), 0, 255).astype(np.uint8)

    return {
        "torch": torch.__version__,
        "weights_not_in_the_graph": loaded.missing_keys,
        "images_per_s": {
            "eager_fp32": best_rate(lambda: run(False), images, repeats),
            "eager_bf16_autocast": best_rate(lambda: run(True), images, repeats),
        },
    }


def cold_starts(default_name: str, default_precisions: list[str], others: list[str], runs: int) -> dict:
    """Median wall seconds and peak RSS of `gan-runtime sample --n 100 --out grid.png --quiet` per setting, after one
    run of each that fills a fresh graph cache; the settings take turns, so each sees the same load."""
    settings = {f"{default_name} (the default: no --model), default precision": []}
    settings |= {f"{default_name} (the default), --precision {p}": ["--precision", p] for p in default_precisions}
    settings |= {f"{name} (--model)": ["--model", name] for name in others}
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in settings}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, XDG_CACHE_HOME=scratch, PYTHONPATH=str(REPO))
        env.pop("GAN_ARTIFACTS", None)  # ./artifacts of the repository, as a checkout finds it
        program = str(Path(sys.executable).with_name("gan-runtime"))
        for _ in range(runs + 1):
            for label, options in settings.items():
                command = [program, "sample", "--n", "100", "--out", f"{scratch}/grid.png", "--quiet", *options]
                started = time.perf_counter()
                process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
                _, status, usage = os.wait4(process.pid, 0)
                if os.waitstatus_to_exitcode(status) != 0:
                    raise RuntimeError(f"{command} failed")
                samples[label].append((time.perf_counter() - started, usage.ru_maxrss / 1024))
    results = {}
    for label, measured in samples.items():
        warm = measured[1:]  # the first run cut the graph and filled the cache
        results[label] = {
            "first_run_s": round(measured[0][0], 3),
            "median_s": round(statistics.median(s for s, _ in warm), 3),
            "best_s": round(min(s for s, _ in warm), 3),
            "runs_s": [round(s, 3) for s, _ in warm],
            "peak_rss_mb": round(max(m for _, m in warm), 1),
        }
    return {
        "command": "gan-runtime sample --n 100 --out grid.png --quiet [options], cwd: the repository (./artifacts)",
        "runs": runs,
        "load_average_1_5_15min_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15min_after": [round(x, 2) for x in os.getloadavg()],
        "settings": results,
    }


def worker(side: str, model_name: str, repeats: int) -> dict:
    command = [sys.executable, __file__, "--worker", side, "--model", model_name, "--repeats", str(repeats)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{side} worker failed: {result.stderr[-1500:]}")
    return json.loads(result.stdout)


def main(
    model: list[str] = typer.Option(
        ["wgan_gp_cond_conv_w96", "wgan_gp_cond_mlp", "wgan_gp_mlp"], help="shipped models under artifacts/"
    ),
    repeats: int = typer.Option(3, help="timed runs per measurement (best is kept)"),
    cold_runs: int = typer.Option(7, help="cold starts per setting (after one that fills the cache)"),
    json_path: Path | None = typer.Option(None, "--json", help="also write the JSON here"),
    worker_side: str | None = typer.Option(None, "--worker", hidden=True),
) -> None:
    if worker_side is not None:
        work = onnxruntime_worker if worker_side == "onnxruntime" else torch_worker
        typer.echo(json.dumps(work(model[0], repeats)))
        return
    from machine import cpu_name

    from common.files import atomic_write_text
    from runtime.registry import best_model, shipped_models

    load_before = os.getloadavg()
    results = {}
    for name in model:
        runtime = worker("onnxruntime", name, repeats)
        eager = worker("torch", name, repeats)
        rates = runtime["images_per_s"]
        fastest = max(v for k, v in rates.items() if k.startswith("image_graph"))
        results[name] = {
            **runtime,
            "torch": eager,
            "speedup_vs_whole_graph": {k: v / rates["whole_graph"] for k, v in rates.items() if k != "whole_graph"},
            "fastest_vs_eager_bf16": fastest / eager["images_per_s"]["eager_bf16_autocast"],
        }
    default = best_model(shipped_models(REPO / "artifacts"))[0].readable  # what gan-runtime picks in the repository
    others = [name for name in model if name != default.name]
    cold = cold_starts(default.name, ["fp32", *sorted(default.variants)], others, cold_runs)
    report = {
        "benchmark": "runtime_graphs",
        "batch": BATCH,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1_5_15min_before": [round(x, 2) for x in load_before],
            "load_average_1_5_15min_after": [round(x, 2) for x in os.getloadavg()],
        },
        "models": results,
        "cold_start_sample_100": cold,
    }
    text = json.dumps(report, indent=2)
    typer.echo(text)
    if json_path is not None:
        atomic_write_text(json_path, text + "\n")


if __name__ == "__main__":
    typer.run(main)
