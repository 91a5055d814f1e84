#!/usr/bin/env bash
# Everything, from a fresh clone: set up .venv, then lint, types, the fast tier, the wheel, the lowest
# declared versions, and the integration tier. CI (.ci/run) runs exactly this.
#   Offline machines first export GAN_DATA_ROOT (a folder holding MNIST/raw) and TORCH_HOME (holding
#   hub/checkpoints/pt_inception-2015-12-05-6726825d.pth); online, both are downloaded on first use.
#   CPU-only machines may set TORCH_INDEX_URL to PyTorch's CPU wheel index to skip the CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv --clear .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.14.1 torchvision==0.29.1
.venv/bin/pip install --quiet -e ".[train,dev]"

# The browser test (tests/integration/test_demo_browser.py) drives Debian's Chromium; it skips without one.
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo -n"
if command -v chromium >/dev/null; then
    :
elif command -v apt-get >/dev/null && $as_root true 2>/dev/null; then
    { $as_root apt-get update -q && $as_root apt-get install -y -q chromium; } \
        || echo "test.sh: apt-get could not install chromium; the browser test will skip" >&2
else
    echo "test.sh: no apt-get, or neither root nor passwordless sudo: no chromium; the browser test will skip" >&2
fi

# Lint, format and types first: they take seconds and name the line.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

.venv/bin/python -m pytest -q tests/fast
bash scripts/check_wheel.sh
bash scripts/check_floors.sh
.venv/bin/python -m pytest -q tests/integration
