"""The errors the daemon expects, each with its exit status and a one-line message.

`cli.main` prints such an error as `pylsyncd: error: MESSAGE` and exits with its `exit_code`; an
error of any other class is a bug, logged with its traceback.
"""

from __future__ import annotations


class PylsyncdError(Exception):
    """An expected failure: the message is one line a person can act on."""

    exit_code = 1


class ConfigError(PylsyncdError):
    """Bad configuration: the message names the bad value and the fix. Nothing was touched."""

    exit_code = 2


class DestinationError(PylsyncdError):
    """A destination could not be created at start."""


class PairStopped(PylsyncdError):
    """A pair stopped on an unexpected error; the daemon stopped with it."""


class ShutdownTimeout(PylsyncdError):
    """Pending changes were still being applied when the shutdown grace ran out."""


class ForcedExit(PylsyncdError):
    """A second SIGTERM or SIGINT during the shutdown: pending changes were abandoned."""
