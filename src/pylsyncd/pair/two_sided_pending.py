"""Events of both sides of a two-way pair, waiting for the next batch, each with its side.

Each side's `SourceWatch` feeds its own `SideFeed`; the pair thread waits on the one condition
they share, and takes both sides' events at once, coalesced per side (a path's events on one
side say nothing of the other's).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from pylsyncd.coalesce import Batch, ChangeKind, coalesce
from pylsyncd.entries import Side
from pylsyncd.events import Event, is_within_any


@dataclass(frozen=True)
class TwoSidedBatch:
    """What one take hands over: each side's coalesced batch, and how many events in all."""

    a: Batch = field(default_factory=Batch)
    b: Batch = field(default_factory=Batch)
    events: int = 0
    since: float | None = None  # when the oldest of them arrived (monotonic)

    @property
    def full_resync(self) -> bool:
        """Whether either side lost events: both whole trees must be compared."""
        return self.a.full_resync or self.b.full_resync

    def written(self) -> dict[Side, set[str]]:
        """Per side, the paths its events say were written (created, modified, moved there)."""
        found: dict[Side, set[str]] = {}
        for side, batch in ((Side.A, self.a), (Side.B, self.b)):
            paths = {c.path for c in batch.changes if c.kind is not ChangeKind.DELETE}
            found[side] = paths | {move.target for move in batch.moves}
        return found

    def touched(self) -> set[str]:
        """Every path either side's events name (both ends of a rename)."""
        paths: set[str] = set()
        for batch in (self.a, self.b):
            paths.update(change.path for change in batch.changes)
            for move in batch.moves:
                paths.update((move.source, move.target))
        return paths


class TwoSidedPending:
    """The events both sides' readers add, and the wait of the pair thread."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._events: dict[Side, list[Event]] = {Side.A: [], Side.B: []}
        self._since: float | None = None  # when the oldest waiting event arrived (monotonic)
        # Per side, the subtrees whose events are the daemon's own writes, to be read whole
        # afterwards (`quiet_below`).
        self._quiet: dict[Side, frozenset[str]] = {Side.A: frozenset(), Side.B: frozenset()}

    @contextlib.contextmanager
    def quiet_below(self, side: Side, roots: list[str]) -> Iterator[None]:
        """While inside: drop `side`'s events that name only paths at or below `roots`.

        For a union merge's one-sided copies, whose every copy is read and compared once the
        copy is done (`one_sided.agreed_records`): an event dropped here came from the kernel
        before the end of this block, so whatever it reports is there when the copies are
        read, and a difference goes back to reconcile. Without this, the 50,000 events of a
        merge's copies are one more reconcile of every path copied after the start."""
        with self._condition:
            self._quiet[side] = self._quiet[side] | frozenset(roots)
        try:
            yield
        finally:
            with self._condition:
                self._quiet[side] = self._quiet[side] - frozenset(roots)

    def feed(self, side: Side) -> SideFeed:
        """Where `side`'s watch adds its events."""
        return SideFeed(self, side)

    def add(self, side: Side, events: list[Event]) -> None:
        """Queue events one side's watcher reported."""
        quiet = self._quiet[side]  # read after the watcher's read: see `quiet_below`
        if quiet:
            events = [event for event in events if not _all_below(event, quiet)]
            if not events:
                return
        with self._condition:
            self._events[side].extend(events)
            if self._since is None:
                self._since = time.monotonic()
            self._condition.notify()

    def wake(self) -> None:
        """End a `wait` now (after `stopping` is set)."""
        with self._condition:
            self._condition.notify_all()

    def __len__(self) -> int:
        with self._condition:
            return sum(len(events) for events in self._events.values())

    def oldest_age(self) -> float:
        """Seconds the oldest waiting event has waited; 0 when none waits."""
        with self._condition:
            return 0.0 if self._since is None else time.monotonic() - self._since

    def wait(self, delay: float, stopping: threading.Event, wake_at: float) -> bool:
        """Wait until the oldest event has waited `delay` seconds or `wake_at` (monotonic) has
        come; False if stopping first."""
        with self._condition:
            while not stopping.is_set():
                due = wake_at if self._since is None else min(self._since + delay, wake_at)
                remaining = due - time.monotonic()
                if remaining <= 0:
                    return True
                self._condition.wait(remaining)
            return False

    def take(self) -> TwoSidedBatch:
        """Both sides' events, coalesced per side (outside the lock, as `PendingEvents` does)."""
        with self._condition:
            a, b = self._events[Side.A], self._events[Side.B]
            self._events = {Side.A: [], Side.B: []}
            since, self._since = self._since, None
        return TwoSidedBatch(coalesce(a), coalesce(b), len(a) + len(b), since)


class SideFeed:
    """One side's entry into the shared set: what a `SourceWatch` adds to and wakes."""

    def __init__(self, pending: TwoSidedPending, side: Side) -> None:
        self._pending = pending
        self._side = side

    def add(self, events: list[Event]) -> None:
        """Queue this side's events."""
        self._pending.add(self._side, events)

    def wake(self) -> None:
        """End the pair thread's wait."""
        self._pending.wake()


def _all_below(event: Event, roots: frozenset[str]) -> bool:
    """Whether every path `event` names is one of `roots` or below one."""
    return is_within_any(event.path, roots) and (
        event.target is None or is_within_any(event.target, roots)
    )
