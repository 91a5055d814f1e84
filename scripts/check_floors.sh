#!/usr/bin/env bash
# The lowest versions pyproject.toml allows for the base install (uv's lowest-direct resolution), in a fresh
# venv, running the fast tier (the runtime, the manifest contract, the validation rules: no torch needed).
# A floor the code outgrew fails here. The torch and gradio floors are not installed by this check.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet uv
"$work/venv/bin/uv" pip install --quiet --python "$work/venv/bin/python" --resolution lowest-direct \
    "$repo" "pytest>=8" "hypothesis>=6" "pyyaml>=6"
"$work/venv/bin/uv" pip list --python "$work/venv/bin/python" | grep -Ei '^(numpy|onnxruntime|pillow|typer) '
cd "$repo"
PYTHONPATH="$repo" "$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests/fast
