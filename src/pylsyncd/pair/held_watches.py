"""Watches a pair holds back while it writes whole trees into a side itself (a union merge's
one-sided copies), added on the side's reader thread when the writes end (`HeldDirectories`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from pylsyncd.watch import Watcher
from pylsyncd.watch.inotify import InotifyWatcher


class HeldWatches:
    """Hold requests from the pair thread; their releases, done by the reader between reads."""

    def __init__(self, wake: Callable[[], None], reading: Callable[[], bool]) -> None:
        self._wake = wake  # ends the reader's wait
        self._reading = reading  # whether the reader still runs (False: stopping)
        self._lock = threading.Lock()
        # Held watches to add on the reader thread, each with the event its holder waits on.
        self._releases: list[tuple[list[str], threading.Event]] = []

    @contextlib.contextmanager
    def held(self, watcher: Watcher | None, tops: list[str]) -> Iterator[None]:
        """While inside, directories new at or below `tops` get no inotify watch; on leaving,
        they are watched before this returns. Called from the pair thread."""
        inotify = _plain_inotify(watcher)
        if inotify is None:
            # Polling has nothing to hold. A hybrid's rescans would report the copies the
            # held watches did not (a reconcile of them all after the merge), so it holds none.
            yield
            return
        inotify.held.hold(tops)
        try:
            yield
        finally:
            done = threading.Event()
            with self._lock:
                self._releases.append((tops, done))
            self._wake()
            while not done.wait(0.1):
                if not self._reading():
                    break  # the pair is stopping: no watch is needed

    def release_due(self, watcher: Watcher | None, read_queued: Callable[[], None]) -> None:
        """On the reader thread, between reads: add the watches released since the last call.
        `read_queued` first reads what the kernel queued before, while still held."""
        if not self._releases:  # every read asks: no lock for the common answer
            return
        with self._lock:
            releases, self._releases = self._releases, []
        # A held directory's own IN_CREATE, read after its release, would be a batch for its
        # whole tree; read now, it is dropped with the copy's other events.
        read_queued()
        inotify = _plain_inotify(watcher)
        for tops, done in releases:
            try:
                if inotify is not None:  # replaced meanwhile: the new one watched all
                    inotify.held.release(tops)
            finally:
                done.set()


def _plain_inotify(watcher: Watcher | None) -> InotifyWatcher | None:
    """`watcher` when it is inotify alone (not a hybrid's part)."""
    return watcher if isinstance(watcher, InotifyWatcher) else None
