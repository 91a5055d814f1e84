"""The fast tier keeps its promise: no torch, torchvision, training or export, here or in its subprocesses."""

from __future__ import annotations

import sys

import pytest

from . import conftest
from .conftest import BLOCKED, run_cli, run_python


def test_alone_the_tier_runs_with_torch_blocked():
    if not conftest.blocking:
        pytest.skip("collected with the integration tier, which imports torch: nothing is blocked")
    for name in BLOCKED:
        with pytest.raises(ImportError, match=f"the fast tier imports no {name}"):
            __import__(name)
    assert not [name for name in sys.modules if name.split(".")[0] in BLOCKED]


def test_subprocesses_run_with_torch_blocked():
    for name in BLOCKED:
        result = run_python(f"import {name}")
        assert result.returncode == 1 and f"ImportError: the fast tier imports no {name}" in result.stderr
    # Everything gan-runtime does, in one process: still nothing of BLOCKED loaded (or it would have raised).
    listed = run_python(
        "import sys\n"
        "import runtime.cli, runtime.classifier, demo.service, evaluation.records\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r}))\n"
    )
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr
    assert run_cli("--help").returncode == 0
