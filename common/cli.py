"""Run a Typer app so that every user error is one line on stderr and exit status 2, and the pieces every
CLI's options share: validation callbacks built from common.validation's rules."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from .errors import UserError


def run_app(app: typer.Typer, prog: str) -> None:
    """Run `app` as `prog`: a UserError (any subclass) or a usage error prints `PROG: error: MESSAGE` and exits 2."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=sys.argv[1:], prog_name=prog, standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except UserError as error:
        if reports_errors():
            print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        # Click's usage errors (bad flag, bad type, missing argument) carry format_message();
        # Typer either vendors Click or depends on it, so match on that rather than a class.
        if not hasattr(error, "format_message"):
            raise
        if reports_errors():
            print(f"{prog}: error: {error.format_message()}", file=sys.stderr)
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)


def reports_errors() -> bool:
    """Under torchrun (which sets RANK) every process meets the same error or learns of rank 0's: rank 0 alone
    prints it, the others exit with the same status in silence."""
    return os.environ.get("RANK", "0") == "0"


# Every long-running command's --quiet; progress is drawn only when shows_progress() says so.
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar (none either when not a terminal)")]


def shows_progress(quiet: bool) -> bool:
    """Progress bars go to a person: not with --quiet, and not when stderr is a file or a pipe (logs, CI)."""
    return not quiet and sys.stderr.isatty()


def checked_option(rule: Callable[..., Any], flag: str, *names: str, **settings: Any) -> Any:
    """A Typer option whose value passes `rule` (one of common.validation's) before the command runs."""
    return typer.Option(flag, *names, callback=validated(rule, flag), **settings)


def validated(rule: Callable[..., Any], flag: str) -> Callable[[Any], Any]:
    """A Typer callback applying one of common.validation's rules to an option (None passes: not given)."""

    def callback(value: Any) -> Any:
        return value if value is None else rule(value, flag)

    return callback
