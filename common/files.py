"""File writes that never leave a half-written file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

# Temporary files are `.NAME.RANDOM.tmp` beside their target; a killed process leaves one behind.
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_unfinished_writes(folder: Path) -> None:
    """Delete the temporary files that atomic writes into `folder` (and its subfolders) left when their
    process was killed (SIGKILL, power loss) before the rename. Only for folders one process writes at a time."""
    for path in Path(folder).rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        if path.is_file():
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder: Path):
    """Hold an exclusive advisory lock on `folder` (POSIX flock on the folder itself, so no lock file
    lands in it) while a read-modify-write of a file in it runs: two processes updating the same file
    would otherwise each rename their own copy over it and one update would be lost. A no-op where
    flock does not exist (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # released when the descriptor is closed
        yield
    finally:
        os.close(descriptor)
