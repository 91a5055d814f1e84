"""Run a Typer app so that every user error is one line on stderr and exit status 2."""

from __future__ import annotations

import sys

import typer


class UserError(Exception):
    """A problem with what the user asked for; printed as `PROG: error: MESSAGE`, exit 2."""


def run_app(app: typer.Typer, prog: str, user_errors: tuple[type[BaseException], ...] = ()) -> None:
    command = typer.main.get_command(app)
    try:
        result = command.main(args=sys.argv[1:], prog_name=prog, standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except (UserError, *user_errors) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        # Click's usage errors (bad flag, bad type, missing argument) carry format_message();
        # Typer either vendors Click or depends on it, so match on that rather than a class.
        if not hasattr(error, "format_message"):
            raise
        print(f"{prog}: error: {error.format_message()}", file=sys.stderr)
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)
