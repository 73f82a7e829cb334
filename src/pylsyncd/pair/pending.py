"""Events waiting to be applied: the reader thread adds them, the pair thread takes a batch.

While one batch is applied, the next one gathers here: a storm of 10,000 files goes through in a
few large batches, not 10,000 small ones.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from pylsyncd.coalesce import Batch, Change, coalesce, merge
from pylsyncd.events import Event


@dataclass(frozen=True)
class Gathered:
    """What `PendingEvents.take` hands over: one batch, and how many events it came from."""

    batch: Batch
    events: int
    since: float | None = None  # when its oldest event arrived (monotonic), if it has events

    def waited(self, started: float) -> float:
        """How long its oldest event waited before the batch was `started` (monotonic)."""
        return 0.0 if self.since is None else max(started - self.since, 0.0)


class PendingEvents:
    """Events waiting to be applied, shared by the reader thread and the pair thread."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._events: list[Event] = []
        self._carried = Batch()  # a failed batch, to be retried with the next one
        self._since: float | None = None  # when the oldest waiting change arrived
        self._since_wall: tuple[float, float] | None = None  # `_since` and its Unix time
        # Changes a transfer held back (`Outcome.deferred`): path -> (change, when it is due).
        self._deferred: dict[str, tuple[Change, float]] = {}

    def add(self, events: list[Event]) -> None:
        """Queue events the watcher reported."""
        with self._condition:
            self._events.extend(events)
            if self._since is None:
                self._since = time.monotonic()
            self._condition.notify()

    def requeue(self, failed: Batch) -> None:
        """Keep what a batch failed to apply, to be retried with the next one."""
        with self._condition:
            self._carried = merge(failed, self._carried)
            if self._since is None:
                self._since = time.monotonic()

    def defer(self, held: Batch, until: float) -> None:
        """Keep changes a transfer held back, to be taken again from `until` (monotonic)."""
        with self._condition:
            for change in held.changes:
                self._deferred[change.path] = (change, until)
            self._condition.notify()  # a wait recomputes its deadline

    def wake(self) -> None:
        """End a `wait` now (after `stopping` is set)."""
        with self._condition:
            self._condition.notify_all()

    def __len__(self) -> int:
        with self._condition:
            return len(self._events) + len(self._carried.changes) + len(self._deferred)

    def oldest_age(self) -> float:
        """Seconds the oldest change not taken yet has waited; 0 when none waits."""
        with self._condition:
            return 0.0 if self._since is None else time.monotonic() - self._since

    def oldest_since(self) -> float | None:
        """When (monotonic) the oldest change not taken yet was seen; None when none waits."""
        with self._condition:
            return self._since

    def oldest_seen(self) -> float | None:
        """When (Unix time) the oldest change not taken yet was seen; None when none waits."""
        with self._condition:
            if self._since is None:
                return None
            # In Unix time, computed once per change of `_since`, so the status stays equal.
            if self._since_wall is None or self._since_wall[0] != self._since:
                self._since_wall = (self._since, time.time() - (time.monotonic() - self._since))
            return self._since_wall[1]

    def wait(self, delay: float, stopping: threading.Event, wake_at: float | None = None) -> bool:
        """Wait until the oldest change has waited `delay` seconds, a held-back change is due,
        or `wake_at` (monotonic) has come; False if stopping first."""
        with self._condition:
            while not stopping.is_set():
                due = [self._since + delay] if self._since is not None else []
                due += [until for _, until in self._deferred.values()]
                due += [wake_at] if wake_at is not None else []
                if not due:
                    self._condition.wait()  # `add` or `wake` notifies: no idle wake-ups
                    continue
                remaining = min(due) - time.monotonic()
                if remaining <= 0:
                    return True
                self._condition.wait(remaining)
            return False

    def take(self, *, everything: bool = False) -> Gathered:
        """The batch of everything waiting (held-back changes once due, or `everything`), and
        how many events it came from."""
        with self._condition:
            events, self._events = self._events, []
            carried, self._carried = self._carried, Batch()
            since, self._since = self._since, None
        # Outside the lock: the reader thread must never wait on a storm's coalescing (the
        # kernel's queue fills meanwhile).
        batch = coalesce(events)
        batch = merge(carried, batch) if carried else batch
        # Merging drops renames, which would become copies: a batch with renames goes alone,
        # and the held-back changes with the next one.
        if everything or not batch.moves:
            with self._condition:
                now = time.monotonic()
                due = [c for c, until in self._deferred.values() if everything or until <= now]
                for change in due:
                    del self._deferred[change.path]
            if due:
                batch = merge(batch, Batch((), tuple(due)))
        return Gathered(batch, len(events), since)
