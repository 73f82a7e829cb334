"""inotify for speed, plus periodic rescans that catch what inotify never reported.

A rescan also reports changes inotify already delivered; the coalescer merges such duplicates,
so the cost is at most one extra copy per changed file per rescan.
"""

from __future__ import annotations

from pylsyncd.events import Event
from pylsyncd.watch import Watcher
from pylsyncd.watch.poll import PollWatcher


class HybridWatcher:
    """Events from `fast` as they come, and from `rescans` whenever a rescan is due."""

    def __init__(self, fast: Watcher, rescans: PollWatcher) -> None:
        self.fast = fast
        self.rescans = rescans

    def start(self) -> None:
        self.rescans.start()  # the snapshot first: a change between the two shows up in both
        self.fast.start()

    def read(self, timeout: float | None) -> list[Event]:
        # Wait for inotify no longer than until the next rescan is due.
        due = self.rescans.due_in()
        events = self.fast.read(due if timeout is None else min(timeout, due))
        return events + self.rescans.read(0)

    def wake(self) -> None:
        self.fast.wake()
        self.rescans.wake()

    def close(self) -> None:
        self.fast.close()
        self.rescans.close()
