"""What a two-way pair tells: one WARNING per conflict, one info line per batch that wrote, and
its line in the status file."""

from __future__ import annotations

import logging
import time

from pylsyncd.config import PairConfig
from pylsyncd.pair.observer import UNOBSERVED, PairObserver
from pylsyncd.pair.two_way_sync import Reconciled
from pylsyncd.status import PairState, PairStatus

log = logging.getLogger("pylsyncd")

OPEN_CONFLICTS_SHOWN = 50  # conflict copies the status lists by name


class TwoWayReport:
    """Counts and logs what each reconcile of one pair did."""

    def __init__(self, name: str, observer: PairObserver = UNOBSERVED) -> None:
        self.name = name
        self.observer = observer
        self.conflicts = 0  # since the daemon started
        self.batches = 0  # reconciles that wrote something
        self.changes = 0
        self.bytes = 0
        self._last: tuple[float, int, float] | None = None  # when, changes, milliseconds

    def done(self, done: Reconciled, started: float) -> None:
        """Log the conflicts and the batch line of one reconcile (`started`: monotonic)."""
        for conflict in done.conflicts:
            self.conflicts += 1
            self.observer.conflicted()
            loser = (
                f" kept as {conflict.copy}"
                if conflict.copy
                else " not kept (a directory's mode, or a conflict copy itself)"
            )
            log.warning(
                "%s: conflict: both sides changed %s; the %s's version took it on both sides, "
                "the %s's is%s",
                self.name, conflict.path, conflict.winner.value, conflict.loser.value, loser,
            )  # fmt: skip
        if done.changes:
            elapsed = (time.monotonic() - started) * 1000
            self.batches += 1
            self.changes += done.changes
            self.bytes += done.outcome.bytes
            self._last = (time.time(), done.changes, elapsed)
            log.info("%s: batch: %d changes, %d bytes in %.0f ms",
                     self.name, done.changes, done.outcome.bytes, elapsed)  # fmt: skip

    def status(
        self,
        config: PairConfig,
        state: PairState,
        *,
        ready: bool,
        pending: int,
        error: str | None,
        failing_since: float | None,
        watch: str,
        open_conflicts: set[str],
    ) -> PairStatus:
        """The pair's line in the status file."""
        last_at, last_changes, last_ms = self._last or (None, 0, 0.0)
        return PairStatus(
            source=config.source,
            destination=config.destination,
            state=state,
            initial_sync_done=ready,
            pending_events=pending,
            last_batch_at=last_at,
            last_batch_changes=last_changes,
            last_batch_ms=round(last_ms, 1),
            last_error=error,
            failing_since=failing_since,
            watch=watch,
            changes_total=self.changes,
            bytes_total=self.bytes,
            conflicts_total=self.conflicts,
            open_conflicts=tuple(sorted(open_conflicts)[:OPEN_CONFLICTS_SHOWN]),
        )
