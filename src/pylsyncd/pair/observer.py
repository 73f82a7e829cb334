"""What a pair tells whoever observes it (the Prometheus metrics, see `pylsyncd.metrics`): the
numbers it already has at hand, events read, batches applied, failures. Without METRICS_ADDR the
pair is `UNOBSERVED`, whose methods do nothing, and prometheus_client is never imported.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from pylsyncd.events import Event
from pylsyncd.transfer import Outcome
from pylsyncd.watch import Watcher


class FailureKind(Enum):
    """What failed, as the errors metric labels it."""

    INITIAL_SYNC = "initial_sync"
    APPLY = "apply"  # a batch, or part of it
    FULL_RESYNC = "full_resync"
    ON_SYNC = "on_sync"  # the ON_SYNC command exited non-zero, or could not start


class ResyncReason(Enum):
    """Why a pair compared its whole tree while live."""

    EVENTS_LOST = "events_lost"  # the kernel's queue overflowed, or inotify ran out of watches
    SOURCE_BACK = "source_back"  # the source was gone and came back
    QUEUE_DROPPED = "queue_dropped"  # a target fell QUEUE_LIMIT changes behind (fan-out)
    DESTINATION_CHANGED = "destination_changed"  # its root was replaced or emptied beneath us
    VERIFY = "verify"  # VERIFY_INTERVAL's periodic comparison


class PairObserver(Protocol):
    """Told by a pair's threads what they did; each call is cheap (the hot path makes them)."""

    def events_read(self, events: list[Event]) -> None:
        """The reader thread queued these events."""

    def batch_applied(self, outcome: Outcome, seconds: float, waited: float) -> None:
        """A batch went through in `seconds`; its oldest change had waited `waited` before."""

    def failed(self, kind: FailureKind) -> None:
        """An attempt failed (counted at each attempt, not once per failure)."""

    def full_resync(self, reason: ResyncReason) -> None:
        """The whole tree is compared again while live."""

    def watching(self, watcher: Watcher | None) -> None:
        """The source is watched with `watcher` now (None while it is replaced)."""

    def on_sync_ran(self, ok: bool) -> None:
        """An ON_SYNC run ended: exit status 0, or not."""

    def conflicted(self) -> None:
        """Both sides of a two-way pair changed a path differently (one conflict)."""


class _Unobserved:
    """A pair nobody observes: every call does nothing."""

    def events_read(self, events: list[Event]) -> None:
        """Nothing to count."""

    def batch_applied(self, outcome: Outcome, seconds: float, waited: float) -> None:
        """Nothing to count."""

    def failed(self, kind: FailureKind) -> None:
        """Nothing to count."""

    def full_resync(self, reason: ResyncReason) -> None:
        """Nothing to count."""

    def watching(self, watcher: Watcher | None) -> None:
        """Nothing to count."""

    def on_sync_ran(self, ok: bool) -> None:
        """Nothing to count."""

    def conflicted(self) -> None:
        """Nothing to count."""


UNOBSERVED: PairObserver = _Unobserved()


class _EventsOnly(_Unobserved):
    """Forwards the events read and nothing else: a two-way pair's second watch, whose events
    are the pair's as much as the first's (its watches are not the source's)."""

    def __init__(self, observer: PairObserver) -> None:
        self._observer = observer

    def events_read(self, events: list[Event]) -> None:
        """Counted with the pair's."""
        self._observer.events_read(events)


def events_only(observer: PairObserver) -> PairObserver:
    """`observer` told only of the events read (UNOBSERVED stays UNOBSERVED)."""
    return observer if observer is UNOBSERVED else _EventsOnly(observer)
