"""Which directories a polling watcher rescans at each tick: a pure decision, no I/O.

The rule: a directory where a rescan found a change is *hot* for `hot_for` seconds after its
last change and rescanned at every tick (a tick every `interval` seconds). Every other directory
is *cold*: the cold pass visits them in a ring, a slice per tick sized so that one whole pass
ends within `period` seconds, evenly, never a burst (where one pass takes longer than `period`
the pass stretches; the hot set keeps its pace). A directory that appears joins the ring (at
its end: it was just scanned whole); one that vanished leaves it, and the hot set.

Time comes from `clock` (seconds, e.g. `time.monotonic`), so tests drive it by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

Clock = Callable[[], float]
_MOST_LATE = 2.0  # intervals of lateness a tick's cold slice makes up for


class ScanSchedule:
    """The hot set and the cold ring of one tree's directories (relative paths)."""

    def __init__(
        self,
        clock: Clock,
        interval: float,
        period: float,
        hot_for: float,
        ring: dict[str, Any] | None = None,
    ) -> None:
        """`ring`: the directories, as the keys of a dict their owner keeps (a tree's table of
        100,000 directories need not be held twice); the owner adds and removes them and tells
        the schedule (`add`, `remove`). Without one, the schedule keeps its own."""
        if interval <= 0 or period <= 0 or hot_for < 0:
            raise ValueError(f"bad schedule: interval {interval}, period {period}, hot {hot_for}")
        self.clock = clock
        self.interval = interval
        self.period = period
        self.hot_for = hot_for
        self.hot_enabled = True  # off: only the cold pass runs (see PollWatcher.settle)
        # Insertion-ordered dict as the ring: the cursor is an index into a list rebuilt lazily
        # when directories come or go (rare next to ticks).
        self._owned = ring is None
        self._ring: dict[str, Any] = {} if ring is None else ring
        self._order: list[str] = []
        self._reordered = False  # the ring changed since `_order` was built
        self._cursor = 0
        self._owed = 0.0  # fraction of a directory the cold pass carries to the next tick
        self._last_tick: float | None = None
        self._hot: dict[str, float] = {}  # directory -> when it turns cold again
        self.laps = 0  # completed passes of the cold ring

    def __len__(self) -> int:
        return len(self._ring)

    def add(self, directories: Iterable[str]) -> None:
        """Directories that appeared: the cold ring reaches them last, having just seen them."""
        if not self._owned:
            self._reordered = True  # already in the owner's dict
            return
        for directory in directories:
            if directory not in self._ring:
                self._ring[directory] = None
                self._reordered = True

    def remove(self, directories: Iterable[str]) -> None:
        """Directories that vanished (or were excluded): no longer rescanned."""
        for directory in directories:
            if not self._owned:
                self._reordered = True  # already gone from the owner's dict
            elif self._ring.pop(directory, 0) is None:
                self._reordered = True
            self._hot.pop(directory, None)

    def touch(self, directories: Iterable[str]) -> None:
        """A change was found in (or for) these directories: hot from now for `hot_for`."""
        until = self.clock() + self.hot_for
        for directory in directories:
            if directory in self._ring:
                self._hot[directory] = until

    def hot(self) -> list[str]:
        """The hot directories now (those whose time ran out are demoted first)."""
        now = self.clock()
        expired = [directory for directory, until in self._hot.items() if until <= now]
        for directory in expired:
            del self._hot[directory]
        return list(self._hot) if self.hot_enabled else []

    def tick(self, hot: bool = True) -> list[str]:
        """The directories to rescan now: every hot one (unless not `hot`: resting), then the
        next slice of the cold ring (as many as the time since the last tick earns: len / period
        per second)."""
        now = self.clock()
        elapsed = self.interval if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        due = self.hot() if hot else []
        order = self._ordered()
        if not order:
            return due
        if self.period <= self.interval:  # a whole pass at every tick
            count = len(order)
        else:
            # A late tick (a slow rescan, a busy machine) takes at most two slices: on a mount
            # too slow to go round within `period`, the pass stretches, rather than every tick
            # growing into a whole pass, and the hot set keeps its pace.
            late = min(max(elapsed, 0.0), _MOST_LATE * self.interval)
            self._owed += len(order) * late / self.period
            count = min(math.floor(self._owed + 1e-9), len(order))  # 9.7 x 10 is 97
            self._owed = min(self._owed - count, 1.0)  # never a debt that turns into a burst
        seen = set(due)
        for _ in range(count):
            if self._cursor >= len(order):
                self._cursor = 0
                self.laps += 1
            directory = order[self._cursor]
            self._cursor += 1
            if directory not in seen:
                due.append(directory)
        return due

    def release(self) -> None:
        """Forget every directory (the watcher closed): their memory can go."""
        self._ring, self._order, self._hot, self._cursor = {}, [], {}, 0

    def _ordered(self) -> list[str]:
        if self._reordered:
            # Keep the cursor on the directory it pointed at, or the next one still there.
            order, cursor = self._order, self._cursor
            self._order = list(self._ring)
            self._reordered = False
            self._cursor = 0
            for survivor in order[cursor:]:  # the first directory at or after it that is left
                if survivor in self._ring:
                    self._cursor = self._order.index(survivor)
                    break
        return self._order

    def __contains__(self, directory: object) -> bool:
        return directory in self._ring
