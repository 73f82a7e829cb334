"""One destination of a source: its initial sync, its queue, its retries, its final flush.

A target runs on a thread of its own and takes its batches from its own `TargetQueue`, which
the source side fills (see `fan_out`): a target that is slow, failing or unreachable backs off
alone, and the source's other targets go on at their own pace. It also keeps watch over its
destination root (`destination_root`): replaced or emptied beneath it, or VERIFY_INTERVAL due,
the whole tree is compared.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from pylsyncd.coalesce import Batch
from pylsyncd.config import PairConfig
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.batch_log import BatchLog
from pylsyncd.pair.destination_root import DestinationRoot, Repair
from pylsyncd.pair.heap import return_freed_memory
from pylsyncd.pair.initial_sync import guarded, initial_sync
from pylsyncd.pair.observer import UNOBSERVED, FailureKind, PairObserver, ResyncReason
from pylsyncd.pair.on_sync import OnSync
from pylsyncd.pair.progress import PairProgress, pair_status
from pylsyncd.pair.retry import Retry
from pylsyncd.pair.target_queue import TargetQueue
from pylsyncd.status import PairStatus
from pylsyncd.transfer import Transfer
from pylsyncd.watch.first_walk import FirstWalk

log = logging.getLogger("pylsyncd")


def pair_name(config: PairConfig) -> str:
    """How the log names a pair (a target of a source)."""
    return f"{config.source} -> {config.destination}"


class SourceSide(Protocol):
    """What a target needs of its source's side (`fan_out.SourceGroup`)."""

    # How far the source's first walk got: its `top` is set once the initial sync may begin,
    # and it tells which subtrees the sync may read before the walk is over.
    first_walk: FirstWalk

    @property
    def paused(self) -> bool:
        """Whether the source is gone."""

    def held_back(self, retry: Retry) -> bool:
        """Whether nothing may be applied now (the source is gone, or watched afresh)."""

    @property
    def watching(self) -> str:
        """How the source is watched, for the status."""

    @property
    def entries_found(self) -> int | None:
        """How many entries the source's watcher found when it started (None: not counted)."""

    def backlog(self) -> tuple[int, float | None]:
        """Events not handed to the targets yet, and when (monotonic) the oldest came."""


class Backlog:
    """What one target has not applied yet: its queue and what its source has not handed over;
    read by the status file and the metrics' gauges."""

    def __init__(self, queue: TargetQueue, source: SourceSide) -> None:
        self._queue = queue
        self._source = source
        self._wall: tuple[float, float] | None = None  # a monotonic time and its Unix time

    def __len__(self) -> int:
        return len(self._queue) + self._source.backlog()[0]

    def oldest(self) -> float | None:
        """When (monotonic) the oldest change not applied yet was seen; None when none waits."""
        known = [t for t in (self._queue.oldest(), self._source.backlog()[1]) if t is not None]
        return min(known) if known else None

    def oldest_age(self) -> float:
        """The target's lag: seconds the oldest change not applied yet has waited, or 0."""
        oldest = self.oldest()
        return 0.0 if oldest is None else time.monotonic() - oldest

    def oldest_seen(self) -> float | None:
        """The same as Unix time; None when none waits."""
        oldest = self.oldest()
        if oldest is None:
            return None
        # Converted once per oldest change, so that an unchanged status stays equal.
        if self._wall is None or self._wall[0] != oldest:
            self._wall = (oldest, time.time() - (time.monotonic() - oldest))
        return self._wall[1]


