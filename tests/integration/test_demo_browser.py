"""The demo page in a real browser: Playwright (pip package) driving Debian's Chromium, headless."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from common.manifest import read_manifest
from runtime.model import GanModel

from .conftest import CONDITIONAL

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SAMPLES = 7
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
