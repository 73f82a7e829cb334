"""One source -> destination mirror: initial sync, the live loop, retries and the final flush.

Two threads per pair: a reader drains the watcher into `PendingEvents` without ever waiting on
a transfer (so the kernel queue does not overflow during a storm), and the pair thread applies
batches. While one batch is applied, the next one gathers: a storm of 10,000 files goes through
in a few large batches, not 10,000 small ones.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from pylsyncd.coalesce import Batch, coalesce, merge
from pylsyncd.config import Backend, PairConfig, WatchMode
from pylsyncd.events import Event, EventKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.progress import PairProgress, ProgressReporter, describe
from pylsyncd.status import PairState, PairStatus
from pylsyncd.transfer import Outcome, Ownership, Transfer
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.rsync import RsyncTransfer
from pylsyncd.watch import Watcher, WatchLimitError
from pylsyncd.watch.hybrid import HybridWatcher
from pylsyncd.watch.inotify import InotifyWatcher
from pylsyncd.watch.mounts import filesystem_type, needs_polling
from pylsyncd.watch.poll import PollWatcher
from pylsyncd.watch.source_root import SourceRoot

log = logging.getLogger("pylsyncd")

_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0


class PendingEvents:
    """Events waiting to be applied, shared by the reader thread and the pair thread."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._events: list[Event] = []
        self._carried = Batch()  # a failed batch, to be retried with the next one
        self._since: float | None = None  # when the oldest waiting change arrived

    def add(self, events: list[Event]) -> None:
        with self._condition:
            self._events.extend(events)
            if self._since is None:
                self._since = time.monotonic()
            self._condition.notify()

    def requeue(self, failed: Batch) -> None:
        with self._condition:
            self._carried = merge(failed, self._carried)
            if self._since is None:
                self._since = time.monotonic()

    def wake(self) -> None:
        with self._condition:
            self._condition.notify_all()

    def __len__(self) -> int:
        with self._condition:
            return len(self._events) + len(self._carried.changes)

    def wait(self, delay: float, stopping: threading.Event) -> bool:
        """Wait until the oldest change has waited `delay` seconds; False if stopping first."""
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

    def take(self) -> tuple[Batch, int]:
        """The batch of everything waiting, and how many events it came from."""
        with self._condition:
            events, self._events = self._events, []
            carried, self._carried = self._carried, Batch()
            self._since = None
        batch = coalesce(events)
        return (merge(carried, batch) if carried else batch), len(events)


def make_transfer(config: PairConfig, excludes: ExcludeRules, ownership: Ownership) -> Transfer:
    delete = config.delete.while_running
    if config.backend is Backend.RSYNC:
        return RsyncTransfer(
            config.source,
            config.destination,
            excludes,
            delete=delete,
            extra_args=config.rsync_args,
            ownership=ownership,
        )
    return DirectTransfer(
        config.source, config.destination, excludes, delete=delete, ownership=ownership
    )


