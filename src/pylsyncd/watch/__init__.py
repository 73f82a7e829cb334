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

    def read(self, timeout: float) -> list[Event]:
        """Events that arrived, waiting up to `timeout` seconds for the first ([] on timeout)."""

    def close(self) -> None:
        """Stop watching and release kernel resources."""
