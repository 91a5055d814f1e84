"""The one output rule (common/files.py) for every kind of target a user can name, through `gan-runtime sample`.

Each case: the documented result, or one error line with exit 2 and nothing else on disk changed (the work
folder's entries, modes, contents and link targets, and the device node, are compared before and after).
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from common.files import umask
from runtime.cli import main as runtime_main

MODEL = "wgan_gp_cond_mlp"  # a shipped MLP model: fast, torch-free
AS_ROOT = os.geteuid() == 0  # root writes into read-only folders: the documented result differs


def device_node(work: Path) -> Path:
    """A character device to aim at. As root, a null device of our own in the work folder: were the rule ever
    broken, the test would replace that node, not the machine's /dev/null; others cannot replace /dev/null."""
    if not AS_ROOT:
        return Path("/dev/null")
    node = work.parent / "null"
    if not node.exists():
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return node


def snapshot(folder: Path) -> dict:
    """Everything a write could change in `folder`: entry kinds, modes, contents, link targets."""
    state = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        kind = stat.S_IFMT(info.st_mode)
        entry = (kind, stat.S_IMODE(info.st_mode))
        if stat.S_ISLNK(info.st_mode):
            entry += (os.readlink(path),)
        elif stat.S_ISREG(info.st_mode):
            entry += (hashlib.sha256(path.read_bytes()).hexdigest(),)
        state[str(path.relative_to(folder))] = entry
    device = device_node(folder).lstat()
    state["<device>"] = (device.st_mode, device.st_rdev, device.st_ino)
    return state


def make_target(work: Path, kind: str, suffix: str) -> Path:
    """A target of `kind` named with `suffix` (the format's extension, so only the kind is under test)."""
    target = work / f"target{suffix}"
    if kind == "regular file":
        target.write_bytes(b"the user's file")
        target.chmod(0o640)
    elif kind == "folder":
        target.mkdir()
        (target / "keep.txt").write_text("the user's file")
    elif kind == "empty folder":
        target.mkdir()
    elif kind == "FIFO":
        os.mkfifo(target)
    elif kind == "device":
        target.symlink_to(device_node(work))
    elif kind == "symlink to a file":
        (work / "real").write_bytes(b"the user's file")
        target.symlink_to(work / "real")
    elif kind == "symlink into a missing folder":
        target.symlink_to(work / "missing" / f"x{suffix}")
    elif kind == "read-only folder":
        (work / "locked").mkdir()
        target = work / "locked" / f"target{suffix}"
        (work / "locked").chmod(0o555)
    elif kind != "missing file":
        raise ValueError(kind)
    return target


KINDS = [
    "missing file",
    "regular file",
    "folder",
    "empty folder",
    "FIFO",
    "device",
    "symlink to a file",
    "symlink into a missing folder",
    "read-only folder",
]
# What each output option does with each kind of target: "write" (the documented result) or "refuse".
WRITES_A_FILE = {
    "missing file": "write",
    "regular file": "write",  # replaced whole, keeping its mode
    "folder": "refuse",
    "empty folder": "refuse",
    "FIFO": "refuse",
    "device": "refuse",
    "symlink to a file": "write",  # written through: the file it points to is replaced, the link stays
    "symlink into a missing folder": "refuse",
    "read-only folder": "write" if AS_ROOT else "refuse",
}
WRITES_A_FOLDER = {
    **WRITES_A_FILE,
    "regular file": "refuse",
    "symlink to a file": "refuse",
    "empty folder": "write",  # filled whole
}
CASES = [
    (flag, suffix, kind, rule[kind])
    for flag, suffix, rule in (("--out", ".png", WRITES_A_FILE), ("--npy", ".npy", WRITES_A_FILE))
    for kind in KINDS
] + [("--out-dir", "", kind, WRITES_A_FOLDER[kind]) for kind in KINDS]


def run_sample(*args: str) -> tuple[int, str]:
    argv = sys.argv
    sys.argv = ["gan-runtime", "sample", "--model", MODEL, "--n", "4", *args]
    try:
        runtime_main()
    except SystemExit as stop:
        return int(stop.code or 0), ""
    finally:
        sys.argv = argv
    return 0, ""


@pytest.mark.parametrize("flag, suffix, kind, expected", CASES, ids=[f"{c[0]} {c[2]}" for c in CASES])
def test_every_output_target_is_written_as_documented_or_refused_leaving_everything_as_it_was(
    tmp_path, capsys, flag, suffix, kind, expected
):
    work = tmp_path / "work"
    work.mkdir()
    target = make_target(work, kind, suffix)
    before = snapshot(work)
    try:
        code, _ = run_sample(flag, str(target))
    finally:
        if (work / "locked").exists():
            (work / "locked").chmod(0o755)
    err = capsys.readouterr().err
    if expected == "refuse":
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("gan-runtime: error: "), err
        assert str(target) in lines[0]
        assert snapshot(work) == before
        return
    assert code == 0, err
    written = Path(os.path.realpath(target))
    if flag == "--out-dir":
        assert sorted(p.name for p in written.iterdir()) == [f"{i:05d}.png" for i in range(4)]
        assert stat.S_IMODE(written.stat().st_mode) == 0o777 & ~umask()
    else:
        data = written.read_bytes()
        assert data.startswith(b"\x89PNG" if flag == "--out" else b"\x93NUMPY")
        expected_mode = 0o640 if kind == "regular file" else 0o666 & ~umask()
        if kind == "symlink to a file":
            assert target.is_symlink() and os.readlink(target) == str(work / "real")
        assert stat.S_IMODE(written.stat().st_mode) == expected_mode
    changed = {name for name in set(before) | set(snapshot(work)) if before.get(name) != snapshot(work).get(name)}
    allowed = {str(written.relative_to(work))} | {
        str(path.relative_to(work)) for path in written.rglob("*") if written.is_dir()
    }
    if kind == "read-only folder":
        allowed.add("locked")  # its mode was restored after the run; its listing gained the file
    assert changed <= allowed, changed - allowed


def test_new_files_follow_the_umask(tmp_path, capsys):
    previous = os.umask(0o027)
    try:
        assert run_sample("--out", str(tmp_path / "g.png"))[0] == 0
        assert run_sample("--npy", str(tmp_path / "x.npy"))[0] == 0
        assert run_sample("--out-dir", str(tmp_path / "d"))[0] == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "g.png").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "x.npy").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "d" / "00000.png").stat().st_mode) == 0o640
    assert np.load(tmp_path / "x.npy", allow_pickle=False).shape == (4, 28, 28)


@pytest.mark.parametrize(
    "flag, name, fragment",
    [
        ("--out", "grid.jpg", "must end in .png"),
        ("--out", "grid", "must end in .png"),
        ("--npy", "x.png", "must end in .npy"),
    ],
)
def test_the_extension_names_the_format_or_the_target_is_refused(tmp_path, capsys, flag, name, fragment):
    code, _ = run_sample(flag, str(tmp_path / name))
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
