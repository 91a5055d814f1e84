"""Time to quality: CPU minutes of training until a run's proxy FID stops improving; prints one JSON object.

    python bench/time_to_quality.py runs/ship/wgan_gp_cond [--window 20] [--min-gain 0.02]

Reads the run's metrics.jsonl (written by train-gan with `--eval-protocol proxy`). The proxy FID
"stops improving" at the first evaluated epoch E whose best-so-far FID is not beaten by more than
`--min-gain` (relative) at any evaluation within the next `--window` epochs. CPU minutes are the
summed `epoch_cpu_seconds` (all threads of the training process, evaluation excluded) up to E.
When no such epoch exists yet (the run is still improving, or too short to tell), `plateau_epoch`
is null and the last evaluation is reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

FID_KEY = "proxy/fid"


def main(
    run_dir: Path = typer.Argument(..., help="a run folder with metrics.jsonl"),
    window: int = typer.Option(20, "--window", min=1, help="epochs that must bring no real gain"),
    min_gain: float = typer.Option(0.02, "--min-gain", min=0.0, help="relative FID gain that counts"),
):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    cpu_minutes, curve = 0.0, []
    for record in records:
        cpu_minutes += record.get("epoch_cpu_seconds", 0.0) / 60
        if FID_KEY in record:
            curve.append(
                {"epoch": record["epoch"], "cpu_minutes": round(cpu_minutes, 2), "proxy_fid": round(record[FID_KEY], 3)}
            )
    if not curve:
        raise typer.BadParameter(f"{run_dir}/metrics.jsonl has no {FID_KEY}; train with --eval-protocol proxy")
    plateau, best = None, float("inf")
    for index, point in enumerate(curve):
        best = min(best, point["proxy_fid"])
        later = [p for p in curve[index + 1 :] if p["epoch"] <= point["epoch"] + window]
        if (
            later
            and later[-1]["epoch"] == point["epoch"] + window
            and all(p["proxy_fid"] > best * (1 - min_gain) for p in later)
        ):
            plateau = point
            break
    typer.echo(
        json.dumps(
            {
                "benchmark": "time_to_quality",
                "run": str(run_dir),
                "window_epochs": window,
                "min_relative_gain": min_gain,
                "plateau_epoch": plateau and plateau["epoch"],
                "plateau_cpu_minutes": plateau and plateau["cpu_minutes"],
                "plateau_proxy_fid": plateau and plateau["proxy_fid"],
                "best_proxy_fid": min(p["proxy_fid"] for p in curve),
                "last": curve[-1],
                "curve": curve,
            }
        )
    )


if __name__ == "__main__":
    typer.run(main)
