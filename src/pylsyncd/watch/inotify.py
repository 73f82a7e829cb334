"""Linux inotify: one watch per directory below the root, kernel records turned into `Event`s.

Three races shape this module:

- A directory created while we look away: its watch is added *before* it is listed, so an entry
  created in between is either listed (and reported CREATED) or reported by the new watch.
- A rename: the kernel reports it as two records joined by a cookie. Pairing happens in one place,
  `read()`; a half left without its partner becomes a delete (moved out) or a tree create (moved
  in), which is always a correct, if slower, description of what happened.
- A queue overflow: events are lost, so the whole watch set is rebuilt from a fresh walk and the
  pair is told to resync.

And records are read late: a listing sees the tree as it is now, ahead of the records still
queued. So a rename checks which of the watches below the old name really left with it
(`_watches_now`: a newer directory may have the name), and watches at the new name what had no
watch of its own (`_unwatched`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import select
import struct
import sys
import threading
import time
from dataclasses import dataclass, field

from pylsyncd.events import Event, EventKind, is_within, parent_of, rebase
from pylsyncd.watch import ExcludePredicate, WatchLimitError
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
    WATCH_LIMITS,
    WATCH_MASK,
    binding_watch_limit,
    inotify_add_watch,
    inotify_init,
    inotify_rm_watch,
    watch_limit_message,
)

log = logging.getLogger(__name__)

_RECORD = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of NUL-padded name
_READ_SIZE = 256 * 1024  # room for ~8,000 short records per read(2)
_MAX_RECORD = _RECORD.size + 256  # a 255-byte name, its NUL and padding to 16 bytes
_DRAIN_LIMIT = 8 * 1024 * 1024  # bytes per read() call, so a never-ending storm still returns
_PAIR_WAIT = 0.005  # how long a MOVED_FROM waits for its MOVED_TO after the queue ran dry
# Bound once for the hot loop, which runs ~30,000 times for 10,000 new files.
_WRITTEN = IN_MODIFY | IN_CLOSE_WRITE
_CREATED, _MODIFIED, _ATTRIB, _DELETED = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.ATTRIB,
    EventKind.DELETED,
)
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


@dataclass(slots=True)
class _Departure:
    """The first half of a rename (IN_MOVED_FROM), waiting for the second."""

    index: int  # its place in the output, holding a provisional DELETED (None: excluded)
    path: str
    is_dir: bool
    # A directory's watches and excluded directories at and below it when it left: by the time
    # the departure is settled, a new directory may have taken the name.
    watches: dict[str, int] = field(default_factory=dict)
    excluded_dirs: list[str] = field(default_factory=list)
    unwatched: list[str] = field(default_factory=list)  # below it, and without a watch


def _nothing_excluded(path: str, is_dir: bool) -> bool:
    return False


def _directory_changed(out: list[Event | None], path: str) -> None:
    """An excluded name came or went: its directory's mtime changed all the same."""
    event = Event(_ATTRIB, path, True)
    if not out or out[-1] != event:
        out.append(event)


