"""The one rule for every file the project writes (a grid, an array, a record, a checkpoint, a manifest).

- Whole or not at all: the bytes go to a temporary file beside the target, are fsynced, then renamed
  over it, so a reader never sees half a file and a killed process leaves the old file intact.
- Only regular files are written. A target that is a folder, a FIFO, a device or a socket is refused
  in one line and left alone. A symlink is written through, as the shell's `>` does: the file it points
  to is replaced and the link stays a link; a link into a missing folder is refused.
- Permissions follow the umask like any Unix tool: a new file is 0666 & ~umask, a replaced file keeps
  its mode, a new folder is 0777 & ~umask.
- The extension names the format: a command that writes PNG bytes refuses `--out x.jpg`.
- Targets are checked before any work (`check_output_file`, `check_output_folder`), and again when written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError

# Temporary files are `.NAME.RANDOM.tmp` beside their target; a killed process leaves one behind.
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"


class OutputError(UserError):
    """An output path that cannot be written as asked: the wrong kind of file, a missing folder, a wrong suffix,
    or the write itself failed (disk full); the message names the path and the cause."""


def umask() -> int:
    """The process's umask, read without changing it where the kernel says it (Linux), else set and restored."""
    with contextlib.suppress(OSError):
        match = re.search(r"^Umask:\s*([0-7]+)", Path("/proc/self/status").read_text(), re.MULTILINE)
        if match:
            return int(match.group(1), 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_file(path: Path, what: str = "output", suffix: str | None = None) -> Path:
    """The file to write for `path` (a symlink's target), after checking the rule above; `what` names the
    option in the error line, `suffix` is the extension the format needs."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.is_symlink():  # a link that leads nowhere: realpath stopped at a loop
        raise OutputError(f"{what} {path} is a symlink that leads to no file (a loop)")
    if target.exists() and not target.is_file():
        kind = "a folder, not a file" if target.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise OutputError(f"{what} {path} is {kind}; give the path of a file to write")
    if suffix is not None and path.suffix.lower() != suffix:
        raise OutputError(f"{what} {path} must end in {suffix} (the file is written as {suffix[1:].upper()})")
    _check_parent(path, target, what)
    return target


def _check_parent(path: Path, target: Path, what: str) -> None:
    if not target.parent.is_dir():
        raise OutputError(f"{what} {path}: output folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise OutputError(f"{what} {path}: output folder {target.parent} is not writable ({os.strerror(errno.EACCES)})")


def check_output_folder(path: Path, what: str = "output folder") -> Path:
    """A folder to create whole (`staged_folder`): it must not exist, or be an empty folder; its parent must."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise OutputError(
            f"{what} {path} exists and is not an empty folder; choose a new one (mixing two runs' files would "
            "corrupt the set)"
        )
    _check_parent(path, target, what)
    return target


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to `path` by the rule above (checked again here: the path may have changed since)."""
    target = check_output_file(path)
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~umask()
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)  # mkstemp makes it 0600
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError):  # disk full, file too large, folder made read-only: one line, the cause
            raise OutputError(f"cannot write {path} ({error.strerror or error})") from error
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_folder(path: Path, replace: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside `path`; when the block ends without an error it becomes `path`
    (renamed into place, so `path` is never half-written), else it is deleted. `path` must be new or an empty
    folder, or with `replace` an existing folder, which is swapped out and then deleted."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    staging = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent))
    try:
        staging.chmod(0o777 & ~umask())  # mkdtemp makes it private
        yield staging
        if target.is_dir() and (replace or not any(target.iterdir())):
            retired = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_unfinished_writes(folder: Path) -> None:
    """Delete the temporary files that atomic writes into `folder` (and its subfolders) left when their
    process was killed (SIGKILL, power loss) before the rename. Only for folders one process writes at a time."""
    for path in Path(folder).rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        if path.is_file():
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
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
