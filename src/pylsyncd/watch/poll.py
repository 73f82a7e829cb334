"""Rescans for mounts that raise no inotify events for changes made elsewhere (Docker Desktop and
VM shared folders, NFS, SMB, 9p, FUSE): what changed since the last look becomes the same
`Event`s inotify would have given, so the same coalescer and transfers apply them.

The rule: a tick every `interval` seconds (POLL_INTERVAL) rescans the hot set, the directories
where something changed in the last `hot_for` seconds (POLL_HOT_FOR), and the next slice of the
cold pass, which goes round every other directory once per `period` (POLL_PERIOD), in even
slices, never a burst. A developer edits a handful of directories at a time: there a change is
seen within a tick; anywhere else within a period. Which directories a tick rescans is
`scan_schedule`; a tick's work, and how renames between directories rescanned at different ticks
stay renames, is `tree_rescan`; the tree is kept as a `dir_table` (one packed record per
directory); two listings become events by `snapshot_diff`.

A directory that cannot be listed (EACCES, or EIO on a share) keeps its entries as last seen: a
hiccup is not a mass deletion. Nothing follows symlinks or enters excluded directories.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable

from pylsyncd.events import Event, parent_of
from pylsyncd.watch import ExcludePredicate
from pylsyncd.watch.dir_table import DirectoryTable, header
from pylsyncd.watch.scan_schedule import Clock, ScanSchedule
from pylsyncd.watch.snapshot_diff import Snapshot
from pylsyncd.watch.tree_rescan import TreeRescan

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.2
DEFAULT_PERIOD = 10.0
DEFAULT_HOT_FOR = 60.0
DEFAULT_SAFETY_PERIOD = 600.0
_SAFETY_TICK = 1.0  # seconds between ticks once only the safety net runs
_REST_PER_TICK = 3.0  # after a tick with the hot set, its rest: this many times as long


class PollWatcher:
    """Reports what changed below `root`, found by rescans of its hot and cold directories."""

    def __init__(
        self,
        root: str,
        excludes: ExcludePredicate | None = None,
        interval: float = DEFAULT_INTERVAL,
        period: float = DEFAULT_PERIOD,
        hot_for: float = DEFAULT_HOT_FOR,
        clock: Clock = time.monotonic,
        safety_period: float = DEFAULT_SAFETY_PERIOD,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"poll interval must be positive, not {interval}")
        if period <= 0 or safety_period <= 0:
            raise ValueError(f"poll periods must be positive, not {period}, {safety_period}")
        self.root = os.path.abspath(root)
        self.interval = interval
        self.period = period
        self.safety_period = safety_period
        self._excluded = excludes
        self._clock = clock
        table = DirectoryTable()  # its directories are the schedule's ring: held once
        self.schedule = ScanSchedule(clock, interval, period, hot_for, table.records)
        self._tree = TreeRescan(
            self.root, excludes, self.schedule, clock, self._hold_for(period), table
        )
        self._closed = threading.Event()
        self._woken = threading.Event()
        self._started = False
        self._due = 0.0
        self._hot_rested = 0.0  # when the hot set may be rescanned again (see `read`)
        self._laps = 0
        # When the previous and the current lap of the cold pass began (wall clock, ns): every
        # directory was last rescanned after the first, which `snapshot_diff` needs to know.
        self._lap_ns = (0, 0)
        self._root_failing = False

    def start(self) -> None:
        """Take the first look at the tree (no events); the first tick is due `interval` later."""
        if self._started:
            raise RuntimeError("PollWatcher.start() called twice")
        self._started = True
        started, started_ns = time.monotonic(), time.time_ns()
        self._lap_ns = (started_ns, started_ns)
        self._tree.load("")
        log.debug(
            "polling %s: %d directories (%.0f ms)",
            self.root,
            len(self.schedule),
            (time.monotonic() - started) * 1000,
        )
        self._due = self._clock() + self.interval

    def entries(self) -> int:
        """How many entries (not excluded) the tree holds below the root, as last seen."""
        return sum(header(record)[0] for record in self._tree.table.records.values())

    def directories(self) -> Iterable[str]:
        """The directories of the tree as last seen (relative paths, the root "")."""
        return self._tree.table.records.keys()

    def due_in(self) -> float:
        """Seconds until the next tick is due (0 when it is)."""
        return max(self._due - self._clock(), 0)

    def read(self, timeout: float | None) -> list[Event]:
        """Tick when one is due within `timeout` (None: whenever it is) and return what it
        found; else wait, []. A `wake` or `close` ends the wait with []."""
        if not self._started or self._closed.is_set():
            return []
        wait = self._due - self._clock()
        if timeout is not None and wait > timeout:
            self._sleep(max(timeout, 0))
            return []
        if wait > 0 and self._sleep(wait):
            return []
        started, started_ns, ticked = time.monotonic(), time.time_ns(), self._clock()
        with_hot = ticked >= self._hot_rested
        due = self.schedule.tick(hot=with_hot)
        if self.schedule.laps != self._laps:
            self._laps = self.schedule.laps
            self._lap_ns = (self._lap_ns[1], started_ns)
        try:
            hot = set(self.schedule.hot()) if with_hot else set()
            events = self._tree.rescan(due, self._lap_ns[0], hot)
        except OSError as error:
            # The root is gone or unreadable (an unmounted share): report nothing rather than a
            # deletion of everything; the first tick that works reports what changed meanwhile.
            if not self._root_failing:
                log.warning("cannot scan %s: %s; retrying every rescan", self.root, error)
                self._root_failing = True
            self._due = self._clock() + self.interval
            return []
        if self._root_failing:
            log.info("%s can be scanned again", self.root)
            self._root_failing = False
        # A hot set whose rescans took long (grown to thousands of entries by a storm) is left
        # out of the ticks that follow for three times as long: the hot set never
        # takes more than a quarter of the time, and the transfer of what it found gets the
        # rest. The cold pass keeps its pace: its slices are sized by the period, not by time.
        now = self._clock()
        if with_hot:
            self._hot_rested = now + _REST_PER_TICK * self._tree.hot_seconds
        self._due = now + self.schedule.interval
        if events or log.isEnabledFor(logging.DEBUG - 1):
            log.debug(
                "rescan of %d directories below %s: %d events (%.0f ms)",
                len(due),
                self.root,
                len(events),
                (time.monotonic() - started) * 1000,
            )
        return [] if self._closed.is_set() else events

    def settle(self, forwarded: bool) -> None:
        """Whether inotify is known to report this tree's changes (`forwarded`): then rescans are
        only a safety net, the cold pass alone at `safety_period`; otherwise the hot set is
        rescanned too, and the cold pass goes round in `period`."""
        period = self.safety_period if forwarded else self.period
        self.schedule.hot_enabled = not forwarded
        self.schedule.period = period
        # Without a hot set nothing needs the interval's pace: a tick a second carries the
        # safety net's slices, without five ticks' fixed costs a second.
        self.schedule.interval = max(self.interval, _SAFETY_TICK) if forwarded else self.interval
        self._tree.hold_for = self._hold_for(period)

    def heat(self, events: Iterable[Event]) -> None:
        """Changes reported by other means (inotify on a share that may forward only some):
        where they happened is where someone works, so those directories join the hot set."""
        self.schedule.touch(
            parent_of(path) for event in events for path in (event.path, event.target) if path
        )

    def _hold_for(self, period: float) -> float:
        # A vanished name is held (as last seen) until the cold pass went round once more; when
        # every tick is a whole pass (period <= interval) the rest of the tree was just seen.
        return 0.0 if period <= self.interval else period + self.interval

    def wake(self) -> None:
        self._woken.set()

    def close(self) -> None:
        """Stop: a waiting read() returns [] at once, and the table is released."""
        self._closed.set()
        self._woken.set()
        # Replaced, not cleared: a rescan still running in the reader's thread keeps the one it
        # has, and its events are dropped (read() checks `_closed`).
        self._tree.table = DirectoryTable()
        self.schedule.release()

    def _sleep(self, seconds: float) -> bool:
        """Wait `seconds`; True when woken or closed first (a wake is consumed)."""
        woken = self._woken.wait(seconds)
        self._woken.clear()
        return woken or self._closed.is_set()

    def scan(self) -> Snapshot:
        """One whole pass over the tree as a flat snapshot, the root itself the entry ``""``;
        directories that cannot be listed keep their entries as this watcher last saw them.
        Raises OSError when the root cannot be listed."""
        table = DirectoryTable()
        schedule = ScanSchedule(self._clock, 1, 1, 0, table.records)
        fresh = TreeRescan(self.root, self._excluded, schedule, self._clock, 0, table)
        fresh.load("")
        snapshot = fresh.table.snapshot()
        known = self._tree.table
        for directory in fresh.unlisted:
            prefix = directory + "/"
            for path, entry in known.snapshot().items():
                if path.startswith(prefix):
                    snapshot.setdefault(path, entry)
        return snapshot
