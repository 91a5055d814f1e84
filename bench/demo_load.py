"""Load on the web demo: concurrent generate requests through gradio_client; prints one JSON object.

    python bench/demo_load.py [--artifacts FOLDER] [--requests 100] [--samples 64] [--drs 0.2] [--fetch-images]

Starts `gan-demo` in its own process on a free local port, sends one warm-up request (it opens the
onnxruntime sessions), then --requests generate requests at once, one thread each, all through one
gradio_client.Client; request i uses seed i. Latency is per request, from the call to the result
(queueing included), in seconds. The result lists the gallery's image URLs; with --fetch-images each
request then also downloads its images over one keep-alive connection, one after another, as a
page must before it shows them (gradio_client's own download opens a new HTTP client per file,
which costs ~40 ms each here and would measure the client rather than the demo).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import gradio
import httpx
import onnxruntime
import typer
from gradio_client import Client
from machine import cpu_name, latency_summary, together

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _connect(url: str, server: subprocess.Popen) -> Client:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.poll() is not None:
            raise SystemExit(f"gan-demo exited with status {server.returncode}: {server.stderr.read().strip()}")
        try:
            return Client(url, verbose=False, download_files=False)
        except Exception:  # not listening yet
            if time.monotonic() > deadline:
                raise SystemExit(f"gan-demo did not answer at {url} within {START_TIMEOUT_S} s") from None
            time.sleep(0.5)


def main(
    artifacts: Path | None = typer.Option(
        None, help="folder of exported models [$GAN_ARTIFACTS or artifacts/]", show_default=False
    ),
    model: str | None = typer.Option(None, help="model name [the demo's default]", show_default=False),
    requests: int = typer.Option(100, help="concurrent generate requests"),
    samples: int = typer.Option(64, help="images per request"),
    drs: float = typer.Option(0.2, help="DRS target rate (0 = off)"),
    fetch_images: bool = typer.Option(False, help="also download every gallery image, as a page does"),
) -> None:
    port = _free_port()
    command = [sys.executable, "-c", "from demo.app import main; main()", "--port", str(port)]
    if artifacts is not None:
        command += ["--artifacts", str(artifacts)]
    server = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        client = _connect(f"http://127.0.0.1:{port}/", server)
        name = (
            model
            or client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/generate"]["parameters"][0][
                "parameter_default"
            ]
        )
        client.predict(name, samples, "any", drs, 0, 1.0, api_name="/generate")  # warm-up

        def one_request(seed: int) -> str | None:
            gallery, _, _ = client.predict(name, samples, "any", drs, seed, 1.0, api_name="/generate")
            if fetch_images:
                with httpx.Client() as connection:
                    for item in gallery:
                        connection.get(item["image"]["url"]).raise_for_status()
            return None if len(gallery) == samples else f"{len(gallery)} images instead of {samples}"

        outcomes, wall = together(requests, one_request)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        json.dumps(
            {
                "benchmark": "demo_load_generate",
                "model": name,
                "samples_per_request": samples,
                "drs_rate": drs or None,
                "images_fetched": fetch_images,
                **latency_summary(outcomes, wall),
                "machine": {
                    "cpu": cpu_name(),
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "gradio": gradio.__version__,
                    "onnxruntime": onnxruntime.__version__,
                    "providers": onnxruntime.get_available_providers(),
                },
            }
        )
    )


if __name__ == "__main__":
    typer.run(main)