class InotifyWatcher:
    """Watches every directory below `root` that `excludes` does not exclude."""

    def __init__(self, root: str, excludes: ExcludePredicate | None = None) -> None:
        self.root = os.path.abspath(root)
        self._excluded = excludes or _nothing_excluded
        self._fd = -1
        self._poll = select.poll()
        # An eventfd polled beside the inotify descriptor: `wake` from another thread ends a
        # read that waits without a timeout. The lock keeps `wake` off a descriptor `close`
        # released (its number may already be reused).
        self._wake_fd = -1
        self._wake_lock = threading.Lock()
        self._path_of: dict[int, str] = {}  # wd -> relative path of the watched directory
        self._wd_of: dict[str, int] = {}  # relative path -> wd
        # Excluded directories seen so far: a rename can make their new path included.
        self._excluded_dirs: set[str] = set()
        # Directories that vanished before their watch was added: renamed, or below a directory
        # renamed, before their IN_CREATE was read. The rename, once read, watches them.
        self._unwatched: set[str] = set()
        # Watches a listing found under a new name, with their subdirectories: listed again,
        # since what they hold is new at that name (wd -> new path).
        self._carried: dict[int, str] = {}
        self._denied_reported = False
        self._rewatch_pending = False  # a mount below the root went away

    @property
    def watch_count(self) -> int:
        """How many directories are watched now."""
        return len(self._path_of)

    def start(self) -> None:
        """Watch the whole tree; raises WatchLimitError when the kernel runs out of watches."""
        if self._fd >= 0:
            raise RuntimeError("InotifyWatcher.start() called twice")
        try:
            self._fd = inotify_init()
        except OSError as error:
            if error.errno != errno.EMFILE:
                raise
            raise WatchLimitError(
                "out of inotify instances: raise fs.inotify.max_user_instances "
                "(sysctl -w fs.inotify.max_user_instances=...)"
            ) from None
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._poll.register(self._wake_fd, select.POLLIN)
        started = time.monotonic()
        self._watch_tree("", None)
        log.debug(
            "watching %d directories below %s (%.0f ms)",
            self.watch_count,
            self.root,
            (time.monotonic() - started) * 1000,
        )

    def read(self, timeout: float | None) -> list[Event]:
        """Events that arrived, waiting up to `timeout` seconds (None: no limit) for the first;
        [] on timeout or when woken."""
        if self._fd < 0 or not self._ready(timeout):
            return []
        out: list[Event | None] = []
        held: dict[int, _Departure] = {}  # by cookie
        self._drain(out, held)
        # The two halves of a rename are queued back to back, but a read can fall in between.
        deadline = time.monotonic() + _PAIR_WAIT
        while held:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._ready(remaining):
                break
            self._drain(out, held)
        for departure in held.values():
            # Moved out of the tree: its provisional DELETED stands, and the kernel would go on
            # watching the directory wherever it went.
            log.debug("moved out: %r", departure.path)
            self._drop(departure.watches, departure.excluded_dirs)
        if self._rewatch_pending:
            self._rewatch_pending = False
            self._rewatch()
        return [event for event in out if event is not None]

    def wake(self) -> None:
        with self._wake_lock:
            if self._wake_fd >= 0:
                os.eventfd_write(self._wake_fd, 1)

    def close(self) -> None:
        """Stop watching and release the inotify descriptor (idempotent; not during a read)."""
        if self._fd < 0:
            return
        with self._wake_lock:
            os.close(self._wake_fd)
            self._wake_fd = -1
        fd, self._fd = self._fd, -1
        os.close(fd)  # drops every watch at once
        self._path_of.clear()
        self._wd_of.clear()
        self._excluded_dirs.clear()
        self._unwatched.clear()
        self._carried.clear()

    def _ready(self, timeout: float | None) -> bool:
        """Whether inotify events wait to be read; False after `timeout` or a `wake`."""
        ready = self._poll.poll(-1 if timeout is None else max(0, math.ceil(timeout * 1000)))
        if any(fd == self._wake_fd for fd, _ in ready):
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._wake_fd)  # consumed: the next read waits again
        return any(fd == self._fd for fd, _ in ready)

    def _drain(self, out: list[Event | None], held: dict[int, _Departure]) -> None:
        total = 0
        while total < _DRAIN_LIMIT and self._fd >= 0:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return
            total += len(data)
            self._process(data, out, held)
            if len(data) < _READ_SIZE - _MAX_RECORD:
                return  # the queue was empty: spare the read(2) that would say so

    def _process(self, data: bytes, out: list[Event | None], held: dict[int, _Departure]) -> None:
        """Turn one buffer of kernel records into events: the hot loop of a storm."""
        unpack = _RECORD.unpack_from
        path_of = self._path_of
        excluded = self._excluded
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
            parent = path_of.get(wd)
            if parent is None:
                if mask & IN_Q_OVERFLOW:
                    log.debug("inotify queue overflow below %s: rebuilding the watches", self.root)
                    out.append(Event(EventKind.OVERFLOW, ""))
                    self._rewatch()  # now: the records after this one need the right paths
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
                        self._excluded_dirs.add(path)
                    _directory_changed(out, parent)
                    continue
                append(Event(_CREATED, path, is_dir))
                if is_dir:
                    self._watch_tree(path, out)
            elif mask & IN_ATTRIB:
                if not excluded(path, is_dir):
                    append(Event(_ATTRIB, path, is_dir))
                    if is_dir and path not in self._wd_of:
                        # Unreadable until this chmod: watch it now, and report what it holds.
                        self._watch_tree(path, out)
            elif mask & IN_DELETE:
                if is_dir:
                    self._excluded_dirs.discard(path)
                    if self._unwatched:
                        self._unwatched.difference_update(self._unwatched_below(path))
                if excluded(path, is_dir):
                    _directory_changed(out, parent)
                else:
                    append(Event(_DELETED, path, is_dir))
            elif mask & IN_MOVED_FROM:
                # Provisionally a delete, at the position the rename happened.
                if excluded(path, is_dir):
                    _directory_changed(out, parent)
                    append(None)
                else:
                    append(Event(_DELETED, path, is_dir))
                held[cookie] = self._departure(len(out) - 1, path, is_dir)
            elif mask & IN_MOVED_TO:
                self._moved_to(path, is_dir, held.pop(cookie, None), out)

    def _directory_event(self, wd: int, path: str, mask: int, out: list[Event | None]) -> None:
        """A record about a watched directory itself rather than an entry in it."""
        if mask & (IN_IGNORED | IN_DELETE_SELF):
            self._forget(wd)
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

    def _departure(self, index: int, path: str, is_dir: bool) -> _Departure:
        if not is_dir:
            return _Departure(index, path, is_dir)
        unwatched = self._unwatched_below(path)
        self._unwatched.difference_update(unwatched)
        watches: dict[str, int] = {}
        for below, wd in self._watches_below(path).items():
            # The records are read late: the watch added for an earlier record (a listing, a
            # move in) may belong to a directory that took the name since, and ours has none.
            if self._watches_now(below, wd):
                unwatched.append(below)
            else:
                watches[below] = wd
        return _Departure(index, path, is_dir, watches, self._excluded_below(path), unwatched)

    def _moved_to(
        self, target: str, is_dir: bool, source: _Departure | None, out: list[Event | None]
    ) -> None:
        target_excluded = self._excluded(target, is_dir)
        if target_excluded:
            _directory_changed(out, parent_of(target))
            if is_dir:
                self._excluded_dirs.add(target)
        if source is None:  # moved in from outside the tree (or from an unwatched directory)
            if not target_excluded:
                out.append(Event(EventKind.CREATED, target, is_dir, tree=True))
                if is_dir:
                    self._watch_tree(target, None)
        elif out[source.index] is None:  # from an excluded path: new to the destination
            self._excluded_dirs.difference_update(source.excluded_dirs)
            if not target_excluded:
                out[source.index] = Event(EventKind.CREATED, target, is_dir, tree=True)
                if is_dir:
                    self._watch_tree(target, None)
        elif target_excluded:
            self._drop(source.watches, source.excluded_dirs)  # its provisional DELETED stands
        else:
            out[source.index] = Event(EventKind.MOVED, source.path, is_dir, target)
            if is_dir:
                self._rename_watches(source, target, out)
                for path in source.unwatched:
                    self._watch_tree(rebase(path, source.path, target), out)

    def _rename_watches(self, source: _Departure, new: str, out: list[Event | None]) -> None:
        """Carry the watches below a renamed directory over to its new path."""
        renamed: dict[str, int] = {}
        for path, wd in source.watches.items():
            if self._path_of.get(wd) == path:  # not dropped meanwhile
                self._forget(wd)
                renamed[rebase(path, source.path, new)] = wd
        for path, wd in renamed.items():
            self._path_of[wd] = path
            self._wd_of[path] = wd
        # Path patterns ("a/cache") can flip with the new location: drop what became excluded,
        # and watch what became included (a tree create: the destination never had it).
        for path in sorted(renamed):
            if path != new and path in self._wd_of and self._excluded(path, True):
                self._drop(self._watches_below(path), self._excluded_below(path))
                self._excluded_dirs.add(path)
        for path in source.excluded_dirs:
            self._excluded_dirs.discard(path)
            moved = rebase(path, source.path, new)
            if self._excluded(moved, True):
                self._excluded_dirs.add(moved)
            else:
                out.append(Event(EventKind.CREATED, moved, True, tree=True))
                self._watch_tree(moved, None)

    def _rewatch(self) -> None:
        """Events were lost, renames among them: rebuild every watch from a fresh walk."""
        stale = set(self._path_of)
        self._excluded_dirs.clear()
        self._unwatched.clear()
        try:
            stale -= self._watch_tree("", None)
        except OSError as error:  # the root itself is gone: the resync will report it
            log.debug("cannot watch %s again: %s", self.root, error)
            return
        for wd in stale:  # directories deleted or moved out of the tree meanwhile
            self._forget(wd)
            self._remove_watch(wd)

    def _watch_tree(self, top: str, out: list[Event | None] | None) -> set[int]:
        """Watch `top` and every directory below it that is not excluded; returns their wds.

        With `out`, every entry found is reported CREATED: `top` is new, and whatever appeared in
        it before its watch existed would otherwise be missed.
        """
        watched: set[int] = set()
        self._carried.clear()
        stack = [top]
        while stack:
            rel = stack.pop()
            known = self._wd_of.get(rel)
            wd = self._add_watch(rel)
            if wd is None:
                continue
            watched.add(wd)
            if out is not None and wd == known and self._carried.pop(wd, None) != rel:
                continue  # watched before it was last listed: its contents are covered
            try:
                with os.scandir(self._abs(rel)) as entries:
                    for entry in entries:
                        child = f"{rel}/{entry.name}" if rel else entry.name
                        is_dir = entry.is_dir(follow_symlinks=False)
                        if self._excluded(child, is_dir):
                            if is_dir:
                                self._excluded_dirs.add(child)
                            continue
                        if out is not None:
                            out.append(Event(EventKind.CREATED, child, is_dir))
                        if is_dir:
                            stack.append(child)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed since its watch was added: its deletion is reported
            except PermissionError:
                self._report_denied(rel)
        return watched

    def _add_watch(self, rel: str) -> int | None:
        """Watch one directory; None when it vanished or cannot be read."""
        try:
            wd = inotify_add_watch(self._fd, os.fsencode(self._abs(rel)), WATCH_MASK)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise self._limit_error() from None
            if not rel:
                raise  # the root itself: nothing to mirror
            if error.errno in (errno.ENOENT, errno.ENOTDIR):
                self._unwatched.add(rel)
                return None  # removed or replaced since it was listed (or since it was created)
            if error.errno == errno.EACCES:
                self._report_denied(rel)
                return None
            raise
        previous = self._path_of.get(wd)
        if previous is not None and previous != rel and self._wd_of.get(previous) == wd:
            # The same directory under a new name: listed after an overflow, or ahead of the
            # queued records of its rename. The watches below it go along, so that the records
            # about them (a subdirectory moved away meanwhile) name them below the new name.
            moved = self._watches_below(previous)
            for below in moved.values():
                self._forget(below)
            for path, below in moved.items():
                self._path_of[below] = self._carried[below] = rebase(path, previous, rel)
                self._wd_of[rebase(path, previous, rel)] = below
        self._path_of[wd] = rel
        self._wd_of[rel] = wd
        self._unwatched.discard(rel)
        return wd

    def _watches_now(self, rel: str, wd: int) -> bool:
        """Whether `wd` watches the directory at `rel` now (not one that has left that path)."""
        try:
            found = inotify_add_watch(self._fd, os.fsencode(self._abs(rel)), WATCH_MASK)
        except OSError:
            return False
        if found != wd and found not in self._path_of:
            self._remove_watch(found)  # an unwatched directory took the name: its event follows
        return found == wd

    def _watches_below(self, top: str) -> dict[str, int]:
        return {path: wd for path, wd in self._wd_of.items() if is_within(path, top)}

    def _excluded_below(self, top: str) -> list[str]:
        return [path for path in self._excluded_dirs if is_within(path, top)]

    def _unwatched_below(self, top: str) -> list[str]:
        return [path for path in self._unwatched if is_within(path, top)]

    def _drop(self, watches: dict[str, int], excluded_dirs: list[str]) -> None:
        """Stop the given watches (a directory left the tree, or is excluded now)."""
        for path, wd in watches.items():
            if self._path_of.get(wd) == path:
                self._forget(wd)
                self._remove_watch(wd)
        self._excluded_dirs.difference_update(excluded_dirs)

    def _remove_watch(self, wd: int) -> None:
        try:
            inotify_rm_watch(self._fd, wd)
        except OSError as error:
            if error.errno != errno.EINVAL:  # EINVAL: the kernel dropped it already
                raise

    def _forget(self, wd: int) -> None:
        """Drop a watch the kernel removed (IN_IGNORED) from the maps."""
        path = self._path_of.pop(wd, None)
        if path is not None and self._wd_of.get(path) == wd:
            del self._wd_of[path]  # unless a new directory took the name meanwhile

    def _limit_error(self) -> WatchLimitError:
        limit, sysctl = binding_watch_limit() or (self.watch_count, WATCH_LIMITS[0])
        return WatchLimitError(watch_limit_message(limit, self._count_unwatched(), sysctl))

    def _count_unwatched(self) -> int:
        """Directories in the tree (not excluded) without a watch yet: what the limit must fit."""
        missing = 0
        stack = [""]
        while stack:
            rel = stack.pop()
            missing += rel not in self._wd_of
            try:
                with os.scandir(self._abs(rel)) as entries:
                    for entry in entries:
                        child = f"{rel}/{entry.name}" if rel else entry.name
                        if entry.is_dir(follow_symlinks=False) and not self._excluded(child, True):
                            stack.append(child)
            except OSError:
                continue
        return missing

    def _report_denied(self, rel: str) -> None:
        if self._denied_reported:
            log.debug("cannot watch %r: permission denied", rel)
            return
        self._denied_reported = True
        log.warning(
            "cannot watch %s: permission denied, so changes below it are not mirrored "
            "(further unreadable directories are logged at debug level)",
            self._abs(rel),
        )

    def _abs(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root
