"""One source -> destination mirror: initial sync, the live loop, retries and the final flush.

Two threads per pair: the source watch's reader fills `PendingEvents`, and the pair thread (the
one that calls `Pair.run`) applies batches from it. The pair is handed its transfer, its watcher
and where to get new watchers (see `supervisor`), so a test can hand it fakes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from functools import partial

from pylsyncd.coalesce import Batch
from pylsyncd.config import PairConfig
from pylsyncd.excludes import ExcludeRules
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.pair.batch_log import BatchLog
from pylsyncd.pair.git_rules import GitRules
from pylsyncd.pair.heap import return_freed_memory
from pylsyncd.pair.observer import UNOBSERVED, FailureKind, PairObserver
from pylsyncd.pair.on_sync import OnSync
from pylsyncd.pair.pending import PendingEvents
from pylsyncd.pair.progress import PairProgress, ProgressReporter, describe, pair_status
from pylsyncd.pair.retry import Retry
from pylsyncd.pair.source_watch import SourceWatch, WatcherFactory
from pylsyncd.status import PairStatus
from pylsyncd.transfer import Outcome, Transfer
from pylsyncd.watch import Watcher

log = logging.getLogger("pylsyncd")


def pair_name(config: PairConfig) -> str:
    """How the log names a pair."""
    return f"{config.source} -> {config.destination}"


class Pair:
    """Mirrors one source into one destination until `stopping` is set."""

    def __init__(
        self,
        config: PairConfig,
        *,
        transfer: Transfer,
        watcher: Watcher,
        watchers: WatcherFactory,
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
        self.pending = PendingEvents()
        self.ready = threading.Event()
        self.fatal: str | None = None  # set when the pair cannot go on
        self.observer = observer
        self._source = SourceWatch(
            self.name, config.source, watcher, watchers, self.pending, stopping, observer
        )
        self._retry = Retry(self.name, observer)
        self._progress = PairProgress()  # what the status file shows of the last batch
        self._batch_log = BatchLog(self.name)  # the info lines of its batches
        self._git_rules = (
            GitRules(self.name, excludes, self._source)
            if isinstance(excludes, GitExcludes)
            else None
        )
        self._on_sync = OnSync(self.name, config, observer)  # does nothing without ON_SYNC

    def run(self) -> None:
        """The pair thread's body; an unexpected error ends it with `fatal` set."""
        try:
            self._source.start()  # before the initial sync: nothing changes unseen in between
            self._mirror()
        except Exception as error:
            # The supervisor stops the daemon and gives `fatal` as its one-line exit message.
            self.fatal = f"{type(error).__name__}: {error}"
            log.debug("%s: stopped by an unexpected error", self.name, exc_info=True)
        finally:
            self.stopping.set()  # stops the reader; a fatal error stops the daemon too
            self._source.close()
            self._on_sync.close()
            self._progress.stopped = True

    def status(self) -> PairStatus:
        """This pair's line in the status file."""
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
        """After `stopping` is set: end the reader's and the pair thread's waits now."""
        self._source.wake()
        self.pending.wake()

    def cancel(self) -> None:
        """Abandon the transfer in progress (the shutdown grace ran out)."""
        self.transfer.cancel()

    def _mirror(self) -> None:
        """Initial sync, then batches until stopping, then the final flush."""
        if self.config.init:
            self._initial_sync()
        # What the watchers outgrew while they were built, and what the initial sync freed,
        # would otherwise stay resident for the daemon's life (see `heap`).
        return_freed_memory()
        self.ready.set()
        log.info("%s: live, watching %s", self.name, self.config.source)
        while self.pending.wait(self.config.delay, self.stopping, wake_at=self._batch_log.due()):
            if not self._apply_next():
                self.stopping.wait(self._retry.backoff)
            self._batch_log.flush_if_due()
        self._source.join()  # its last read, of what was queued before the stop, is pending
        self._flush()
        self._batch_log.flush()

    def _flush(self) -> None:
        """On stop: apply what is pending, retrying until the grace period runs out."""
        deadline = time.monotonic() + self.grace
        while len(self.pending):
            if self._source.paused:
                log.error("%s: stopping with the source gone: nothing pending applied", self.name)
                return
            if self._apply_next(final=True):
                continue
            if time.monotonic() + self._retry.backoff > deadline:
                log.error("%s: stopping with %d changes not applied", self.name, len(self.pending))
                return
            time.sleep(self._retry.backoff)  # `stopping` is set: waiting on it would not wait

    def _initial_sync(self) -> None:
        delete = self.config.delete.at_startup
        if (
            delete
            and not self.config.allow_empty_source
            and empty_source_would_wipe(self.config, self.excludes)
        ):
            log.warning(
                "%s: the source is empty but the destination is not: syncing without deleting, "
                "so nothing is lost. If the source really is meant to be empty, set "
                "ALLOW_EMPTY_SOURCE=true (--allow-empty-source).",
                self.name,
            )
            delete = False
        log.info("%s: initial sync", self.name)
        started = time.monotonic()
        reporter = ProgressReporter(self.name, self.config.source, self.excludes, self._progress)
        sync = partial(self.transfer.full_sync, delete=delete, progress=reporter)
        while not (outcome := self._guarded(sync)).ok:
            self._retry.failed("initial sync", outcome.error, FailureKind.INITIAL_SYNC)
            if self.stopping.wait(self._retry.backoff):
                reporter.close()
                return
        reporter.close()
        self._retry.succeeded()
        log.info(
            "%s: initial sync done: %s in %.1f s",
            self.name,
            describe(outcome),
            time.monotonic() - started,
        )

    def _held_back(self) -> bool:
        """Whether every change stays pending because the source is gone, or not watched again
        yet since it came back."""
        absence = self._source.gone()
        if absence is not None:
            self._retry.hold(f"{absence}: paused")
            return True
        return self._source.watching_again

    def _apply_next(self, *, final: bool = False) -> bool:
        """Apply everything pending as one batch; on failure requeue it. True on success.

        `final`: the flush at stop; what a transfer would hold back is applied now.
        """
        if self._held_back():
            return False  # everything stays pending, untaken
        gathered = self.pending.take(everything=final)
        batch = gathered.batch
        if self._git_rules is not None:
            batch = self._git_rules.batch(batch)
        if not batch:
            return True
        started = time.monotonic()
        log.debug("%s: batch %s", self.name, batch)
        if batch.full_resync:
            if self._git_rules is None or not self._git_rules.comparing():
                log.warning("%s: the kernel dropped events: comparing the whole tree", self.name)
            self.observer.full_resync(self._source.resync_reason())
            resync = self._guarded(
                lambda: self.transfer.full_sync(delete=self.config.delete.while_running)
            )
            if not resync.ok:
                self.pending.requeue(batch)
                self._retry.failed("full resync", resync.error, FailureKind.FULL_RESYNC)
                return False
            return_freed_memory()  # a comparison of the whole tree, as after the initial sync
            batch = Batch(batch.moves, batch.changes)
        outcome = self._guarded(lambda: self.transfer.apply(batch, final=final))
        if outcome.deferred:
            self.pending.defer(outcome.deferred, outcome.deferred_until)
        elapsed_ms = (time.monotonic() - started) * 1000
        self._progress.batch_done(outcome, elapsed_ms)
        self._batch_log.done(outcome, gathered.events, elapsed_ms)
        if outcome.ok:
            self.observer.batch_applied(outcome, elapsed_ms / 1000, gathered.waited(started))
            self._on_sync.batch_applied(batch, outcome, final=final)
            self._retry.succeeded()
            return True
        self.pending.requeue(outcome.failed)
        self._retry.failed("applying changes", outcome.error, FailureKind.APPLY)
        return False

    def _guarded(self, step: Callable[[], Outcome]) -> Outcome:
        """Run a transfer step; an unexpected error fails the step instead of the pair."""
        try:
            return step()
        except Exception as error:
            log.debug("%s: unexpected error", self.name, exc_info=True)
            return Outcome(error=f"unexpected {type(error).__name__}: {error}")


def empty_source_would_wipe(config: PairConfig, excludes: ExcludeRules) -> bool:
    """Whether the source has nothing to mirror while the destination has something to lose
    (excluded entries count on neither side: a delete leaves them alone)."""

    def has_entries(path: str) -> bool:
        with os.scandir(path) as entries:
            return any(
                not excludes.excludes(e.name, e.is_dir(follow_symlinks=False)) for e in entries
            )

    # A remote destination cannot be listed here: an empty source is taken to have one to lose.
    remote = config.remote is not None
    return not has_entries(config.source) and (remote or has_entries(config.destination))
