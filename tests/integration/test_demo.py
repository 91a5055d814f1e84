"""The web demo: generate and score through gradio_client against a launched app, bad input, no torch.

The models are real but tiny: one epoch of `wgan_gp` and `wgan_gp_cond` on 256 MNIST images,
exported to ONNX; the MNIST classifier beside them is a nearest-centroid one written as an ONNX
graph here, so that "what digit it reads" has a right answer on real MNIST digits.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from common.errors import UserError
from common.manifest import read_manifest
from common.mnist import load_mnist_uint8
from demo.app import build_app, launch
from demo.images import MAX_UPLOAD_PIXELS, ImageRejected, read_image_file, to_mnist
from demo.service import MAX_SAMPLES, DemoError, DemoModels
from evaluation.records import set_default_spread
from runtime.classifier import CLASSIFIER_FOLDER
from runtime.model import GanModel

from ..conftest import DATA_ROOT, REPO
from .conftest import CONDITIONAL, UNCONDITIONAL, free_port

# Gradio's request queue uses pandas options that pandas 3 deprecates: not this project's to fix.
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


@pytest.fixture(scope="session")
def mnist_test():
    images, labels = load_mnist_uint8(DATA_ROOT, train=False)
    return images, labels


@pytest.fixture(scope="module")
def client(demo_url):
    return Client(demo_url, verbose=False)


def gallery_pixels(gallery) -> np.ndarray:
    return np.stack([np.asarray(Image.open(item["image"])) for item in gallery])


def png_file(path, pixels):
    Image.fromarray(pixels).save(path)
    return handle_file(str(path))


# ---------------------------------------------------------------------- generate
def test_generate_returns_the_requested_digits_and_a_seed_repeats_them(client, demo_artifacts):
    gallery, achieved, summary = client.predict(CONDITIONAL, 12, "3", 0.5, 7, 1.0, api_name="/generate")
    pixels = gallery_pixels(gallery)
    assert pixels.shape == (12, 28, 28) and pixels.dtype == np.uint8
    assert 0 < achieved <= 1 and f"achieved {achieved:.1%}" in summary and "DRS target 50%" in summary
    # Exactly what the runtime generates for the same request: nothing lost on the way (PNG, not WebP).
    expected, stats = GanModel(read_manifest(demo_artifacts / CONDITIONAL)).generate(12, seed=7, digit=3, drs_rate=0.5)
    assert np.array_equal(pixels, expected) and achieved == pytest.approx(stats.acceptance_rate)

    again = gallery_pixels(client.predict(CONDITIONAL, 12, "3", 0.5, 7, 1.0, api_name="/generate")[0])
    other_seed = gallery_pixels(client.predict(CONDITIONAL, 12, "3", 0.5, 8, 1.0, api_name="/generate")[0])
    assert np.array_equal(again, pixels) and not np.array_equal(other_seed, pixels)


def test_spread_scales_the_noise_and_drs_off_keeps_everything(client, demo_artifacts):
    gallery, achieved, summary = client.predict(UNCONDITIONAL, 5, "any", 0, 3, 0.5, api_name="/generate")
    assert achieved == 1.0 and summary == "DRS off: all 5 samples kept."
    expected, _ = GanModel(read_manifest(demo_artifacts / UNCONDITIONAL)).generate(5, seed=3, spread=0.5)
    assert np.array_equal(gallery_pixels(gallery), expected)
    wider = gallery_pixels(client.predict(UNCONDITIONAL, 5, "any", 0, 3, 1.5, api_name="/generate")[0])
    assert not np.array_equal(wider, expected)


@pytest.mark.parametrize(
    "model, count, digit, rate, seed, spread, message",
    [
        (CONDITIONAL, MAX_SAMPLES + 1, "any", 0, 0, 1.0, f"greater than maximum value {MAX_SAMPLES}"),
        (CONDITIONAL, 0, "any", 0, 0, 1.0, "less than minimum value 1"),
        (CONDITIONAL, 2.5, "any", 0, 0, 1.0, "the number of samples must be a whole number"),
        (CONDITIONAL, 4, "12", 0, 0, 1.0, "not in the list of choices"),
        (UNCONDITIONAL, 4, "3", 0, 0, 1.0, "is unconditional"),
        (CONDITIONAL, 4, "any", 1.5, 0, 1.0, "greater than maximum value 1"),
        (CONDITIONAL, 4, "any", 0, -1, 1.0, "less than minimum value 0"),
        (CONDITIONAL, 4, "any", 0, 0, 9.0, "greater than maximum value 2"),
        ("no_such_model", 4, "any", 0, 0, 1.0, "not in the list of choices"),
    ],
)
def test_bad_generate_requests_show_an_error_and_the_app_keeps_serving(
    client, model, count, digit, rate, seed, spread, message
):
    with pytest.raises(AppError, match=message):
        client.predict(model, count, digit, rate, seed, spread, api_name="/generate")
    gallery, _, _ = client.predict(CONDITIONAL, 2, "any", 0, 0, 1.0, api_name="/generate")
    assert len(gallery) == 2


def test_the_service_validates_what_the_page_also_checks(demo_artifacts):
    """Gradio's components refuse some values first; the demo's own checks hold without them."""
    models = DemoModels(demo_artifacts)
    good = dict(name=CONDITIONAL, count=4, digit="any", rate=0, seed=0, spread=1.0)
    for change, message in [
        ({"count": MAX_SAMPLES + 1}, "number of samples must be in 1..256"),
        ({"count": True}, "whole number"),
        ({"digit": "12"}, "digit must be in 0..9"),
        ({"digit": "²"}, "digit must be 'any' or 0..9"),
        ({"name": ["a", "list"]}, "no model"),
        ({"rate": 1.5}, r"rate in \(0, 1\]"),
        ({"rate": float("nan")}, r"rate in \(0, 1\]"),
        ({"seed": -1}, "seed must be in 0..4,294,967,295"),
        ({"spread": 0.0}, r"spread must be a number in \[0.1, 2\]"),
        ({"name": "nope"}, "no model 'nope'"),
    ]:
        with pytest.raises(UserError, match=message):
            models.generate(**{**good, **change})


def test_drs_stops_at_the_demo_bound_with_a_message(demo_artifacts, monkeypatch):
    monkeypatch.setattr("demo.service.MAX_PROPOSALS", 3000)  # the real bound takes seconds to reach
    models = DemoModels(demo_artifacts)
    with pytest.raises(DemoError, match="256,000,000 proposals for 256 samples, more than the 3,000 one request"):
        models.generate(CONDITIONAL, MAX_SAMPLES, "any", 1e-6, 0, 1.0)


# ---------------------------------------------------------------------- score
def test_score_an_uploaded_mnist_digit(client, demo_artifacts, mnist_test, tmp_path):
    images, labels = mnist_test
    index = int(np.flatnonzero(labels == 0)[0])
    scored, verdict, result = client.predict(
        CONDITIONAL, png_file(tmp_path / "zero.png", images[index]), "best", 0.2, api_name="/score_upload"
    )
    assert np.array_equal(np.asarray(Image.open(scored)), images[index])  # a 28x28 MNIST digit is scored as is
    scores = GanModel(read_manifest(demo_artifacts / CONDITIONAL)).score(images[index][None], drs_rate=0.2)
    assert result["realness"] == pytest.approx(float(scores.realness[0]))
    assert result["drs_acceptance_probability"] == pytest.approx(float(scores.acceptance[0]))
    assert result["scored_as_digit"] == int(scores.digit[0]) and result["drs_target_rate"] == 0.2
    assert result["classifier_digit"] == 0 and 0.1 < result["classifier_probability"] <= 1
    assert "reads a **0**" in verdict and f"{result['realness']:.3f}" in verdict


def test_a_large_dark_on_light_jpeg_is_inverted_and_framed(client, mnist_test, tmp_path):
    images, labels = mnist_test
    index = int(np.flatnonzero(labels == 1)[0])
    paper = Image.fromarray(255 - images[index]).resize((300, 420), Image.Resampling.BICUBIC)
    paper.convert("RGB").save(tmp_path / "one.jpg", quality=90)
    scored, _, result = client.predict(
        UNCONDITIONAL, handle_file(str(tmp_path / "one.jpg")), "best", 0.5, api_name="/score_upload"
    )
    pixels = np.asarray(Image.open(scored))
    assert pixels.shape == (28, 28) and pixels[[0, -1]].max() < 40 and pixels.max() > 200  # light on black
    assert result["scored_as_digit"] is None and result["classifier_digit"] == 1


def test_score_a_drawing_of_dark_strokes_on_a_transparent_canvas(client, mnist_test, tmp_path):
    images, labels = mnist_test
    index = int(np.flatnonzero(labels == 0)[0])
    ink = np.asarray(Image.fromarray(images[index]).resize((280, 280), Image.Resampling.BICUBIC))
    strokes = np.zeros((280, 280, 4), dtype=np.uint8)  # black, opaque where the digit is
    strokes[..., 3] = ink
    drawing = {"background": None, "layers": [], "composite": png_file(tmp_path / "drawing.png", strokes)}
    scored, _, result = client.predict(CONDITIONAL, drawing, "0", 0.2, api_name="/score_drawing")
    pixels = np.asarray(Image.open(scored))
    assert pixels.shape == (28, 28) and pixels[[0, -1]].max() == 0 and pixels.max() > 200
    assert result["scored_as_digit"] == 0 and result["classifier_digit"] == 0


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.png", b"not an image at all", "not a PNG or JPEG image"),
        ("notes.txt", b"not an image at all", "Invalid file type"),
    ],
)
def test_a_non_image_upload_shows_an_error_and_the_app_keeps_serving(
    client, mnist_test, tmp_path, name, content, message
):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(AppError, match=message):
        client.predict(CONDITIONAL, handle_file(str(tmp_path / name)), "best", 0.2, api_name="/score_upload")
    _, _, result = client.predict(
        CONDITIONAL, png_file(tmp_path / "digit.png", mnist_test[0][0]), "best", 0.2, api_name="/score_upload"
    )
    assert 0 <= result["realness"] <= 1


def test_scoring_refuses_an_empty_drawing_and_a_digit_for_an_unconditional_model(client, mnist_test, tmp_path):
    with pytest.raises(AppError, match="draw a digit first"):
        client.predict(
            CONDITIONAL, {"background": None, "layers": [], "composite": None}, "best", 0.2, api_name="/score_drawing"
        )
    with pytest.raises(AppError, match="is unconditional"):
        client.predict(
            UNCONDITIONAL, png_file(tmp_path / "d.png", mnist_test[0][0]), "4", 0.2, api_name="/score_upload"
        )


# ---------------------------------------------------------------------- the image rule
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the huge image, refused below
def test_the_image_rule(tmp_path, mnist_test):
    digit = mnist_test[0][0]
    assert np.array_equal(to_mnist(Image.fromarray(digit)), digit)
    assert np.array_equal(to_mnist(Image.fromarray(255 - digit)), digit)  # dark on light: inverted
    framed = to_mnist(Image.fromarray(digit).resize((112, 112), Image.Resampling.NEAREST))
    rows, cols = np.flatnonzero(framed.max(axis=1) > 32), np.flatnonzero(framed.max(axis=0) > 32)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == 20  # scaled into MNIST's 20-pixel box
    with pytest.raises(ImageRejected, match="blank"):
        to_mnist(Image.new("L", (50, 50), 255))
    Image.new("L", (10, 10)).save(tmp_path / "tiny.gif")
    with pytest.raises(ImageRejected, match="upload a PNG or JPEG"):
        read_image_file(tmp_path / "tiny.gif")
    Image.new("1", (MAX_UPLOAD_PIXELS // 4000 + 1, 4000)).save(tmp_path / "huge.png")
    with pytest.raises(ImageRejected, match="the limit is"):
        read_image_file(tmp_path / "huge.png")
    (tmp_path / "cut.png").write_bytes(png_bytes_of(digit)[:60])
    with pytest.raises(ImageRejected):
        read_image_file(tmp_path / "cut.png")


def png_bytes_of(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------- model card, classifier
def test_model_card_lists_p0_results_and_a_grid_per_model(client, demo_artifacts):
    models = DemoModels(demo_artifacts)
    assert models.default == UNCONDITIONAL  # the lowest P0 FID
    headers, rows = models.results_table()
    assert headers == [
        "model",
        "variant",
        "architecture",
        "prior",
        "labels",
        "sampling",
        "P0 fid",
        "P0 precision_k3",
        "P0 recall_k3",
        "P0 precision_k5",
        "P0 recall_k5",
    ]
    assert rows == [
        [UNCONDITIONAL, "wgan_gp", "mlp", "normal", "none", "plain, 1 seed", "95.5", "0.61", "0.52", "—", "—"],
        [
            CONDITIONAL,
            "wgan_gp_cond",
            "mlp",
            "class_gaussian",
            "digit",
            "plain, 2 seeds",
            "120 ± 1",
            "0.55 ± 0",
            "0.47 ± 0",
            "—",
            "—",
        ],
        [
            CONDITIONAL,
            "wgan_gp_cond",
            "mlp",
            "class_gaussian",
            "digit",
            "spread 0.9, 1 seed",
            "130",
            "0.6",
            "—",
            "—",
            "—",
        ],
        [CONDITIONAL, "wgan_gp_cond", "mlp", "class_gaussian", "digit", "DRS 20%, 1 seed", "110", "—", "—", "—", "—"],
    ]
    assert "P0 FID 120.25" in models.choice_label(CONDITIONAL)  # the mean over seeds, without DRS
    about, digit, spread, score_digit, grid = client.predict(CONDITIONAL, api_name="/select_model")
    assert "conditional (digit)" in about and "P0 (plain, 2 seeds): fid 120 ± 1" in about
    assert digit["interactive"] and score_digit["interactive"] and spread["value"] == 1.0
    # 10 rows (digits) x 10 columns of 28x28 with 2-pixel gaps.
    assert "one row per digit" in grid["label"] and np.asarray(Image.open(grid["value"])).shape == (302, 302)
    _, digit, _, _, _ = client.predict(UNCONDITIONAL, api_name="/select_model")
    assert not digit["interactive"] and digit["value"] == "any" and "unconditional" in digit["info"]


def test_without_a_valid_classifier_the_score_says_why(demo_artifacts, tmp_path, mnist_test):
    root = tmp_path / "artifacts"
    shutil.copytree(demo_artifacts, root)
    shutil.rmtree(root / CLASSIFIER_FOLDER)
    result = DemoModels(root).score(CONDITIONAL, mnist_test[0][0], "best", 0.2)
    assert result["classifier_digit"] is None and 0 <= result["realness"] <= 1
    assert "not shipped" in DemoModels(root).classifier_note

    shutil.copytree(demo_artifacts / CLASSIFIER_FOLDER, root / CLASSIFIER_FOLDER)
    with open(root / CLASSIFIER_FOLDER / "classifier.onnx", "ab") as graph:
        graph.write(b"\0")
    tampered = DemoModels(root)
    assert tampered.classifier is None and "does not match the sha256" in tampered.classifier_note


def test_the_spread_slider_and_grid_follow_the_model_default_spread(demo_artifacts, tmp_path):
    root = tmp_path / "artifacts"
    shutil.copytree(demo_artifacts, root)
    set_default_spread(
        root / CONDITIONAL,
        0.7,
        {"rule": "the highest min(precision, recall) at k=3", "reference": "the held-out images"},
    )
    models = DemoModels(root)
    assert "Default latent spread 0.7: the highest min(precision, recall) at k=3, against the held-out images." in (
        models.describe(CONDITIONAL)
    )
    # The card names the DRS head and how well it tells held-out real images from generated ones.
    assert "DRS head: score, held-out AUC " in models.describe(CONDITIONAL)
    assert "spread 0.7," in models.grid_caption(CONDITIONAL) and "spread 1," in models.grid_caption(UNCONDITIONAL)
    app = build_app(root)
    port = free_port()
    launch(app, port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        _, _, spread, _, _ = client.predict(CONDITIONAL, api_name="/select_model")
        assert spread["value"] == 0.7
        _, _, spread, _, _ = client.predict(UNCONDITIONAL, api_name="/select_model")
        assert spread["value"] == 1.0
    finally:
        app.close()


# ---------------------------------------------------------------------- gan-demo, torch
def run_demo_cli(*args):
    return subprocess.run(
        [sys.executable, "-c", "from demo.app import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.parametrize("folder, message", [("missing", "does not exist"), ("empty", "no ONNX models in")])
def test_gan_demo_without_models_is_a_one_line_error(tmp_path, folder, message):
    (tmp_path / "empty").mkdir()
    result = run_demo_cli("--artifacts", tmp_path / folder, "--port", free_port())
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gan-demo: error: ") and message in lines[0], result.stderr


def test_gan_demo_on_a_busy_port_is_a_one_line_error(demo_artifacts):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_demo_cli("--artifacts", demo_artifacts, "--port", busy.getsockname()[1])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gan-demo: error: cannot listen on 127.0.0.1:"), result.stderr


def test_the_demo_imports_no_torch(demo_artifacts, mnist_test):
    code = f"""
import sys
from demo.app import build_app
from demo.service import DemoModels
build_app({str(demo_artifacts)!r})
models = DemoModels({str(demo_artifacts)!r})
models.generate({CONDITIONAL!r}, 4, "2", 0.5, 0, 1.0)
models.score({CONDITIONAL!r}, __import__("numpy").zeros((28, 28), "uint8") + 255, "best", 0.2)
loaded = sorted(name for name in ("torch", "torchvision", "training", "export") if name in sys.modules)
print(",".join(loaded) or "none")
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "none"
