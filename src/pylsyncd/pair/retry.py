"""Retrying a pair's failed transfers: the backoff between attempts, and the failure in progress,
said once when it starts and once when it clears, not at every retry."""

from __future__ import annotations

import logging
import time

from pylsyncd.pair.observer import UNOBSERVED, FailureKind, PairObserver

log = logging.getLogger("pylsyncd")

BACKOFF_FIRST = 0.5  # seconds before the first retry, and between looks at a source that is gone
BACKOFF_MAX = 30.0


class Retry:
    """The failure a pair is in, if any, and how long to wait before the next attempt."""

    def __init__(self, name: str, observer: PairObserver = UNOBSERVED) -> None:
        self.name = name
        self._observer = observer  # counts every failed attempt, by kind
        self.backoff = BACKOFF_FIRST
        # One clock for the failure: the status file needs Unix time, and the log's "recovered
        # after" is measured from the same reading (never negative, should the clock be set
        # back), so the two cannot disagree about when the failure began.
        self.failing_since: float | None = None
        self.last_error: str | None = None  # kept after a recovery: the status shows it
        self._said = False  # the failure was logged, so its end will be too

    def failed(self, what: str, error: str | None, kind: FailureKind | None = None) -> None:
        """An attempt at `what` failed: said when the failure starts; later ones back off.
        Counted under `kind` (for the metrics) when given."""
        if kind is not None:
            self._observer.failed(kind)
        self.last_error = error
        if self.failing_since is None:
            self.failing_since = time.time()
        if not self._said:
            self._said = True
            log.error("%s: %s failed: %s; retrying with backoff", self.name, what, error)
        else:
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)

    def hold(self, reason: str) -> None:
        """The source is gone (its watch said so): for `health` a pause is a failure, since the
        replica no longer follows the source; look again soon, not after a growing backoff."""
        self.last_error = reason
        if self.failing_since is None:
            self.failing_since = time.time()
        self.backoff = BACKOFF_FIRST

    def succeeded(self) -> None:
        """An attempt went through: a failure that was said is said to be over."""
        if self._said and self.failing_since is not None:
            log.warning(
                "%s: recovered after %.1f s of failures",
                self.name,
                max(time.time() - self.failing_since, 0.0),
            )
        self.failing_since = None
        self._said = False
        self.backoff = BACKOFF_FIRST
