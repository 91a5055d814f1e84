"""The one base class of every error a user can cause: bad input, a missing file, a refused request.

Every CLI prints such an error as one line (`PROG: error: MESSAGE`) and exits 2; the demo shows its
message; the library raises it. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user asked for or gave; its message is one line that names the cause."""
