"""`gan-demo`: a web page to generate and score MNIST digits with the shipped models (Gradio on runtime/, no torch)."""

from __future__ import annotations

import functools
import html
import os
import sys
from pathlib import Path
from typing import Annotated

import gradio as gr
import typer
from PIL import Image

from common.cli import run_app
from common.errors import UserError
from common.manifest import ARTIFACTS_ENV

# Absolute imports: `gradio demo/app.py` runs this file as a script.
from demo.images import MAX_UPLOAD_PIXELS, read_image_file, to_mnist
from demo.service import ANY_DIGIT, BEST_DIGIT, DIGITS, MAX_SAMPLES, MAX_SEED, SPREAD_RANGE, DemoError, DemoModels

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
QUEUE_SIZE = 100  # requests waiting beyond this are refused with "queue full" rather than piling up
# Requests run at once; onnxruntime already spreads one request over the cores.
CONCURRENCY = 2
RATE_STEP = 0.01
# 28x28 digits are shown enlarged (the scored one 7x, over Gradio's own sizing): keep their pixels
# sharp instead of blurring them.
# The gallery's columns shrink to fit (Gradio's own grid keeps them >= 100 px, so 16 overflowed a 1280 px
# window) and start below its label and buttons, which float over the first row otherwise; the sample
# grid's caption sits above the image instead of floating over it.
CSS = """
#samples img, #sample-grid img, #scored img { image-rendering: pixelated; }
#scored img { width: 196px !important; height: 196px !important; object-fit: contain !important; }
#samples .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr));
                           grid-template-rows: none; grid-auto-rows: auto; padding-top: 28px; }
#samples .thumbnail-item { aspect-ratio: 1 / 1; }
#sample-grid [data-testid="block-label"] { position: static; max-width: 100%; white-space: normal; }
"""
MAX_LOGGED = 300  # characters of a refusal's message in the server log


def log_refusal(what: str, message: str) -> None:
    """One line on the server's stderr per refused request: what was asked and why it was refused. The message
    quotes what the client sent: control characters are escaped (no forged log lines) and it is cut short."""
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
    if len(text) > MAX_LOGGED:
        text = text[: MAX_LOGGED - 3] + "..."
    print(f"gan-demo: refused {what}: {text}", file=sys.stderr, flush=True)


def _shown_to_user(handler):
    """Refusals become gr.Error, a message on the page (and one line in the server log: _log_refusals); the
    server keeps serving.

    The page renders an error's message as HTML and messages quote what the client sent: escape it.
    """

    @functools.wraps(handler)
    def wrapped(*args):
        try:
            return handler(*args)
        except UserError as error:
            raise gr.Error(html.escape(str(error), quote=False), print_exception=False) from None

    return wrapped


def _log_refusals(app: gr.Blocks) -> None:
    """Every request `app` refuses logs one line (log_refusal) and no traceback.

    A request is refused by a handler (a UserError, as gr.Error) or, before the handler runs, by Gradio's own
    checks on a component's value (a slider's range, a dropdown's choices). Those raise gr.Error with
    print_exception=True, so Gradio's queue (gradio/queueing.py, process_events) printed a traceback for each.
    Both pass through the app's process_api, wrapped here for this app alone."""
    process_api = app.process_api

    @functools.wraps(process_api)
    async def logged(*args, **kwargs):
        try:
            return await process_api(*args, **kwargs)
        except gr.Error as error:
            block_fn = kwargs.get("block_fn", args[0] if args else None)
            if isinstance(block_fn, int):
                block_fn = app.fns.get(block_fn)
            endpoint = getattr(block_fn, "api_name", None) or getattr(block_fn, "name", None) or "request"
            log_refusal(str(endpoint), html.unescape(str(error.message)))
            error.print_exception = False
            raise

    app.process_api = logged  # type: ignore[method-assign]


def rate_slider(value: float, label: str, info: str) -> gr.Slider:
    """A DRS target rate in (0, 1]; at 0 (where the slider starts there) DRS is off."""
    return gr.Slider(0 if value == 0 else RATE_STEP, 1, value=value, step=RATE_STEP, label=label, info=info)


def _digit_dropdown(conditional: bool, unset: str, label: str) -> gr.Dropdown:
    """`unset` or a digit 0..9; disabled at `unset`, with a hint, for unconditional models.

    The choices never change with the model (Gradio checks a request's value against the choices
    the page was built with); the server refuses a digit for an unconditional model.
    """
    return gr.Dropdown(
        choices=[unset, *DIGITS],
        value=unset,
        label=label,
        interactive=conditional,
        info=None if conditional else "this model is unconditional: it draws digits by itself",
    )


