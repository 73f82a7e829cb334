"""A pair's watch on its source: the one owner of the watcher, and of the reader thread.

The reader drains the watcher into `PendingEvents` without ever waiting on a transfer, so the
kernel queue does not overflow during a storm. The watcher is replaced on that thread only: when
inotify runs out of watches (polling, or rescans, take over) and when the source came back after
it went away (its old watches are on what went away). Other threads only ever `wake` it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from pylsyncd.events import Event, EventKind
from pylsyncd.pair.held_watches import HeldWatches
from pylsyncd.pair.observer import PairObserver, ResyncReason
from pylsyncd.pair.retry import BACKOFF_FIRST
from pylsyncd.watch import Watcher, WatchLimitError
from pylsyncd.watch.choice import describe_watcher, entries_found
from pylsyncd.watch.first_walk import FirstWalk
from pylsyncd.watch.inotify import InotifyWatcher
from pylsyncd.watch.source_root import SourceRoot

log = logging.getLogger("pylsyncd")


class EventSink(Protocol):
    """Where a source watch puts what it reads (`PendingEvents`, or one side of a two-way set)."""

    def add(self, events: list[Event]) -> None:
        """Queue events the watcher reported."""

    def wake(self) -> None:
        """End the pair thread's wait."""


class WatcherFactory(Protocol):
    """Where a pair's source watch gets new watchers (`watch.choice.WatcherChoice`)."""

    def chosen(self) -> Watcher:
        """A new, unstarted watcher as the settings choose: to watch the source afresh."""

    def polling(self) -> Watcher:
        """A new, unstarted polling watcher: instead of one that ran out of inotify watches."""

    def with_rescans(self, watcher: Watcher) -> Watcher:
        """`watcher`, which runs but ran out of inotify watches, plus rescans (started)."""


