"""Loss and diagnostic curves from metrics.jsonl records, and sample grids, as PNG files."""

from __future__ import annotations

from pathlib import Path

from evaluation.figures import plt, save_figure  # plt with the Agg backend that evaluation.figures selects

# figure file -> panels, each a title and the metric keys drawn in it
FIGURES = {
    "losses.png": [("losses", ["loss_d", "loss_g"])],
    "diagnostics.png": [
        ("Wasserstein estimate E[D(x)] - E[D(G(z))]", ["wasserstein"]),
        ("mean critic output", ["d_real", "d_fake"]),
        ("generator gradient norm", ["g_grad_norm"]),
        ("penalty and clipping saturation", ["penalty", "clip_saturation"]),
        ("clipping saturation by critic layer", ["clip_saturation_layer*"]),
    ],
}


def logged_series(keys: list[str], records: list[dict]) -> dict[str, list[tuple]]:
    """(epoch, value) points of each key that was logged; a key ending in * stands for every logged
    key with that prefix, in first-logged order."""
    logged = dict.fromkeys(name for record in records for name in record)
    names = [
        name for key in keys for name in ([n for n in logged if n.startswith(key[:-1])] if key.endswith("*") else [key])
    ]
    series = {name: [(r["epoch"], r[name]) for r in records if r.get(name) is not None] for name in names}
    return {name: points for name, points in series.items() if points}


def plot_training_curves(records: list[dict], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, panels in FIGURES.items():
        # Panels with nothing logged (clipping saturation of a GP run) are left out, one panel at least.
        drawn = [(title, series) for title, keys in panels if (series := logged_series(keys, records))]
        drawn = drawn or [(panels[0][0], {})]
        fig, axes = plt.subplots(1, len(drawn), figsize=(5 * len(drawn), 3.5), squeeze=False)
        for ax, (title, series) in zip(axes[0], drawn, strict=True):
            for name, points in series.items():
                ax.plot(*zip(*points, strict=True), label=name, marker="." if len(points) < 30 else None)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("epoch")
            if ax.lines:
                ax.legend(fontsize=8)
        save_figure(fig, out_dir / filename)
        written.append(out_dir / filename)
    return written