def spread_slider(value: float) -> gr.Slider:
    """The latent-spread slider, set to the model's default spread."""
    return gr.Slider(
        *SPREAD_RANGE,
        value=value,
        step=0.01,
        label="Latent spread",
        info="scales the noise: below 1 typical digits (quality), above 1 varied ones (diversity); "
        "starts at the model's default",
    )


generate_digit_dropdown = functools.partial(_digit_dropdown, unset=ANY_DIGIT, label="Digit")
score_digit_dropdown = functools.partial(_digit_dropdown, unset=BEST_DIGIT, label="Score as digit")


def build_app(artifacts_root: Path | None = None, device: str = "auto") -> gr.Blocks:
    """The Blocks app over the models in `artifacts_root` [$GAN_ARTIFACTS or artifacts/]."""
    # Pillow then refuses images over twice this size before decoding them, in Gradio's own
    # preprocessing of the sketchpad too (the demo's own check is MAX_UPLOAD_PIXELS itself).
    Image.MAX_IMAGE_PIXELS = MAX_UPLOAD_PIXELS
    models = DemoModels(artifacts_root, device)
    default = models.model(models.default)

    @_shown_to_user
    def select_model(name):
        model = models.model(name)
        return (
            models.describe(name),
            generate_digit_dropdown(model.conditional),
            spread_slider(model.default_spread),
            score_digit_dropdown(model.conditional),
            gr.Image(value=models.sample_grid(name), label=models.grid_caption(name)),
        )

    @_shown_to_user
    def generate(name, count, digit, rate, seed, spread):
        images, achieved, summary = models.generate(name, count, digit, rate, seed, spread)
        return list(images), achieved, summary

    def score(name, image, digit, rate):
        result = models.score(name, image, digit, rate)
        lines = [
            f"Realness (calibrated probability of a real MNIST digit): **{result['realness']:.3f}**",
            f"DRS acceptance probability at a target rate of {result['drs_target_rate']:g}: "
            f"**{result['drs_acceptance_probability']:.3f}**",
        ]
        if result["scored_as_digit"] is not None:
            lines.append(f"Scored as digit {result['scored_as_digit']}.")
        if result["classifier_digit"] is not None:
            lines.append(
                f"The MNIST classifier reads a **{result['classifier_digit']}** "
                f"(probability {result['classifier_probability']:.2f})."
            )
        else:
            lines.append(models.classifier_note)
        return image, "  \n".join(lines), result

    @_shown_to_user
    def score_drawing(name, editor, digit, rate):
        composite = editor.get("composite") if isinstance(editor, dict) else None
        if composite is None:
            raise DemoError("draw a digit first")
        return score(name, to_mnist(composite), digit, rate)

    @_shown_to_user
    def score_upload(name, path, digit, rate):
        if not path:
            raise DemoError("upload a PNG or JPEG image first")
        return score(name, read_image_file(path), digit, rate)

    headers, rows = models.results_table()
    with gr.Blocks(title="MNIST GANs", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown("# MNIST GANs\nGenerate digits with the shipped models, score your own, compare the models.")
        model = gr.Dropdown(
            choices=[(models.choice_label(name), name) for name in models.models], value=models.default, label="Model"
        )
        about = gr.Markdown(models.describe(models.default))
        with gr.Tab("Generate"):
            with gr.Row():
                digit = generate_digit_dropdown(default.conditional)
                count = gr.Slider(1, MAX_SAMPLES, value=64, step=1, label="Number of samples")
                rate = rate_slider(
                    0,
                    "DRS target acceptance rate",
                    "0 = off; 0.2 keeps the 20% of proposals the critic finds most real",
                )
            with gr.Row():
                seed = gr.Number(
                    value=0,
                    precision=0,
                    minimum=0,
                    maximum=MAX_SEED,
                    label="Seed",
                    info="same seed and settings, same digits",
                )
                spread = spread_slider(default.default_spread)
            generate_button = gr.Button("Generate", variant="primary")
            gallery = gr.Gallery(
                label="Samples",
                columns=16,
                format="png",
                object_fit="contain",
                height="auto",
                elem_id="samples",
                interactive=False,
            )
            with gr.Row():
                # Shown from the first generation on: before it, Gradio's Number would show 0 (even with
                # value=None and a placeholder), which reads as a result.
                with gr.Column(visible=False) as achieved_box:
                    achieved = gr.Number(value=None, label="Achieved acceptance rate", interactive=False)
                acceptance = gr.Markdown()
        with gr.Tab("Score"), gr.Row():
            with gr.Column():
                with gr.Tab("Draw"):
                    sketch = gr.Sketchpad(
                        label="Draw a digit (pick the brush on the left first)",
                        type="pil",
                        format="png",
                        canvas_size=(280, 280),
                        brush=gr.Brush(default_size=12, colors=["#000000"], color_mode="fixed"),
                    )
                    score_drawing_button = gr.Button("Score the drawing", variant="primary")
                with gr.Tab("Upload"):
                    upload = gr.File(
                        label=f"PNG or JPEG, up to {MAX_UPLOAD_BYTES >> 20} MB and "
                        f"{MAX_UPLOAD_PIXELS // 1_000_000} megapixels",
                        file_types=[".png", ".jpg", ".jpeg"],
                        type="filepath",
                    )
                    score_upload_button = gr.Button("Score the upload", variant="primary")
                score_digit = score_digit_dropdown(default.conditional)
                score_rate = rate_slider(0.2, "DRS target rate", "the rate the acceptance probability is computed at")
            with gr.Column():
                scored = gr.Image(
                    label="What the model scores (28x28, light digit on black)",
                    elem_id="scored",
                    interactive=False,
                    format="png",
                    height=224,
                )
                verdict = gr.Markdown()
                details = gr.JSON(label="Scores")
        with gr.Tab("Model card"):
            gr.Markdown(
                "Results of the shipped models under protocol P0 (FID, precision and recall on 10,000 "
                "samples against the 10,000 MNIST test images), as recorded in their manifests."
            )
            gr.Dataframe(value=rows, headers=headers, interactive=False, label="P0 results")
            if models.skipped:
                gr.Markdown("Not served: " + "; ".join(f"{name} ({why})" for name, why in models.skipped.items()))
            grid = gr.Image(
                value=models.sample_grid(models.default),
                label=models.grid_caption(models.default),
                elem_id="sample-grid",
                interactive=False,
                format="png",
            )

        model.change(
            select_model,
            model,
            [about, digit, spread, score_digit, grid],
            api_name="select_model",
            api_visibility="undocumented",
        )
        generate_button.click(
            generate, [model, count, digit, rate, seed, spread], [gallery, achieved, acceptance], api_name="generate"
        ).success(lambda: gr.Column(visible=True), None, achieved_box, api_visibility="private", queue=False)
        score_outputs = [scored, verdict, details]
        score_drawing_button.click(
            score_drawing, [model, sketch, score_digit, score_rate], score_outputs, api_name="score_drawing"
        )
        score_upload_button.click(
            score_upload, [model, upload, score_digit, score_rate], score_outputs, api_name="score_upload"
        )
    _log_refusals(app)
    return app


HOST_ENV, PORT_ENV = "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"  # Gradio's own variables, honoured here too


def launch(app: gr.Blocks, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, block: bool = True) -> None:
    """Serve `app`; with block=False return once it listens (tests, benchmarks: app.close() stops it)."""
    app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    where = dict(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block)
    # our styles; refusals as one line on the page, never a traceback
    app.launch(max_file_size=MAX_UPLOAD_BYTES, css=CSS, ssr_mode=False, show_error=False, **where)


cli = typer.Typer(add_completion=False, rich_markup_mode=None)


HOST_HELP = f"address to listen on (0.0.0.0: every interface) [${HOST_ENV}, else {DEFAULT_HOST}]"
PORT_HELP = f"TCP port [${PORT_ENV}, else {DEFAULT_PORT}]"
ARTIFACTS_HELP = f"folder of exported models [${ARTIFACTS_ENV} or artifacts/]"


@cli.command(help=__doc__, epilog="Examples: gan-demo;  gan-demo --host 0.0.0.0 --port 8080")
def serve(
    host: Annotated[str, typer.Option("--host", envvar=HOST_ENV, help=HOST_HELP)] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", envvar=PORT_ENV, min=1, max=65535, help=PORT_HELP)] = DEFAULT_PORT,
    artifacts: Annotated[Path | None, typer.Option("--artifacts", show_default=False, help=ARTIFACTS_HELP)] = None,
) -> None:
    app = build_app(artifacts)
    try:
        launch(app, host, port)
    except OSError:  # Gradio's message names its own environment variables; say it in the CLI's terms
        raise UserError(
            f"cannot listen on {host}:{port}: the port is in use or the address is not this "
            "machine's (choose another --port or --host)"
        ) from None


def main() -> None:
    run_app(cli, "gan-demo")


@functools.cache
def _module_demo() -> gr.Blocks:
    return build_app()


def __getattr__(name: str) -> gr.Blocks:
    """`demo`, the module-level Blocks that `gradio demo/app.py` looks for: built on first use, so that importing
    this module loads no model."""
    if name == "demo":
        return _module_demo()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# `python demo/app.py` or `gradio demo/app.py`: serve with the defaults, or Gradio's variables.
if __name__ == "__main__":
    launch(
        _module_demo(),
        os.environ.get(HOST_ENV) or DEFAULT_HOST,
        int(os.environ.get(PORT_ENV) or DEFAULT_PORT),
    )
