"""Loss and diagnostic curves from metrics.jsonl records, and sample grids, as PNG files."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from runtime.fsutil import atomic_write_bytes  # noqa: E402

# figure file -> panels, each a title and the metric keys drawn in it
FIGURES = {
    "losses.png": [("losses", ["loss_d", "loss_g"])],
    "diagnostics.png": [
        ("Wasserstein estimate E[D(x)] - E[D(G(z))]", ["wasserstein"]),
        ("mean critic output", ["d_real", "d_fake"]),
        ("generator gradient norm", ["g_grad_norm"]),
        ("penalty and clipping saturation", ["penalty", "clip_saturation"]),
    ],
}


def save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plot_training_curves(records: list[dict], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, panels in FIGURES.items():
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
        for ax, (title, keys) in zip(axes[0], panels):
            for key in keys:
                points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
                if points:
                    ax.plot(*zip(*points), label=key, marker="." if len(points) < 30 else None)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("epoch")
            if ax.lines:
                ax.legend(fontsize=8)
        save_figure(fig, out_dir / filename)
        written.append(out_dir / filename)
    return written
