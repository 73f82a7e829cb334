"""The info line a pair logs for its batches: one a batch, at most one a second.

A log appended every 10 ms at `DELAY=0` is a hundred batches a second; a line each would flood
`docker logs` and cost a quarter of the daemon's CPU for that workload. Within a second of the
last line, batches are summed, and the sum is logged when the second is up, by the next batch or
by the pair's wait (`due`). A failed batch is logged at once, after the sum before it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pylsyncd.pair.progress import describe
from pylsyncd.transfer import Outcome

log = logging.getLogger("pylsyncd")

# Seconds between two info lines of one pair.
LINE_EVERY = 1.0


class BatchLog:
    """Sums a pair's batches between two lines."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self._next_line_at = 0.0
        self._sum = Outcome()
        self._batches = 0
        self._events = 0
        self._ms = 0.0

    def done(self, outcome: Outcome, events: int, elapsed_ms: float) -> None:
        """A batch was applied: logged now, or summed into the next line."""
        if not outcome.ok:  # its own line, with what failed, right away
            self.flush()
            log.info(
                "%s: %s from %d events in %.0f ms",
                self.name,
                describe(outcome),
                events,
                elapsed_ms,
            )
            return
        self._sum.copied += outcome.copied
        self._sum.bytes += outcome.bytes
        self._sum.dirs += outcome.dirs
        self._sum.links += outcome.links
        self._sum.deleted += outcome.deleted
        self._sum.moved += outcome.moved
        self._batches += 1
        self._events += events
        self._ms += elapsed_ms
        if self._clock() >= self._next_line_at:
            self.flush()

    def due(self) -> float | None:
        """When the summed batches are to be logged; None when there are none."""
        return self._next_line_at if self._batches else None

    def flush_if_due(self) -> None:
        """Log the summed batches if their second is up (the pair woke for it)."""
        if self._batches and self._clock() >= self._next_line_at:
            self.flush()

    def flush(self) -> None:
        """Log the summed batches now, if any."""
        if not self._batches:
            return
        batches = f" ({self._batches} batches)" if self._batches > 1 else ""
        log.info(
            "%s: %s from %d events in %.0f ms%s",
            self.name,
            describe(self._sum),
            self._events,
            self._ms,
            batches,
        )
        self._sum, self._batches, self._events, self._ms = Outcome(), 0, 0, 0.0
        self._next_line_at = self._clock() + LINE_EVERY
