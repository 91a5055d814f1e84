"""Figures: evaluation metrics over training epochs (the seeds' Table 4) and the σ sweep (their Figure 1)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402

from common.files import atomic_write_bytes  # noqa: E402

from .protocols import PROTOCOLS  # noqa: E402


def save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _metric_panels(protocol: str) -> list[tuple[str, list[str]]]:
    p = PROTOCOLS[protocol]
    return [
        (f"FID ({protocol})", [p.key("fid")]),
        (f"precision / recall ({protocol})", [p.key(f"{m}_k{k}") for k in p.ks for m in ("precision", "recall")]),
        (f"classes ({protocol})", [p.key("label_accuracy"), p.key("kl_from_uniform")]),
    ]


def plot_metrics(records: list[dict], path: Path) -> None:
    """Metric-vs-epoch panels for every protocol present in the records; no file when there is none."""
    panels = [
        (title, keys)
        for name in PROTOCOLS
        for title, keys in _metric_panels(name)
        if any(key in r for r in records for key in keys)
    ]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), label=key.split("/", 1)[1], marker=".")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)


def plot_sigma_sweep(records: list[dict], strips: list[np.ndarray], path: Path) -> None:
    """Left: quality (precision) and diversity (recall) against σ, FID on its own axis.
    Right: the same latent draws at each σ, one row per σ."""
    protocol = PROTOCOLS[records[0]["protocol"]]
    sigmas = [r["sigma"] for r in records]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 1.4]}, layout="constrained"
    )
    for k in protocol.ks:
        for metric, style in (("precision", "-"), ("recall", "--")):
            left.plot(
                sigmas,
                [r["metrics"][protocol.key(f"{metric}_k{k}")] for r in records],
                style,
                marker="o",
                label=f"{metric} k={k}",
            )
    left.set_xlabel("σ of the mixture prior at sampling time")
    left.set_ylim(0, 1)
    left.legend(fontsize=7, loc="center left")
    fid_axis = left.twinx()
    fid_axis.plot(
        sigmas, [r["metrics"][protocol.key("fid")] for r in records], ":", color="black", marker="s", label="FID"
    )
    fid_axis.set_ylabel("FID")
    fid_axis.legend(fontsize=7, loc="center right")
    left.set_title(
        f"quality vs diversity ({protocol.name}, {records[0]['samples']} samples, seed {records[0]['seed']})",
        fontsize=9,
    )
    right.imshow(np.concatenate([np.concatenate(list(strip), axis=1) for strip in strips]), cmap="gray")
    right.set_yticks([28 * i + 14 for i in range(len(sigmas))], [f"σ={s:g}" for s in sigmas])
    right.set_xticks([])
    right.set_title("same latent draws at each σ", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
