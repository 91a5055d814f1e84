"""Reports: a Markdown table (protocol, samples and seed beside every number) and a JSON document."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from common.files import atomic_write_text

from .protocols import PROTOCOLS, REFERENCE_SET, Protocol

Column = tuple[str, Callable[[dict], object]]


def _number(value, decimals: int) -> str:
    if value is None:
        return "–"
    return f"{value:.{decimals}f}" if isinstance(value, float) else str(value)


def metric_columns(protocol: Protocol) -> list[tuple[str, str, int]]:
    """(title, metric key, decimals) in report order; class statistics exist for the proxy only."""
    columns = [("FID", "fid", 2)]
    for k in protocol.ks:
        columns += [
            (f"{letter} k={k}", f"{name}_k{k}", 3)
            for letter, name in (("P", "precision"), ("R", "recall"), ("D", "density"), ("C", "coverage"))
        ]
    columns += [
        ("digits covered", "digits_covered", 0),
        ("KL to uniform", "kl_from_uniform", 3),
        ("label acc.", "label_accuracy", 3),
    ]
    return [(title, protocol.key(metric), decimals) for title, metric, decimals in columns]


def _floor_line(protocol: Protocol, floor: dict | None, reference: str) -> str:
    if reference != REFERENCE_SET:
        return f"Real-vs-real floor: measured against {REFERENCE_SET} only, not against {reference}."
    if floor is None:
        return (
            f"Real-vs-real floor ({protocol.name}): not measured on this machine yet; "
            f"run `eval-gan floor --protocol {protocol.name}`."
        )
    values = ", ".join(
        f"{title} {_number(floor['metrics'][key], decimals)}"
        for title, key, decimals in metric_columns(protocol)
        if key in floor["metrics"]
    )
    return f"Real-vs-real floor ({protocol.name}, {floor['source']} vs {REFERENCE_SET}): {values}."


INT8_NOTE = " [Inception int8: opt-in, not P0]"  # records scored by `--inception onnx-int8` carry `inception`


def markdown(records: list[dict], floor: dict | None, label: Column = ("source", lambda r: r["source"])) -> str:
    """One row per record; the protocol's definition above the table, its floor below."""
    protocol = PROTOCOLS[records[0]["protocol"]]
    reference = records[0].get("reference", REFERENCE_SET)

    def text(value) -> str:
        return "–" if value is None else str(value)

    columns: list[Column] = [
        (label[0], lambda r: text(label[1](r))),
        ("samples", lambda r: text(r["samples"])),
        ("seed", lambda r: text(r["seed"])),
        ("classes", lambda r: text(r["class_sampling"])),
    ]
    columns += [
        (title, lambda r, key=key, decimals=decimals: _number(r["metrics"].get(key), decimals))
        for title, key, decimals in metric_columns(protocol)
        if any(key in r["metrics"] for r in records)
    ]
    scope = "" if reference == REFERENCE_SET else " (its features and k, not its test set: see the reference)"
    lines = [
        f"Protocol **{protocol.name}**{scope}: {protocol.summary}{INT8_NOTE if 'inception' in records[0] else ''}. "
        f"Reference: {reference}.",
        "",
        "| " + " | ".join(title for title, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in records]
    return "\n".join(lines + ["", _floor_line(protocol, floor, reference)]) + "\n"


def write_outputs(
    study: str, records: list[dict], floor: dict | None, table: str, json_path: Path | None, markdown_path: Path | None
) -> None:
    """Write the requested files, each atomically; nothing is written before the scores exist."""
    document = json.dumps({"study": study, "records": records, "floor": floor}, indent=2) + "\n"
    for path, text in ((json_path, document), (markdown_path, table)):
        if path is not None:
            atomic_write_text(path, text)
