"""Files that cost to copy and keep changing: when each may be copied again, and compared.

A log appended every 10 ms, or a database rewritten in place, raises events faster than its
copies are worth making. Each copy that cost CPU time is paid back before the next: a file whose
copy took `cost` seconds of the transfer thread's CPU is copied again no sooner than
`cost * (1 / HOT_FILE_SHARE - 1)` seconds after, so one file never takes more than that share of
a core. Its changes meanwhile wait in the pair's queue, merged, and go in one copy. (The caller
charges nothing for an appended tail: those bytes are copied once whenever they go.)

A file updated by its new tail alone (an append whose old end was checked, not every byte) is
compared whole once it has been quiet for `VERIFY_AFTER` seconds: a change made in its middle
while it grew is caught then, at the cost of one comparison per quiet spell, not one per append.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from pylsyncd.events import is_within, rebase

# Files this big are remembered as written (`unchanged_since_written`): those whose copy in
# the destination is compared, not rewritten.
from pylsyncd.transfer.file_writer import DELTA_MIN as TRACKED_SIZE

# The share of one core that copying one file may take, over its copies.
HOT_FILE_SHARE = 0.5
# Copies cheaper than this are not tracked: their pay-back time would be below the pair's own
# DELAY, and a tree of small files needs no entry per file.
_TRACKED_COST = 0.002
# Seconds an appended file stays unchanged before it is compared whole.
VERIFY_AFTER = 1.0
# And at the latest, seconds after its first tail-only update, even while it keeps growing: a
# log that never stops is compared too (64 MiB in about 25 ms of CPU, twice a minute).
VERIFY_WITHIN = 30.0


class HotFiles:
    """Per path: when its next copy may run, and when its next whole comparison is due."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ready_at: dict[str, float] = {}  # path -> when it may be copied again
        self._compare_at: dict[str, float] = {}  # path -> when it is compared whole
        # path -> when it was first updated by its tail alone since its last whole comparison
        self._unverified_since: dict[str, float] = {}
        # path -> the source's (inode, size, mtime, ctime) when a big file was last written:
        # a later event that finds the very same has nothing new to bring.
        self._written_from: dict[str, tuple[int, int, int, int]] = {}
        self._written_at: dict[str, float] = {}  # path -> when, for `expire`
        self._next_expiry = 0.0

    def wait_until(self, path: str) -> float | None:
        """When a copy of `path` may run, if not now."""
        ready = self._ready_at.get(path)
        if ready is None:
            return None
        if ready <= self._clock():
            del self._ready_at[path]
            return None
        return ready

    def copied(
        self,
        path: str,
        cpu_seconds: float,
        *,
        compared: bool,
        source: os.stat_result | None = None,
    ) -> float | None:
        """Record a copy of `path` (from the source's fstat `source`) and what it cost; returns
        when to compare it whole, when only its tail was written."""
        now = self._clock()
        if source is not None and source.st_size >= TRACKED_SIZE:
            self._written_from[path] = _identity(source)
            self._written_at[path] = now
        else:
            self._written_from.pop(path, None)
            self._written_at.pop(path, None)
        if cpu_seconds >= _TRACKED_COST:
            self._ready_at[path] = now + cpu_seconds * (1 / HOT_FILE_SHARE - 1)
        if compared:
            self._compare_at.pop(path, None)
            self._unverified_since.pop(path, None)
            return None
        since = self._unverified_since.setdefault(path, now)
        due = self._compare_at[path] = min(now + VERIFY_AFTER, since + VERIFY_WITHIN)
        return due

    def unchanged_since_written(self, path: str, source: os.stat_result) -> bool:
        """Whether the source's file at `path` is exactly as when it was last written from, and
        no whole comparison of it is due (that one is never skipped).

        Asked for a second event of one write (its close after its modify): comparing a big
        file again would read both copies for nothing. Only a same-size rewrite within one
        timestamp tick could hide here, and the whole comparison held back for the file comes
        all the same.
        """
        due = self._compare_at.get(path)
        if due is not None and due <= self._clock():
            return False
        return self._written_from.get(path) == _identity(source)

    def must_compare(self, path: str) -> bool:
        """Whether `path` has grown by tail-only updates for VERIFY_WITHIN: no more of those
        until it has been compared whole."""
        since = self._unverified_since.get(path)
        return since is not None and self._clock() >= since + VERIFY_WITHIN

    def compare_now(self, path: str) -> bool:
        """Whether `path` is to be compared whole at this copy: its held-back comparison has
        come, or it has grown by tail-only updates for VERIFY_WITHIN."""
        due = self._compare_at.get(path)
        return self.must_compare(path) or (due is not None and due <= self._clock())

    def comparison_due(self, path: str) -> float | None:
        """When `path`, last written by its tail only, is to be compared whole."""
        return self._compare_at.get(path)

    def moved(self, source: str, target: str) -> list[tuple[str, float]]:
        """A rename was replayed: what was known at or below `source` is now `target`'s.

        Returns the renamed paths still to be compared whole, with when: the change that was
        to compare them names the old path.
        """
        to_compare: list[tuple[str, float]] = []
        tables: list[dict[str, Any]] = [
            self._ready_at,
            self._compare_at,
            self._unverified_since,
            self._written_from,
            self._written_at,
        ]
        for table in tables:
            for path in [path for path in table if is_within(path, source)]:
                moved = rebase(path, source, target)
                table[moved] = table.pop(path)
                if table is self._compare_at:
                    to_compare.append((moved, table[moved]))
        return to_compare

    def expire(self) -> None:
        """Forget what is past, at most once a minute: pay-back times that have come, and what
        else is an hour old (a file deleted or renamed away leaves its entries behind; one lost
        too early costs one more comparison)."""
        now = self._clock()
        if now < self._next_expiry:
            return
        self._next_expiry = now + 60
        for path in [path for path, ready in self._ready_at.items() if ready <= now]:
            del self._ready_at[path]
        for table in (self._compare_at, self._unverified_since, self._written_at):
            for path in [path for path, at in table.items() if at < now - 3600]:
                del table[path]
                self._written_from.pop(path, None)


def _identity(source: os.stat_result) -> tuple[int, int, int, int]:
    # ctime too: no write leaves it as it was, though the writer may set the mtime back.
    return (source.st_ino, source.st_size, source.st_mtime_ns, source.st_ctime_ns)
