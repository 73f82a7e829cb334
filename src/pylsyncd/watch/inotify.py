"""Linux inotify: one watch per directory below the root, kernel records turned into `Event`s.

Three races shape this module and the two beside it (inotify_tree.py, move_pairing.py):

- A directory created while we look away: its watch is added *before* it is listed, so an entry
  created in between is either listed (and reported CREATED) or reported by the new watch.
- A rename: the kernel reports it as two records joined by a cookie. Pairing happens in one place,
  `MovePairing` (move_pairing.py); a half left without its partner becomes a delete (moved out)
  or a tree create (moved in), which is always a correct, if slower, description of what happened.
- A queue overflow: events are lost, so the whole watch set is rebuilt from a fresh walk and the
  pair is told to resync.

And records are read late: a listing sees the tree as it is now, ahead of the records still
queued. So a rename checks which of the watches below the old name really left with it
(`TreeWatches._watches_now`: a newer directory may have the name), and watches at the new name
what had no watch of its own (the table's unwatched directories).

`InotifyWatcher` reads the queue and translates its records; `TreeWatches` adds and removes the
kernel's watches and keeps the pure `WatchTable` (watch_table.py) in step with them.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping

from pylsyncd.events import Event, EventKind
from pylsyncd.watch import ExcludePredicate
from pylsyncd.watch.first_walk import FirstWalk
from pylsyncd.watch.inotify_backlog import RecordBacklog
from pylsyncd.watch.inotify_kernel import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    RECORD,
    InotifyInstance,
    inotify_add_watch,
    watch_limit_message,
)
from pylsyncd.watch.inotify_tree import HeldDirectories, TreeWatches, watch_in_stages
from pylsyncd.watch.move_pairing import PAIR_WAIT, MovePairing, directory_changed
from pylsyncd.watch.watch_table import WatchTable

__all__ = ["InotifyWatcher", "watch_limit_message"]

log = logging.getLogger(__name__)

_DRAIN_LIMIT = 8 * 1024 * 1024  # bytes per read() call, so a never-ending storm still returns
# Bound once for the hot loop, which runs ~30,000 times for 10,000 new files.
_WRITTEN = IN_MODIFY | IN_CLOSE_WRITE
_CREATED, _MODIFIED, _ATTRIB, _DELETED = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.ATTRIB,
    EventKind.DELETED,
)
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _nothing_excluded(path: str, is_dir: bool) -> bool:
    return False


class InotifyWatcher:
    """Watches every directory below `root` that `excludes` does not exclude."""

    def __init__(self, root: str, excludes: ExcludePredicate | None = None) -> None:
        self.root = os.path.abspath(root)
        self._excluded = excludes or _nothing_excluded
        self._inotify = InotifyInstance()
        self._table = WatchTable()
        # The syscall as this module names it when the watcher is made, so that a test can make
        # it fail by patching `inotify_add_watch` here.
        self._watches = TreeWatches(
            self.root, self._excluded, self._inotify, self._table, inotify_add_watch
        )
        self._rewatch_pending = False  # a mount below the root went away
        self._backlog = RecordBacklog(self._inotify)  # records read, not yet turned into events
        self.entries_found: int | None = None  # below the root at `start`: a progress total
        self.held = HeldDirectories(self._watches, self._inotify, self._table)

    @property
    def watch_count(self) -> int:
        """How many directories are watched now."""
        return len(self._table)

    def start(
        self, shared_paths: Mapping[str, str] | None = None, first_walk: FirstWalk | None = None
    ) -> None:
        """Watch the whole tree; raises WatchLimitError when the kernel runs out of watches.
        `shared_paths` maps each directory's path to the string another table of the tree
        holds for it, which the watches then share. With `first_walk`, the top of the tree is
        watched first and each subtree below it is told as covered (see `first_walk`); the
        caller finishes the walk."""
        if self._inotify.fd >= 0:
            raise RuntimeError("InotifyWatcher.start() called twice")
        self._inotify.open()
        started = time.monotonic()
        self._watches.shared_paths = shared_paths or {}
        try:
            if first_walk is None:
                self._watches.watch_tree("", None)
            else:
                watch_in_stages(self._watches, first_walk)
        finally:
            self._watches.shared_paths = {}
        self.entries_found = self._watches.entries_listed
        took_ms = (time.monotonic() - started) * 1000
        log.debug(
            "watching %d directories below %s (%.0f ms)", self.watch_count, self.root, took_ms
        )

    def read(self, timeout: float | None) -> list[Event]:
        """Events that arrived, waiting up to `timeout` seconds (None: no limit) for the first;
        [] on timeout or when woken."""
        if self._inotify.fd < 0 or not (self._backlog or self._inotify.ready(timeout)):
            return []
        out: list[Event | None] = []
        pairing = MovePairing(out)
        self._drain(out, pairing)
        # The two halves of a rename are queued back to back, but a read can fall in between.
        deadline = time.monotonic() + PAIR_WAIT
        while pairing.waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not (self._backlog or self._inotify.ready(remaining)):
                break
            self._drain(out, pairing)
        for departure in pairing.moved_out():
            # Moved out of the tree: its provisional DELETED stands, and the kernel would go on
            # watching the directory wherever it went.
            log.debug("moved out: %r", departure.path)
            self._watches.drop(departure.watches, departure.excluded_dirs)
        if self._rewatch_pending:
            self._rewatch_pending = False
            self._watches.rewatch()
        return [event for event in out if event is not None]

    def wake(self) -> None:
        """Make a `read` waiting in another thread return now (or the next one, if none waits)."""
        self._inotify.wake()

    def close(self) -> None:
        """Stop watching and release the inotify descriptor (idempotent; not during a read)."""
        if self._inotify.fd < 0:
            return
        self._inotify.close()
        self._table.clear()
        self._backlog.clear()

    def _drain(self, out: list[Event | None], pairing: MovePairing) -> None:
        total = 0
        backlog = self._backlog
        while total < _DRAIN_LIMIT:
            backlog.read_kernel_queue()
            if not backlog:
                return
            data = backlog.take()
            total += len(data)
            self._process(data, out, pairing)

    def _process(self, data: bytes, out: list[Event | None], pairing: MovePairing) -> None:
        """Turn one buffer of kernel records into events: the hot loop of a storm."""
        unpack = RECORD.unpack_from
        path_of = self._table.path_of
        excluded = self._excluded
        table = self._table
        append = out.append
        # A file created or written, then written again, is one event: all the records of one
        # read() reach the same batch, and its transfer reads the file after all of them. This
        # drops two thirds of a storm's events (IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE per file).
        last_wd, last_name = -1, b""  # the file of the previous record, when created or written
        offset, end = 0, len(data)
        while offset < end:
            wd, mask, cookie, length = unpack(data, offset)
            offset += 16 + length
            raw_name = data[offset - length : offset]
            if mask & _WRITTEN and wd == last_wd and raw_name == last_name:
                continue
            last_wd = -1
            parent = path_of(wd)
            if parent is None:
                if mask & IN_Q_OVERFLOW:
                    log.debug("inotify queue overflow below %s: rebuilding the watches", self.root)
                    out.append(Event(EventKind.OVERFLOW, ""))
                    self._watches.rewatch()  # now: the records after this one need the right paths
                continue  # a watch already dropped: removed, moved out, or gone
            if not length:
                self._directory_event(wd, parent, mask, out)
                continue
            # What os.fsdecode does, without its per-call checks: bytes that are not valid UTF-8
            # become surrogate escapes and travel back unchanged.
            name = raw_name.rstrip(b"\0").decode(_FS_ENCODING, _FS_ERRORS)
            path = f"{parent}/{name}" if parent else name
            if mask & _WRITTEN:
                last_wd, last_name = wd, raw_name
                if not excluded(path, False):
                    append(Event(_MODIFIED, path))
                continue
            is_dir = bool(mask & IN_ISDIR)
            if mask & IN_CREATE:
                if not is_dir:
                    last_wd, last_name = wd, raw_name
                if excluded(path, is_dir):
                    if is_dir:
                        table.exclude(path)
                    directory_changed(out, parent)
                    continue
                append(Event(_CREATED, path, is_dir))
                if is_dir and not self.held.holds_back(path):
                    self._watches.watch_tree(path, out)
            elif mask & IN_ATTRIB:
                if not excluded(path, is_dir):
                    append(Event(_ATTRIB, path, is_dir))
                    if is_dir and not table.is_watched(path) and not self.held.covers(path):
                        # Unreadable until this chmod: watch it now, and report what it holds.
                        self._watches.watch_tree(path, out)
            elif mask & IN_DELETE:
                if is_dir:
                    table.include(path)
                    table.take_unwatched_below(path)
                if excluded(path, is_dir):
                    directory_changed(out, parent)
                else:
                    append(Event(_DELETED, path, is_dir))
            elif mask & IN_MOVED_FROM:
                departure = self._watches.departure(path, is_dir)
                pairing.depart(cookie, departure, excluded(path, is_dir))
            elif mask & IN_MOVED_TO:
                target_excluded = excluded(path, is_dir)
                arrival = pairing.arrive(cookie, path, is_dir, target_excluded)
                if is_dir:  # a file takes no watches along, nor excluded directories
                    self._watches.directory_moved(arrival, path, target_excluded, out)

    def _directory_event(self, wd: int, path: str, mask: int, out: list[Event | None]) -> None:
        """A record about a watched directory itself rather than an entry in it."""
        if mask & (IN_IGNORED | IN_DELETE_SELF):
            self._table.forget(wd)
        if mask & IN_UNMOUNT:
            # What the mount hid is back, unwatched. Every watch on the file system reports the
            # unmount, so the watches are rebuilt once, when the read is done.
            out.append(Event(EventKind.OVERFLOW, ""))
            self._rewatch_pending = True
        elif not path and mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            log.debug("the root %s was moved or deleted", self.root)
            out.append(Event(EventKind.OVERFLOW, ""))
        elif not path and mask & IN_ATTRIB:
            # Any other directory's attributes are reported by its parent, with its name.
            out.append(Event(EventKind.ATTRIB, "", True))
