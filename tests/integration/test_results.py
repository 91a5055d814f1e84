"""`eval-gan results`: the README's results section comes from the manifests, and --check proves it."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from evaluation.records import set_default_spread

from ..conftest import one_line_error_check
from .conftest import CONDITIONAL, UNCONDITIONAL

assert_one_line_error = one_line_error_check("eval-gan")

FLOOR = {
    "source": "MNIST train (10,000 random images, seed 0)",
    "metrics": {
        "p0/fid": 1.5558,
        "p0/precision_k3": 0.7858,
        "p0/recall_k3": 0.8108,
        "p0/precision_k5": 0.8764,
        "p0/recall_k5": 0.8933,
    },
}


def _layout(tmp_path, demo_artifacts):
    root = tmp_path / "artifacts"
    shutil.copytree(demo_artifacts, root)
    (root / "p0_floor.json").write_text(json.dumps(FLOOR))
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n## Results\n<!-- results:start -->\nold\n<!-- results:end -->\n\n## After\n")
    return root, readme, tmp_path / "docs" / "results"


def test_results_section_is_the_manifests_numbers_and_check_notices_a_change(
    run_eval,
    demo_artifacts,
    tmp_path,
):
    root, readme, grids = _layout(tmp_path, demo_artifacts)
    options = ["--artifacts", root, "--readme", readme, "--grids", grids]
    stale = run_eval("results", "--check", *options)
    assert stale.returncode == 1 and "differ from the manifests" in stale.stderr

    written = run_eval("results", *options)
    assert written.returncode == 0, written.stderr
    text = readme.read_text()
    assert text.startswith("# Title\n\n## Results\n<!-- results:start -->\n") and text.endswith("\n## After\n")
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith((f"| {CONDITIONAL} ", f"| {UNCONDITIONAL} "))
    ]
    # The unconditional model (P0 FID 95.5) sorts first; the conditional one has two seeds, a DRS record and
    # one at latent spread 0.9.
    assert [(row[0], row[6]) for row in rows] == [
        (UNCONDITIONAL, "plain"),
        (CONDITIONAL, "plain"),
        (CONDITIONAL, "DRS 20%"),
        (CONDITIONAL, "spread 0.9"),
    ]
    assert rows[1][1:5] == ["wgan_gp_cond", "mlp", "raw", "1"] and rows[1][5].endswith(" CPU-h")  # a CPU run
    assert rows[1][7:13] == ["2", "120.25 ± 1.00", "0.550 ± 0.000", "0.470 ± 0.000", "–", "–"]
    assert rows[2][7:9] == ["1", "110.00"] and rows[0][7:9] == ["1", "95.50"]
    assert rows[3][7:10] == ["1", "130.00", "0.600"]
    assert "Real-vs-real floor (P0, MNIST train (10,000 random images, seed 0) vs MNIST test 10k): FID 1.56" in text
    assert (
        f"by `{UNCONDITIONAL}` at spread 1: not met (fid 95.500, precision_k3 0.610, recall_k3 0.520, 1 seed(s))\n"
        in text
    )
    # The template target is judged at spread 1 and, beside it, at each other recorded spread.
    assert f"by `{CONDITIONAL}` at spread 1: not met (fid 120.250" in text
    assert "CPU-h); at spread 0.9: not met (fid 130.000, precision_k3 0.600" in text
    assert "| seed 000 (local) | conditional WGAN-GP, 600 epochs | 15.15 | 0.516 | 0.67 |" in text
    for name, rows_of_grid in ((CONDITIONAL, 10), (UNCONDITIONAL, 10)):
        assert f"![{name}](docs/results/{name}.png)" in text
        assert np.asarray(Image.open(grids / f"{name}.png")).shape == (rows_of_grid * 30 + 2, 302)

    assert run_eval("results", "--check", *options).returncode == 0
    manifest = json.loads((root / CONDITIONAL / "manifest.json").read_text())
    manifest["evaluation"][0]["metrics"]["p0/fid"] += 0.5
    (root / CONDITIONAL / "manifest.json").write_text(json.dumps(manifest))
    assert run_eval("results", "--check", *options).returncode == 1
    assert readme.read_text() == text  # --check writes nothing


def test_results_needs_the_markers_and_models(run_eval, demo_artifacts, tmp_path):
    root, readme, grids = _layout(tmp_path, demo_artifacts)
    readme.write_text("# no markers\n")
    assert_one_line_error(
        run_eval("results", "--artifacts", root, "--readme", readme, "--grids", grids),
        "has no <!-- results:start --> ... <!-- results:end --> markers",
    )
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        run_eval("results", "--artifacts", tmp_path / "empty", "--readme", readme), "no exported models in"
    )
    assert readme.read_text() == "# no markers\n"


def test_a_run_trained_on_an_accelerator_is_costed_in_its_minutes_and_misses_the_cpu_budget_target(
    run_eval, demo_artifacts, tmp_path
):
    root, readme, grids = _layout(tmp_path, demo_artifacts)
    manifest_path = root / CONDITIONAL / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for record in manifest["evaluation"]:  # good enough for the template target, in a fraction of its budget
        record["metrics"].update({"p0/fid": 8.0, "p0/precision_k3": 0.8, "p0/recall_k3": 0.8})

    def results_with(device: str) -> tuple[str, str]:
        manifest["training"].update(device=device, wall_seconds=600.0, cpu_seconds=60.0)
        manifest_path.write_text(json.dumps(manifest))
        written = run_eval("results", "--artifacts", root, "--readme", readme, "--grids", grids)
        assert written.returncode == 0, written.stderr
        lines = readme.read_text().splitlines()
        return (
            next(line for line in lines if line.startswith(f"| {CONDITIONAL} ")),
            next(line for line in lines if line.startswith("- template MLP generator")),
        )

    row, target = results_with("cpu")
    assert "| 0.02 CPU-h |" in row and f": by `{CONDITIONAL}` at spread 1: met (" in target
    row, target = results_with("NVIDIA H200")
    assert "| 10 min on NVIDIA H200 |" in row and "CPU-h" not in row
    assert f"by `{CONDITIONAL}` at spread 1: not met (" in target  # the target is a CPU budget


def test_a_model_exported_with_intensity_matching_says_so_in_its_architecture(
    run_eval,
    demo_artifacts,
    tmp_path,
):
    root, readme, grids = _layout(tmp_path, demo_artifacts)
    manifest_path = root / CONDITIONAL / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["intensity_matching"] = {"method": "histogram matching", "knots": 257}
    manifest_path.write_text(json.dumps(manifest))
    assert run_eval("results", "--artifacts", root, "--readme", readme, "--grids", grids).returncode == 0
    rows = {
        line.split("|")[1].strip(): line.split("|")[3].strip()
        for line in readme.read_text().splitlines()
        if line.startswith((f"| {CONDITIONAL} ", f"| {UNCONDITIONAL} "))
    }
    assert rows == {CONDITIONAL: "mlp + intensity matching", UNCONDITIONAL: "mlp"}


def test_a_model_with_its_own_default_spread_is_reported_and_judged_there_first(
    run_eval,
    demo_artifacts,
    tmp_path,
):
    root, readme, grids = _layout(tmp_path, demo_artifacts)
    set_default_spread(root / CONDITIONAL, 0.9, {"rule": "test", "reference": "none"})
    assert run_eval("results", "--artifacts", root, "--readme", readme, "--grids", grids).returncode == 0
    text = readme.read_text()
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(f"| {CONDITIONAL} ")
    ]
    # Its default sampling first (P0 FID 130 at spread 0.9), then spread 1 with and without DRS, named as such.
    assert [(row[6], row[8]) for row in rows] == [
        ("spread 0.9 (default)", "130.00"),
        ("spread 1", "120.25 ± 1.00"),
        ("DRS 20%, spread 1", "110.00"),
    ]
    assert (
        f"by `{CONDITIONAL}` at spread 0.9 (its default): not met (fid 130.000, precision_k3 0.600, 1 seed(s)" in text
    )
    assert "CPU-h); at spread 1: not met (fid 120.250" in text
    # The grid is drawn at the default spread.
    default_grid = np.asarray(Image.open(grids / f"{CONDITIONAL}.png"))
    set_default_spread(root / CONDITIONAL, 1.0, {"rule": "test", "reference": "none"})
    assert run_eval("results", "--artifacts", root, "--readme", readme, "--grids", grids).returncode == 0
    assert not np.array_equal(np.asarray(Image.open(grids / f"{CONDITIONAL}.png")), default_grid)