class Pair:
    """Mirrors one source into one destination until `stopping` is set."""

    def __init__(
        self,
        config: PairConfig,
        stopping: threading.Event,
        grace: float,
        ownership: Ownership | None = None,
    ) -> None:
        self.config = config
        self.name = f"{config.source} -> {config.destination}"
        self.stopping = stopping
        self.grace = grace
        self.excludes = ExcludeRules(config.excludes)
        self.transfer = make_transfer(
            config, self.excludes, ownership or Ownership.for_daemon(None, None)
        )
        self.watcher: Watcher = self._make_watcher()
        self.pending = PendingEvents()
        self.ready = threading.Event()
        self.fatal: str | None = None  # set when the pair cannot go on
        self._failing_since: float | None = None  # monotonic, for the log
        self._backoff = _BACKOFF_FIRST
        self._progress = PairProgress()  # what the status file shows
        self.source_root = SourceRoot(config.source)
        self._paused = False  # the source is gone: nothing is applied until it is back
        self._rewatch = threading.Event()  # set by the pair thread, done by the reader thread

    def _make_watcher(self) -> Watcher:
        mode = self.config.watch
        if mode is WatchMode.AUTO:
            fstype = filesystem_type(self.config.source)
            if needs_polling(fstype):
                mode, reason = WatchMode.POLL, f"{fstype} does not report changes made elsewhere"
            else:
                mode, reason = WatchMode.INOTIFY, f"{fstype} reports changes through inotify"
            log.info("%s: watching with %s: %s", self.name, mode.value, reason)
        if mode is WatchMode.INOTIFY:
            return InotifyWatcher(self.config.source, self._excluded)
        if mode is WatchMode.POLL:
            return self._poll_watcher()
        return HybridWatcher(
            InotifyWatcher(self.config.source, self._excluded), self._poll_watcher()
        )

    def _poll_watcher(self) -> PollWatcher:
        return PollWatcher(self.config.source, self._excluded, interval=self.config.poll_interval)

    def _start_watching(self) -> None:
        """Start the watcher; out of inotify watches, fall back to rescans instead of dying."""
        try:
            self.watcher.start()
        except WatchLimitError as error:
            log.warning("%s: %s; polling instead until then", self.name, error)
            self.watcher.close()
            self.watcher = self._poll_watcher()
            self.watcher.start()

    def _excluded(self, path: str, is_dir: bool) -> bool:
        return self.excludes.excludes(path, is_dir)

    def run(self) -> None:
        """The pair thread's body."""
        reader = threading.Thread(target=self._read_events, name=f"reader {self.name}", daemon=True)
        try:
            self._start_watching()  # before the initial sync: nothing changes unseen in between
            reader.start()
            self._mirror(reader)
        except Exception as error:
            self.fatal = f"{type(error).__name__}: {error}"
            log.error("%s: stopped by an unexpected error: %s", self.name, self.fatal)
            log.debug("traceback", exc_info=True)
        finally:
            self.stopping.set()  # stops the reader; a fatal error stops the daemon too
            self.watcher.wake()
            if reader.is_alive():
                reader.join()  # it returns within one read timeout; then the watcher can close
            self.watcher.close()
            self._progress.stopped = True

    def status(self) -> PairStatus:
        """This pair's line in the status file."""
        progress = self._progress
        if progress.stopped:
            state = PairState.STOPPED
        elif self._paused:
            state = PairState.PAUSED
        elif progress.failing_since is not None:
            state = PairState.FAILING
        elif self.ready.is_set():
            state = PairState.LIVE
        else:
            state = PairState.INITIAL_SYNC
        return PairStatus(
            source=self.config.source,
            destination=self.config.destination,
            state=state,
            initial_sync_done=self.ready.is_set(),
            pending_events=len(self.pending),
            last_batch_at=progress.last_batch_at,
            last_batch_changes=progress.last_batch_changes,
            last_batch_ms=round(progress.last_batch_ms, 1),
            last_error=progress.last_error,
            failing_since=progress.failing_since,
        )

    def wake(self) -> None:
        """After `stopping` is set: end the reader's and the pair thread's waits now."""
        self.watcher.wake()
        self.pending.wake()

    def cancel(self) -> None:
        """Abandon the transfer in progress (the shutdown grace ran out)."""
        self.transfer.cancel()

    def _mirror(self, reader: threading.Thread) -> None:
        """Initial sync, then batches until stopping, then the final flush."""
        if self.config.init:
            self._initial_sync()
        self.ready.set()
        log.info("%s: live, watching %s", self.name, self.config.source)
        while self.pending.wait(self.config.delay, self.stopping):
            if not self._apply_next():
                self.stopping.wait(self._backoff)
        reader.join()
        self._flush()

    def _read_events(self) -> None:
        try:
            while not self.stopping.is_set():
                if self._rewatch.is_set():
                    self._watch_again()
                self._read_into_pending(None)  # until events come or `wake`
            # Whatever the kernel queued before the stop request still belongs to this run.
            self._read_into_pending(0)
        finally:
            self.pending.wake()

    def _read_into_pending(self, timeout: float | None) -> None:
        try:
            events = self.watcher.read(timeout)
        except WatchLimitError as error:
            # New directories no longer fit: rescans find what their missing watches miss.
            log.warning("%s: %s; adding periodic rescans until then", self.name, error)
            rescans = self._poll_watcher()
            rescans.start()
            self.watcher = HybridWatcher(self.watcher, rescans)
            events = [Event(EventKind.OVERFLOW, "")]  # what that read held is lost: resync
        if events:
            self.pending.add(events)

    def _watch_again(self) -> None:
        """The source is back: its old watches are on what went away. Watch it afresh, then have
        the whole tree compared (in that order, so nothing changes unseen in between)."""
        self.watcher.close()
        try:
            self.watcher = self._make_watcher()
            self._start_watching()
        except OSError as error:  # gone again already: the pair thread will see it
            log.debug("%s: cannot watch the source again: %s", self.name, error)
            self.stopping.wait(_BACKOFF_FIRST)
            return
        self._rewatch.clear()
        self.pending.add([Event(EventKind.OVERFLOW, "")])

    def _source_paused(self) -> bool:
        """Whether to hold every change back because the source is gone, or not watched yet
        since it came back. Says so once when it goes and once when it is back."""
        absence = self.source_root.absence()
        if absence is not None:
            if not self._paused:
                self._paused = True
                # For `health`, a pause is a failure: the replica no longer follows the source.
                self._progress.failed(f"{absence}: paused")
                log.error(
                    "%s: %s: pausing; the destination is left as it is until the source is back",
                    self.name,
                    absence,
                )
            self._backoff = _BACKOFF_FIRST  # look again soon, not after a growing backoff
            return True
        if self._paused:
            self._paused = False
            log.warning("%s: the source is back: resuming with a full comparison", self.name)
            self._rewatch.set()
            self.watcher.wake()  # the reader waits without a timeout
        return self._rewatch.is_set()

    def _flush(self) -> None:
        """On stop: apply what is pending, retrying until the grace period runs out."""
        deadline = time.monotonic() + self.grace
        while len(self.pending) and self.fatal is None:
            if self._paused:
                log.error("%s: stopping with the source gone: nothing pending applied", self.name)
                return
            if self._apply_next():
                continue
            if time.monotonic() + self._backoff > deadline:
                log.error("%s: stopping with %d changes not applied", self.name, len(self.pending))
                return
            time.sleep(self._backoff)

    def _initial_sync(self) -> None:
        delete = self.config.delete.at_startup
        if delete and not self.config.allow_empty_source and self._empty_source_would_wipe():
            log.warning(
                "%s: the source is empty but the destination is not: syncing without deleting, "
                "so nothing is lost. If the source really is meant to be empty, set "
                "ALLOW_EMPTY_SOURCE=true (--allow-empty-source).",
                self.name,
            )
            delete = False
        log.info("%s: initial sync", self.name)
        started = time.monotonic()
        reporter = ProgressReporter(self.name, self.config.source, self.excludes)
        while True:
            outcome = self._guarded(
                lambda: self.transfer.full_sync(delete=delete, progress=reporter)
            )
            if outcome.ok:
                break
            self._note_failure("initial sync", outcome)
            if self.stopping.wait(self._backoff):
                return
        self._note_success()
        log.info(
            "%s: initial sync done: %s in %.1f s",
            self.name,
            describe(outcome),
            time.monotonic() - started,
        )

    def _empty_source_would_wipe(self) -> bool:
        """Whether the source has nothing to mirror while the destination has something to lose
        (excluded entries count on neither side: a delete leaves them alone)."""

        def has_entries(path: str) -> bool:
            with os.scandir(path) as entries:
                return any(
                    not self._excluded(e.name, e.is_dir(follow_symlinks=False)) for e in entries
                )

        return not has_entries(self.config.source) and has_entries(self.config.destination)

    def _apply_next(self) -> bool:
        """Apply everything pending as one batch; on failure requeue it. True on success."""
        if self._source_paused():
            return False  # everything stays pending, untaken
        batch, events = self.pending.take()
        if not batch:
            return True
        started = time.monotonic()
        log.debug("%s: batch %s", self.name, batch)
        if batch.full_resync:
            log.warning("%s: the kernel dropped events: comparing the whole tree", self.name)
            resync = self._guarded(
                lambda: self.transfer.full_sync(delete=self.config.delete.while_running)
            )
            if not resync.ok:
                self.pending.requeue(batch)
                self._note_failure("full resync", resync)
                return False
            batch = Batch(batch.moves, batch.changes)
        outcome = self._guarded(lambda: self.transfer.apply(batch))
        elapsed_ms = (time.monotonic() - started) * 1000
        self._progress.batch_done(outcome, elapsed_ms)
        log.info(
            "%s: %s from %d events in %.0f ms", self.name, describe(outcome), events, elapsed_ms
        )
        if outcome.ok:
            self._note_success()
            return True
        self.pending.requeue(outcome.failed)
        self._note_failure("applying changes", outcome)
        return False

    def _guarded(self, step: Callable[[], Outcome]) -> Outcome:
        """Run a transfer step; an unexpected error fails the step instead of the pair."""
        try:
            return step()
        except Exception as error:
            log.debug("%s: unexpected error", self.name, exc_info=True)
            return Outcome(error=f"unexpected {type(error).__name__}: {error}")

    def _note_failure(self, what: str, outcome: Outcome) -> None:
        """Log a failure once when it starts (not at every retry), then back off."""
        self._progress.failed(outcome.error)
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.error("%s: %s failed: %s; retrying with backoff", self.name, what, outcome.error)
        else:
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX)

    def _note_success(self) -> None:
        self._progress.failing_since = None
        if self._failing_since is not None:
            log.warning(
                "%s: recovered after %.1f s of failures",
                self.name,
                time.monotonic() - self._failing_since,
            )
        self._failing_since = None
        self._backoff = _BACKOFF_FIRST
