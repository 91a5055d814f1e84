"""Security: nothing the project loads can run code, and the demo listens on loopback with bounded uploads.

Graphs are checked against the manifest's sha256 before onnxruntime sees them (test_runtime.py,
test_bad_inputs.py); a pickled checkpoint is refused without being unpickled (test_bad_inputs.py).
"""

from __future__ import annotations

import ast
import inspect
import socket
import sys
from pathlib import Path

import httpx
import pytest
import torch

from demo.app import DEFAULT_HOST, MAX_UPLOAD_BYTES, build_app, launch, serve

from ..conftest import REPO

# Pickle's relatives: each can run code from the bytes it reads.
PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
# Loaders that unpickle unless told to load tensors only.
TORCH_LOADERS = {"load", "load_state_dict_from_url", "load_url"}
PRODUCT_CODE = [
    path
    for package in ("common", "evaluation", "training", "export", "runtime", "demo", "bench")
    for path in sorted((REPO / package).rglob("*.py"))
]
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else keyword.value
    return None


def unsafe_calls(source: str) -> list[str]:
    """What in this source could execute code from data it reads: pickling modules, torch loaders
    without weights_only=True, numpy loads without allow_pickle=False, eval/exec, yaml.load, shell=True."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"line {node.lineno}: imports {name}" for name in names if name.split(".")[0] in PICKLING_MODULES]
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        owner = ast.unparse(function.value) if isinstance(function, ast.Attribute) else ""
        where = f"line {node.lineno}: {ast.unparse(function)}"
        if (
            name in TORCH_LOADERS
            and ("torch" in owner or "hub" in owner)
            and _keyword(node, "weights_only") is not True
        ):
            found.append(f"{where} without weights_only=True")
        if name == "load" and owner in ("np", "numpy") and _keyword(node, "allow_pickle") is not False:
            found.append(f"{where} without allow_pickle=False")
        if name in ("eval", "exec") and isinstance(function, ast.Name):
            found.append(where)
        if name in ("load", "unsafe_load", "full_load") and owner == "yaml":
            found.append(f"{where} (use yaml.safe_load)")
        if _keyword(node, "shell") is True:
            found.append(f"{where} with shell=True")
    return found


def test_the_scan_finds_each_unsafe_pattern():
    unsafe = """
import pickle
from joblib import load
torch.load(path)
torch.load(path, weights_only=False)
torch.hub.load_state_dict_from_url(url)
np.load(path)
eval(text)
yaml.load(text)
subprocess.run(command, shell=True)
"""
    assert len(unsafe_calls(unsafe)) == 9
    safe = """
torch.load(path, weights_only=True)
np.load(path, allow_pickle=False)
yaml.safe_load(text)
model.eval()
json.load(handle)
"""
    assert unsafe_calls(safe) == []


@pytest.mark.parametrize("path", PRODUCT_CODE, ids=[str(p.relative_to(REPO)) for p in PRODUCT_CODE])
def test_product_code_never_unpickles_or_evaluates_what_it_reads(path):
    assert unsafe_calls(path.read_text()) == []


def test_the_inception_weights_are_loaded_as_tensors_only(monkeypatch):
    """pytorch-fid itself calls torch.hub without weights_only: the project must override it."""
    from evaluation.features import InceptionPool3

    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    InceptionPool3()
    assert calls == [True]


# ---------------------------------------------------------------------- the demo's network surface
def test_the_demo_listens_on_loopback_unless_told_otherwise():
    assert DEFAULT_HOST == "127.0.0.1"
    assert inspect.signature(serve).parameters["host"].default == DEFAULT_HOST
    assert inspect.signature(launch).parameters["host"].default == DEFAULT_HOST


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses listening on `port`, from the kernel's socket table."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            addresses.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return addresses


@pytest.fixture(scope="module")
def demo_on_defaults(trained):
    app = build_app(trained["artifacts"])
    port = _free_port()
    launch(app, port=port, block=False)  # the default host
    yield app, port
    app.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
def test_a_default_launch_binds_127_0_0_1_only(demo_on_defaults):
    _, port = demo_on_defaults
    assert _listening_addresses(port) == {"127.0.0.1"}


def test_uploads_over_the_limit_are_refused_before_they_are_stored(demo_on_defaults):
    _, port = demo_on_defaults
    url = f"http://127.0.0.1:{port}/gradio_api/upload"
    small = httpx.post(url, files={"files": ("digit.png", b"\x89PNG" + b"\0" * 1000)}, timeout=60)
    assert small.status_code == 200, small.text
    too_big = httpx.post(url, files={"files": ("digit.png", b"\x89PNG" + b"\0" * MAX_UPLOAD_BYTES)}, timeout=60)
    assert too_big.status_code == 413, too_big.text
