"""Events waiting to be coalesced: the reader thread adds them, the source's thread takes a batch.

While the targets apply one batch, the next one gathers here: a storm of 10,000 files goes
through in a few large batches, not 10,000 small ones. What a target has not applied yet, its
failed and held-back changes, wait in its own queue (`target_queue`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from pylsyncd.coalesce import Batch, coalesce
from pylsyncd.events import Event


@dataclass(frozen=True)
class Gathered:
    """One batch, how many events it came from, and when the oldest of them arrived."""

    batch: Batch
    events: int
    since: float | None = None  # when its oldest event arrived (monotonic), if it has events

    def waited(self, started: float) -> float:
        """How long its oldest event waited before the batch was `started` (monotonic)."""
        return 0.0 if self.since is None else max(started - self.since, 0.0)


class PendingEvents:
    """Events waiting to be coalesced, shared by the reader thread and the source's thread."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._events: list[Event] = []
        self._since: float | None = None  # when the oldest waiting event arrived

    def add(self, events: list[Event]) -> None:
        """Queue events the watcher reported."""
        with self._condition:
            self._events.extend(events)
            if self._since is None:
                self._since = time.monotonic()
            self._condition.notify()

    def wake(self) -> None:
        """End a `wait` now (after `stopping` is set)."""
        with self._condition:
            self._condition.notify_all()

    def __len__(self) -> int:
        with self._condition:
            return len(self._events)

    def oldest_since(self) -> float | None:
        """When (monotonic) the oldest event not taken yet arrived; None when none waits."""
        with self._condition:
            return self._since

    def wait(self, delay: float, stopping: threading.Event) -> bool:
        """Wait until the oldest event has waited `delay` seconds; False if stopping first."""
        with self._condition:
            while not stopping.is_set():
                if self._since is None:
                    self._condition.wait()  # `add` or `wake` notifies: no idle wake-ups
                    continue
                remaining = self._since + delay - time.monotonic()
                if remaining <= 0:
                    return True
                self._condition.wait(remaining)
            return False

    def take(self) -> Gathered:
        """The batch of every event waiting, and how many events it came from."""
        with self._condition:
            events, self._events = self._events, []
            since, self._since = self._since, None
        # Outside the lock: the reader thread must never wait on a storm's coalescing (the
        # kernel's queue fills meanwhile).
        return Gathered(coalesce(events), len(events), since)
