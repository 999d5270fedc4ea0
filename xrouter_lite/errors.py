"""Errors a user can fix (a path, a data file, a price, a name), apart from bugs.

The command line prints a `UserError` as one line and exits with status 2 (`--debug` shows the traceback);
anything else is a bug and keeps its traceback. Each class is also a ValueError, so code that caught the
ValueError these used to be keeps working.

    >>> from xrouter_lite.errors import DataError, UserError
    >>> isinstance(DataError("gsm/x.json: no record has the answer field 'output'"), (UserError, ValueError))
    True
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave us; the message says what and where, in one line."""


class UsageError(UserError, ValueError):
    """An unknown name or a bad option value (a source, a router, a flag)."""


class DataError(UserError, ValueError):
    """A recorded data file that cannot be read as its format promises; the message names the file."""


class PriceError(UserError, ValueError):
    """A price table row that is not a valid price; the message names the file and the line."""
