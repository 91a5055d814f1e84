#!/usr/bin/env bash
# The wheel a user installs: built from this tree, installed with no extras into a fresh venv, it runs the
# embedded default model (list, sample with DRS, score) without torch. Run from anywhere; exits non-zero on
# the first failed check.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$work"/dist/*.whl
cd "$work"  # no ./artifacts here: the models come from the wheel
unset GAN_ARTIFACTS
"$work/venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
    || { echo "check_wheel: torch is installed by the runtime-only wheel" >&2; exit 1; }
"$work/venv/bin/gan-runtime" list | tee list.txt
grep -q '^\* .*\[embedded, shipped\]' list.txt || { echo "check_wheel: no embedded default model" >&2; exit 1; }
"$work/venv/bin/gan-runtime" sample --digit 3 --out threes.png  # the README's command
"$work/venv/bin/gan-runtime" sample --digit 3 --drs 0.2 --out drs-threes.png
"$work/venv/bin/gan-runtime" sample --digit 3 --n 4 --out-dir threes
"$work/venv/bin/gan-runtime" score threes/00000.png --digit 3
"$work/venv/bin/python" -c "import sys; sys.exit('torch' in sys.modules)"
if "$work/venv/bin/train-gan" --list 2> err.txt; then
    echo "check_wheel: train-gan ran without the train extra" >&2; exit 1
fi
grep -q 'train-gan needs the train extra: pip install "mnist-latent-gan\[train\]"' err.txt
echo "check_wheel: the wheel runs the embedded model without torch"