class Target:
    """Mirrors its source into one destination until `stopping` is set."""

    def __init__(
        self,
        config: PairConfig,
        *,
        source: SourceSide,
        transfer: Transfer,
        excludes: ExcludeRules,
        stopping: threading.Event,
        grace: float,
        observer: PairObserver = UNOBSERVED,
    ) -> None:
        self.config = config
        self.name = pair_name(config)
        self.transfer = transfer
        self.excludes = excludes
        self.stopping = stopping
        self.grace = grace  # seconds the final flush may retry
        self.observer = observer
        self.queue = TargetQueue(config.queue_limit)
        self.pending = Backlog(self.queue, source)
        self.ready = threading.Event()
        self.fatal: str | None = None  # set when the target cannot go on
        self._source = source
        self._root = DestinationRoot(config, excludes)
        self._retry = Retry(self.name, observer)
        self._progress = PairProgress()
        self._batch_log = BatchLog(self.name)
        self._on_sync = OnSync(self.name, config, observer)  # does nothing without ON_SYNC

    def run(self) -> None:
        """The target thread's body; an unexpected error ends it with `fatal` set."""
        try:
            # The initial sync starts once the source is watched: nothing changes unseen.
            while not self._source.first_walk.top.wait(0.1):
                if self.stopping.is_set():
                    return
            if not self.stopping.is_set():
                self._mirror()
        except Exception as error:
            # The supervisor stops the daemon and gives `fatal` as its one-line exit message.
            self.fatal = f"{type(error).__name__}: {error}"
            log.debug("%s: stopped by an unexpected error", self.name, exc_info=True)
        finally:
            self.stopping.set()  # a fatal error stops the daemon
            self._on_sync.close()
            self._progress.stopped = True

    def status(self) -> PairStatus:
        """This target's line in the status file."""
        return pair_status(
            self.config,
            self._progress,
            self._retry,
            paused=self._source.paused,
            ready=self.ready.is_set(),
            pending=len(self.pending),
            watch=self._source.watching,
            pending_since=self.pending.oldest_seen(),
        )

    def wake(self) -> None:
        """After `stopping` is set: end the target's wait now."""
        self.queue.wake()

    def cancel(self) -> None:
        """Abandon the transfer in progress (the shutdown grace ran out)."""
        self.transfer.cancel()

    def _mirror(self) -> None:
        """Initial sync, then batches until stopping, then the final flush."""
        if self.config.init:
            self._initial_sync()
        self._root.compared()
        # What the watchers outgrew while they were built, and what the initial sync freed,
        # would otherwise stay resident for the daemon's life (see `heap`).
        return_freed_memory()
        self.ready.set()
        log.info("%s: live, watching %s", self.name, self.config.source)
        while self.queue.wait(self.stopping, wake_at=self._wake_at()):
            if not self._apply_next():
                self.stopping.wait(self._retry.backoff)
            self._batch_log.flush_if_due()
        # The source's last read, of what was queued before the stop, is still to come.
        self.queue.wait_closed(self.grace)
        self._flush()
        self._batch_log.flush()

    def _wake_at(self) -> float | None:
        times = [t for t in (self._batch_log.due(), self._root.due()) if t is not None]
        return min(times) if times else None

    def _flush(self) -> None:
        """On stop: apply what is pending, retrying until the grace period runs out."""
        deadline = time.monotonic() + self.grace
        while len(self.queue):
            if self._source.paused:
                log.error("%s: stopping with the source gone: nothing pending applied", self.name)
                return
            if self._apply_next(final=True):
                continue
            if time.monotonic() + self._retry.backoff > deadline:
                log.error("%s: stopping with %d changes not applied", self.name, len(self.queue))
                return
            time.sleep(self._retry.backoff)  # `stopping` is set: waiting on it would not wait

    def _initial_sync(self) -> None:
        """The first comparison of the whole tree, retried until it succeeds or stopping."""
        initial_sync(
            self.name,
            self.config,
            self.excludes,
            self.transfer,
            walk=self._source.first_walk,
            found=lambda: self._source.entries_found,
            progress=self._progress,
            retry=self._retry,
            stopping=self.stopping,
        )

    def _apply_next(self, *, final: bool = False) -> bool:
        """Apply what the queue holds as one batch; on failure requeue it. True on success.

        `final`: the flush at stop; what a transfer would hold back is applied now.
        """
        if self._source.held_back(self._retry):
            return False  # everything stays queued, untaken
        taken = self.queue.take(everything=final)
        gathered, reason = taken.gathered, taken.reason
        batch = gathered.batch
        repair = None if final else self._root.repair()
        if repair is not None:
            _say_why(self.name, repair)
            batch, reason = Batch(batch.moves, batch.changes, full_resync=True), repair.reason
        if not batch:
            self.queue.applied()
            return True
        started = time.monotonic()
        log.debug("%s: batch %s", self.name, batch)
        if batch.full_resync:
            reason = reason or ResyncReason.EVENTS_LOST
            if reason is ResyncReason.QUEUE_DROPPED:
                limit = self.queue.limit
                _say_why(self.name, Repair(reason, f"more than QUEUE_LIMIT={limit} changes waited"))
            self.observer.full_resync(reason)
            resync = guarded(
                self.name, lambda: self.transfer.full_sync(delete=self.config.delete.while_running)
            )
            if not resync.ok:
                self.queue.requeue(batch, gathered.since, reason)
                self._retry.failed("full resync", resync.error, FailureKind.FULL_RESYNC)
                return False
            self._root.compared()
            return_freed_memory()  # a comparison of the whole tree, as after the initial sync
            batch = Batch(batch.moves, batch.changes)
        outcome = guarded(self.name, lambda: self.transfer.apply(batch, final=final))
        if outcome.deferred:
            self.queue.defer(outcome.deferred, outcome.deferred_until)
        elapsed_ms = (time.monotonic() - started) * 1000
        self._progress.batch_done(outcome, elapsed_ms)
        self._batch_log.done(outcome, gathered.events, elapsed_ms)
        if outcome.ok:
            self.queue.applied()
            self.observer.batch_applied(outcome, elapsed_ms / 1000, gathered.waited(started))
            self._on_sync.batch_applied(batch, outcome, final=final)
            self._retry.succeeded()
            return True
        self.queue.requeue(outcome.failed, gathered.since)
        self._retry.failed("applying changes", outcome.error, FailureKind.APPLY)
        return False


def _say_why(name: str, repair: Repair) -> None:
    """The line that says why the whole tree is compared: a warning, unless it was asked for."""
    if repair.reason is ResyncReason.VERIFY:
        log.info("%s: VERIFY_INTERVAL: comparing the whole tree", name)
    else:
        log.warning("%s: %s: comparing the whole tree", name, repair.why)
