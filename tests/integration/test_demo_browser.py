"""The demo page in a real browser: Playwright (pip package) driving Debian's Chromium, headless."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from common.manifest import read_manifest
from demo.app import build_app, launch
from runtime.model import GanModel

from ..conftest import REPO
from .conftest import CONDITIONAL, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SAMPLES = 7
WINDOW = {"width": 1280, "height": 900}
SHIPPED_MLP = "wgan_gp_cond_mlp"  # served as shipped for the layout checks: no training needed
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (CI installs the chromium package)"),
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),  # pandas 3 deprecations inside Gradio's queue
]


def test_generate_fills_the_gallery_in_a_browser(demo_url, demo_artifacts, tmp_path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(demo_url)
            page.get_by_label("Model").click()
            page.get_by_role("option", name=CONDITIONAL, exact=False).first.click()
            page.get_by_label("Digit").click()
            page.get_by_role("option", name="4", exact=True).click()
            samples = page.get_by_label("number input for Number of samples")
            samples.fill(str(SAMPLES))
            samples.press("Enter")
            page.get_by_role("button", name="Generate", exact=True).click()
            gallery = page.locator("#samples img")
            page.wait_for_function(f"document.querySelectorAll('#samples img').length >= {SAMPLES}", timeout=60_000)
            page.wait_for_function("[...document.querySelectorAll('#samples img')].every(img => img.complete)")
            assert gallery.count() == SAMPLES
            shown = np.stack(
                [
                    np.asarray(Image.open(io.BytesIO(page.request.get(image.get_attribute("src")).body())))
                    for image in gallery.all()
                ]
            )
            assert page.get_by_text(f"DRS off: all {SAMPLES} samples kept.").is_visible()
            screenshot = tmp_path / "demo.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    # The page's choices reached the server: model, digit 4, the default seed 0 and no DRS.
    expected, _ = GanModel(read_manifest(demo_artifacts / CONDITIONAL)).generate(SAMPLES, seed=0, digit=4)
    assert np.array_equal(shown, expected)


@pytest.fixture(scope="module")
def shipped_mlp_url(tmp_path_factory):
    if not (REPO / "artifacts" / SHIPPED_MLP / "manifest.json").exists():
        pytest.skip(f"no shipped {SHIPPED_MLP} in artifacts/")
    root = tmp_path_factory.mktemp("shipped-mlp")
    (root / SHIPPED_MLP).symlink_to(REPO / "artifacts" / SHIPPED_MLP, target_is_directory=True)
    app = build_app(root, "cpu")
    port = free_port()
    launch(app, port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()


def inside(inner: dict, outer: dict, slack: float = 0.5) -> bool:
    return (
        inner["x"] >= outer["x"] - slack
        and inner["y"] >= outer["y"] - slack
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack
    )


def overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_page_layout_at_1280_px(shipped_mlp_url, tmp_path):
    """Nothing shown as an achieved rate before a generation; the gallery shows all 16 columns inside a 1280 px
    window; the Model card's caption does not cover its sample grid. Screenshots: printed paths."""
    shots = [tmp_path / "layout-generate.png", tmp_path / "layout-model-card.png"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=WINDOW)
            page.goto(shipped_mlp_url)
            page.get_by_role("button", name="Generate", exact=True).wait_for()
            achieved = page.get_by_label("Achieved acceptance rate")
            assert not achieved.is_visible()  # not "0": nothing was generated yet

            samples = page.get_by_label("number input for Number of samples")
            samples.fill("32")  # two full rows of 16
            samples.press("Enter")
            page.get_by_role("button", name="Generate", exact=True).click()
            page.wait_for_function("document.querySelectorAll('#samples img').length >= 32", timeout=60_000)
            page.wait_for_function("[...document.querySelectorAll('#samples img')].every(img => img.complete)")
            assert achieved.input_value() == "1"
            gallery = page.locator("#samples").bounding_box()
            window = {"x": 0, "y": 0, "width": WINDOW["width"], "height": 10**6}  # the page may scroll down
            boxes = [image.bounding_box() for image in page.locator("#samples img").all()]
            assert len(boxes) == 32
            for index, box in enumerate(boxes):
                assert inside(box, gallery) and inside(box, window), (index, box, gallery)
            assert len({round(box["x"]) for box in boxes}) == 16  # 16 columns, each shown
            for floating in ("[data-testid='block-label']", ".icon-button-wrapper"):  # "Samples", its buttons
                over = page.locator(f"#samples {floating}").first.bounding_box()
                assert not any(overlap(over, box) for box in boxes), (floating, over)
            page.screenshot(path=str(shots[0]), full_page=True)

            page.get_by_role("tab", name="Model card").click()
            grid = page.locator("#sample-grid img")
            grid.wait_for()
            page.wait_for_function("document.querySelector('#sample-grid img').complete")
            caption = page.locator("#sample-grid [data-testid='block-label']")
            assert "Sample grid of" in caption.inner_text()
            caption_box, grid_box = caption.bounding_box(), grid.bounding_box()
            assert not overlap(caption_box, grid_box), (caption_box, grid_box)
            assert caption_box["y"] + caption_box["height"] <= grid_box["y"] + 0.5  # above it, not floating over it
            assert inside(caption_box, page.locator("#sample-grid").bounding_box())
            page.screenshot(path=str(shots[1]), full_page=True)
        finally:
            browser.close()
    for shot in shots:
        assert shot.read_bytes().startswith(PNG_SIGNATURE)
        print(f"screenshot: {shot}")
