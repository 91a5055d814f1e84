"""A progress bar with an ETA on stderr (rich, a base dependency), for the jobs that can outlast a few seconds.

    with progress_bar("generating", total=n, enabled=not quiet) as update:
        model.generate(n, progress=update)

Drawn only when enabled and stderr is a terminal: a pipe, a file or a CI log gets nothing, and rich is imported only
to draw one (~40 ms of a cold start otherwise).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from common.cli import shows_progress


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """A callback update(done, total) that advances a bar on stderr, or None when no bar is drawn."""
    if not shows_progress(quiet=not enabled):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,  # the command's own summary line follows; the finished bar would only repeat it
    )
    with bar:
        task = bar.add_task(description, total=total)

        def update(done: int, of: int) -> None:
            bar.update(task, completed=done, total=of)

        yield update
