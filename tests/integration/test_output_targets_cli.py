"""The one output rule through the commands that need torch: eval-gan's --json / --markdown / --figure,
export-gan's --out and train-gan's --run-dir. Refusals come before any work: one line, exit 2, nothing changed."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ..conftest import DATA_ROOT, REPO


def snapshot(folder: Path) -> dict:
    state = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        entry = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode))
        if stat.S_ISLNK(info.st_mode):
            entry += (os.readlink(path),)
        elif stat.S_ISREG(info.st_mode):
            entry += (hashlib.sha256(path.read_bytes()).hexdigest(),)
        state[str(path.relative_to(folder))] = entry
    return state


def run(program: str, *args) -> subprocess.CompletedProcess:
    module = {"eval-gan": "evaluation.cli", "export-gan": "export.cli", "train-gan": "training.cli"}[program]
    return subprocess.run(
        [sys.executable, "-c", f"from {module} import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "GAN_DATA_ROOT": str(DATA_ROOT)},
    )


@pytest.fixture
def work(tmp_path) -> Path:
    """A folder with one of each kind of target, and a few PNGs to score."""
    work = tmp_path / "work"
    work.mkdir()
    os.mkfifo(work / "fifo.json")
    os.mkfifo(work / "fifo_run")
    (work / "folder.json").mkdir()
    (work / "file_run").write_text("a file the user had")
    (work / "dangling.md").symlink_to(work / "missing" / "x.md")
    (work / "pngs").mkdir()
    rng = np.random.default_rng(0)
    for index in range(12):  # enough for precision/recall at k=5
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(work / "pngs" / f"{index}.png")
    return work


CASES = [
    ("eval-gan", ["score", "{w}/pngs", "--protocol", "proxy", "--json", "{w}/fifo.json"], "not a regular file"),
    ("eval-gan", ["score", "{w}/pngs", "--protocol", "proxy", "--json", "{w}/folder.json"], "is a folder"),
    ("eval-gan", ["score", "{w}/pngs", "--protocol", "proxy", "--markdown", "{w}/dangling.md"], "does not exist"),
    ("eval-gan", ["score", "{w}/pngs", "--protocol", "proxy", "--json", "{w}/r.txt"], "must end in .json"),
    ("eval-gan", ["score", "{w}/pngs", "--protocol", "proxy", "--markdown", "{w}/r.json"], "must end in .md"),
    ("eval-gan", ["sigma-sweep", "{w}/pngs", "--figure", "{w}/sweep.jpg"], "must end in .png"),
    ("train-gan", ["vanilla", "--run-dir", "{w}/file_run", "--train-limit", "64", "--epochs", "1"], "file_run"),
    ("train-gan", ["vanilla", "--run-dir", "{w}/fifo_run", "--train-limit", "64", "--epochs", "1"], "fifo_run"),
    ("export-gan", ["{w}/pngs", "--out", "{w}/file_run"], "not a run folder"),
]


@pytest.mark.parametrize("program, args, fragment", CASES, ids=[" ".join(c[1][-2:]) for c in CASES])
def test_a_target_the_rule_refuses_is_one_line_and_nothing_changes(work, program, args, fragment):
    before = snapshot(work)
    result = run(program, *[arg.format(w=work) for arg in args])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"{program}: error: "), result.stderr
    assert fragment in lines[0] and "Traceback" not in result.stderr
    assert snapshot(work) == before


def test_a_record_written_through_a_symlink_replaces_its_target_and_follows_the_umask(work):
    (work / "real.json").write_text("{}")
    (work / "real.json").chmod(0o600)
    (work / "link.json").symlink_to(work / "real.json")
    result = run("eval-gan", "score", work / "pngs", "--protocol", "proxy", "--json", work / "link.json", "--quiet")
    assert result.returncode == 0, result.stderr
    assert (work / "link.json").is_symlink() and '"records"' in (work / "real.json").read_text()
    assert stat.S_IMODE((work / "real.json").stat().st_mode) == 0o600  # a replaced file keeps its mode
    previous = os.umask(0o027)
    try:
        result = run("eval-gan", "score", work / "pngs", "--protocol", "proxy", "--markdown", work / "new.md")
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((work / "new.md").stat().st_mode) == 0o640