class SourceWatch:
    """Watches a pair's source, feeds `pending`, and tells when the source is gone."""

    def __init__(
        self,
        name: str,
        source: str,
        watcher: Watcher,
        watchers: WatcherFactory,
        pending: EventSink,
        stopping: threading.Event,
        observer: PairObserver,
    ) -> None:
        self.name = name
        self._observer = observer
        self._root = SourceRoot(source)
        self._watchers = watchers
        self._pending = pending
        self._stopping = stopping
        # The watcher that is read and woken; None while the reader replaces it. Written only
        # under the lock, which `wake` takes too: no wake goes to a watcher being closed, and one
        # that finds None is not lost, since the reader looks at its flags before reading again.
        self._lock = threading.Lock()
        self._watcher: Watcher | None = watcher
        self._reader = threading.Thread(
            target=self._read_events, name=f"reader {name}", daemon=True
        )
        self._rewatch = threading.Event()  # set by the pair thread, done by the reader thread
        self._before_rewatch: Callable[[], None] | None = None
        self._held = HeldWatches(self.wake, self._reader_runs)
        self.paused = False  # the source is gone: nothing is applied until it is back
        self._came_back = False  # its full comparison is the source's return (for the metrics)

    def start(self, first_walk: FirstWalk | None = None) -> None:
        """Start watching, then reading; before the initial sync, so nothing changes unseen.
        With `first_walk`, an inotify watcher tells the sync how far it got (`first_walk`), and
        the walk is finished here, even when it failed."""
        abandoned = False
        try:
            abandoned = self._watch(self._replace(None), first_walk)
        finally:
            if first_walk is not None:
                first_walk.finish(abandoned=abandoned)
        self._reader.start()

    def wake(self) -> None:
        """End the reader's wait now; call it after setting what it looks at (`stopping`)."""
        with self._lock:
            if self._watcher is not None:
                self._watcher.wake()

    def rewatch(self, before: Callable[[], None]) -> None:
        """Watch the source afresh, then have the whole tree compared (what is left out of the
        watch changed); changes are held back until then, as when the source comes back.

        `before` runs on the reader thread between the old watcher's close and the new one's
        start: what it reads (the ignore rules) is then as new as the watches, and any later
        change raises an event of the new watcher.
        """
        self._before_rewatch = before
        self._rewatch.set()
        self.wake()

    def watches_held(self, tops: list[str]) -> AbstractContextManager[None]:
        """While inside, no watch below `tops` (the pair writes those trees itself, then reads
        them); on leaving, they are watched first (`HeldWatches`). For the pair thread."""
        return self._held.held(self._watcher, tops)

    def _reader_runs(self) -> bool:
        return self._reader.is_alive() and not self._stopping.is_set()

    def join(self) -> None:
        """Wait for the reader to end (it does soon after `stopping` is set and `wake`)."""
        self._reader.join()

    def close(self) -> None:
        """After `stopping` is set: end the reader, then stop watching."""
        self.wake()
        if self._reader.is_alive():
            self._reader.join()  # it returns within one read; then the watcher can close
        watcher = self._replace(None)
        if watcher is not None:
            watcher.close()

    def gone(self) -> str | None:
        """Why the source is not there now (then every change is held back), or None.

        Says so once when it goes and once when it is back; then the reader watches it afresh,
        and until it has (`watching_again`) changes are still held back.
        """
        absence = self._root.absence()
        if absence is not None:
            if not self.paused:
                self.paused = True
                log.error(
                    "%s: %s: pausing; the destination is left as it is until the source is back",
                    self.name,
                    absence,
                )
            return absence
        if self.paused:
            self.paused = False
            log.warning("%s: the source is back: resuming with a full comparison", self.name)
            self._rewatch.set()
            self.wake()  # the reader waits without a timeout
        return None

    @property
    def watching(self) -> str:
        """How the source is watched now, for the status ("" while the watcher is replaced)."""
        watcher = self._watcher  # read without the lock: a reference, replaced whole
        return "" if watcher is None else describe_watcher(watcher)

    @property
    def entries_found(self) -> int | None:
        """How many entries the watcher found below the root when it started, if it counted."""
        watcher = self._watcher
        return None if watcher is None else entries_found(watcher)

    def resync_reason(self) -> ResyncReason:
        """Why the full comparison that is due was asked for (the source's return: asked once)."""
        back, self._came_back = self._came_back, False
        return ResyncReason.SOURCE_BACK if back else ResyncReason.EVENTS_LOST

    @property
    def watching_again(self) -> bool:
        """Whether the source came back and the reader has not watched it afresh yet."""
        return self._rewatch.is_set()

    def _replace(self, watcher: Watcher | None) -> Watcher | None:
        """Make `watcher` the one read and woken; the one it replaces."""
        with self._lock:
            previous, self._watcher = self._watcher, watcher
        self._observer.watching(watcher)
        return previous

    def _watch(self, watcher: Watcher | None, first_walk: FirstWalk | None = None) -> bool:
        """Start `watcher` (see `start_watching`) and make it the current one. Returns whether
        it fell back to polling."""
        if watcher is None:
            return False
        watcher, fell_back = start_watching(self.name, watcher, self._watchers, first_walk)
        self._replace(watcher)
        return fell_back

    def _read_events(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._rewatch.is_set():
                    self._watch_again()
                    continue  # a stop asked for during the swap is seen before the next read
                self._held.release_due(self._watcher, lambda: self._read_into_pending(0))
                self._read_into_pending(None)  # until events come or `wake`
            # Whatever the kernel queued before the stop request still belongs to this run.
            self._read_into_pending(0)
        finally:
            self._pending.wake()

    def _read_into_pending(self, timeout: float | None) -> None:
        watcher = self._watcher  # replaced on this thread only
        if watcher is None:
            return
        try:
            events = watcher.read(timeout)
        except WatchLimitError as error:
            # New directories no longer fit: rescans find what their missing watches miss.
            log.warning("%s: %s; adding periodic rescans until then", self.name, error)
            self._replace(self._watchers.with_rescans(watcher))
            events = [Event(EventKind.OVERFLOW, "")]  # what that read held is lost: resync
        if events:
            self._pending.add(events)
            self._observer.events_read(events)

    def _watch_again(self) -> None:
        """The source is back (its old watches are on what went away), or what is left out of the
        watch changed: watch it afresh, then have the whole tree compared (in that order, so
        nothing changes unseen in between)."""
        previous = self._replace(None)
        if previous is not None:
            previous.close()
        before, self._before_rewatch = self._before_rewatch, None
        if before is not None:
            before()
        try:
            self._watch(self._watchers.chosen())
        except OSError as error:  # gone again already: the pair thread will see it
            log.debug("%s: cannot watch the source again: %s", self.name, error)
            self._before_rewatch = self._before_rewatch or before  # for the next try
            self._stopping.wait(BACKOFF_FIRST)
            return
        self._rewatch.clear()
        self._came_back = True
        self._pending.add([Event(EventKind.OVERFLOW, "")])


def start_watching(
    name: str, watcher: Watcher, watchers: WatcherFactory, first_walk: FirstWalk | None
) -> tuple[Watcher, bool]:
    """Start `watcher`, telling `first_walk` how far it got when it can (an inotify watcher);
    out of inotify watches, fall back to polling instead of dying. Returns the watcher started
    and whether it is the polling one."""
    try:
        try:
            if first_walk is not None and isinstance(watcher, InotifyWatcher):
                watcher.start(first_walk=first_walk)
            else:
                watcher.start()
        except WatchLimitError as error:
            log.warning("%s: %s; polling instead until then", name, error)
            watcher.close()
            watcher = watchers.polling()
            watcher.start()
            return watcher, True
    except BaseException:
        watcher.close()  # a watcher that could not start holds no watch of ours
        raise
    return watcher, False
