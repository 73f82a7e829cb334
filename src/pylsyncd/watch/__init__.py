"""Watchers turn filesystem activity below a source root into `Event`s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pylsyncd.events import Event

# Decides whether a path (relative to the source root) is excluded; `is_dir` tells its type.
ExcludePredicate = Callable[[str, bool], bool]


class WatchLimitError(Exception):
    """The kernel refused another inotify watch; the message names the sysctl and value needed."""


class Watcher(Protocol):
    """A source of events for one source tree."""

    def start(self) -> None:
        """Watch the whole tree; called before the initial sync so nothing slips in between."""

    def read(self, timeout: float | None) -> list[Event]:
        """Events that arrived, waiting up to `timeout` seconds (None: no limit) for the first;
        [] on timeout or when woken."""

    def wake(self) -> None:
        """Make a `read` waiting in another thread return now (or the next one, if none waits):
        an idle watcher then needs no timeout, and so no CPU, to notice a stop request."""

    def close(self) -> None:
        """Stop watching and release kernel resources."""
