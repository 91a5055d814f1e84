"""The demo follows Gradio's conventions: a module-level `demo` (for `gradio demo/app.py`), Gradio's
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT variables, and only the user-facing endpoints in its public API."""

from __future__ import annotations

import os
import subprocess
import sys

import gradio as gr
from gradio_client import Client

from ..conftest import REPO, environment_variable


def test_the_module_level_demo_is_built_on_first_use(demo_artifacts):  # noqa: F811
    import demo.app

    assert "demo" not in vars(demo.app)  # importing the module loads no model
    with environment_variable("GAN_ARTIFACTS", str(demo_artifacts)):
        demo.app._module_demo.cache_clear()
        try:
            assert isinstance(demo.app.demo, gr.Blocks) and demo.app.demo is demo.app.demo
        finally:
            demo.app._module_demo.cache_clear()


def test_gradio_variables_set_the_host_and_port_defaults():
    result = subprocess.run(
        [sys.executable, "-c", "from demo.app import main; main()", "--artifacts", "/nonexistent"],
        env={**os.environ, "GRADIO_SERVER_PORT": "70000"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "GRADIO_SERVER_PORT" in result.stderr  # read, and checked like --port
    shown = subprocess.run(
        [sys.executable, "-c", "from demo.app import main; main()", "--help"],
        env=os.environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "GRADIO_SERVER_NAME" in shown.stdout and "GRADIO_SERVER_PORT" in shown.stdout


def test_the_public_api_lists_only_the_user_facing_endpoints(demo_url):  # noqa: F811
    endpoints = set(Client(demo_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/generate", "/score_drawing", "/score_upload"} <= endpoints
    assert "/select_model" not in endpoints
