"""Rescans for mounts that raise no inotify events for changes made elsewhere (Docker Desktop and
VM shared folders, NFS, SMB, 9p, FUSE): the difference between two snapshots of the tree becomes
the same `Event`s inotify would have given, so the same coalescer and transfers apply them.

A snapshot maps each path to (type, size, mtime_ns, inode, permissions), from one `scandir` pass
that never follows symlinks nor enters excluded directories. A directory that cannot be listed
(EACCES, or EIO on a share) keeps its entries as last seen: a hiccup is not a mass deletion.

How two snapshots become events (renames by inode, trees as one event) is `snapshot_diff`.

Idle cost: a rescan is due `interval` seconds after the previous one ended. After a rescan that
found nothing, the interval grows by half, up to `max_interval` (default four times `interval`:
1 -> 1.5 -> 2.25 -> 3.4 -> 4 s). A rescan of 100,000 entries takes about 0.45 s of CPU, so an
idle tree that size costs a tenth of a core instead of a third; the first change after a quiet
spell waits at most `max_interval` (plus a rescan). Any change brings `interval` back.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time

from pylsyncd.events import Event
from pylsyncd.watch import ExcludePredicate
from pylsyncd.watch.snapshot_diff import DIRECTORY_TYPE, Entry, Snapshot, diff

log = logging.getLogger(__name__)

_TYPE, _PERMISSIONS = 0o170000, 0o7777
_BACKOFF = 1.5
_MAX_INTERVAL_FACTOR = 4.0
_OPEN_ROOT = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_OPEN_DIRECTORY = _OPEN_ROOT | os.O_NOFOLLOW  # replaced by a symlink since it was listed: skip it
_VANISHED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


class PollWatcher:
    """Reports the differences between successive scans of `root`."""

    def __init__(
        self,
        root: str,
        excludes: ExcludePredicate | None = None,
        interval: float = 1.0,
        max_interval: float | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"poll interval must be positive, not {interval}")
        if max_interval is None:
            max_interval = interval * _MAX_INTERVAL_FACTOR
        if max_interval < interval:
            raise ValueError(f"max_interval {max_interval} is below interval {interval}")
        self.root = os.path.abspath(root)
        self.interval = interval
        self.max_interval = max_interval
        self._excluded = excludes
        self._current = interval
        self._floor = interval  # the shortest interval between rescans (see `settle`)
        self._closed = threading.Event()
        self._woken = threading.Event()
        self._snapshot: Snapshot | None = None
        self._scanned_ns = 0  # when the scan of `_snapshot` began, by the wall clock
        self._due = 0.0
        # Directories whose listing failed (EACCES, EIO): their entries as last seen, kept so a
        # network hiccup does not look like a mass deletion.
        self._unlisted: dict[str, list[tuple[str, Entry]]] = {}
        self._root_failing = False

    @property
    def current_interval(self) -> float:
        """Seconds from the end of one rescan to the next; grows while nothing changes."""
        return self._current

    def start(self) -> None:
        """Take the first snapshot (no events); the first rescan is due `interval` later."""
        if self._snapshot is not None:
            raise RuntimeError("PollWatcher.start() called twice")
        started = time.monotonic()
        self._scanned_ns = time.time_ns()
        self._snapshot = self.scan()
        log.debug(
            "polling %s: %d entries (%.0f ms)",
            self.root,
            len(self._snapshot),
            (time.monotonic() - started) * 1000,
        )
        self._due = time.monotonic() + self.interval

    def due_in(self) -> float:
        """Seconds until the next rescan is due (0 when it is)."""
        return max(self._due - time.monotonic(), 0)

    def read(self, timeout: float | None) -> list[Event]:
        """Rescan when one is due within `timeout` (None: whenever it is) and return the
        differences; else wait, []. A `wake` or `close` ends the wait with []."""
        previous = self._snapshot
        if previous is None:  # not started, or closed
            return []
        wait = self._due - time.monotonic()
        if timeout is not None and wait > timeout:
            self._sleep(max(timeout, 0))
            return []
        if wait > 0 and self._sleep(wait):
            return []
        started, started_ns = time.monotonic(), time.time_ns()
        try:
            snapshot = self.scan()
        except OSError as error:
            # The root is gone or unreadable (an unmounted share): report nothing rather than a
            # deletion of everything; the first scan that works reports what changed meanwhile.
            if not self._root_failing:
                log.warning("cannot scan %s: %s; retrying every rescan", self.root, error)
                self._root_failing = True
            self._due = time.monotonic() + self._current
            return []
        if self._root_failing:
            log.info("%s can be scanned again", self.root)
            self._root_failing = False
        if self._closed.is_set():
            return []
        events = diff(previous, snapshot, self._scanned_ns)
        self._snapshot, self._scanned_ns = snapshot, started_ns
        if events:
            self._current = self._floor
        else:
            self._current = min(self._current * _BACKOFF, self.max_interval)
        ended = time.monotonic()
        self._due = ended + self._current
        log.debug(
            "rescan of %s: %d entries, %d events (%.0f ms); next in %.2f s",
            self.root,
            len(snapshot),
            len(events),
            (ended - started) * 1000,
            self._current,
        )
        return events

    def settle(self, forwarded: bool) -> None:
        """Whether inotify is known to report this tree's changes (`forwarded`): then rescans are
        only a safety net and run at the slowest rate; otherwise at the normal one."""
        self._floor = self.max_interval if forwarded else self.interval
        self._current = max(self._current, self._floor)

    def wake(self) -> None:
        self._woken.set()

    def close(self) -> None:
        """Stop: a waiting read() returns [] at once, and the snapshot is released."""
        self._closed.set()
        self._woken.set()
        self._snapshot = None

    def _sleep(self, seconds: float) -> bool:
        """Wait `seconds`; True when woken or closed first (a wake is consumed)."""
        woken = self._woken.wait(seconds)
        self._woken.clear()
        return woken or self._closed.is_set()

    def scan(self) -> Snapshot:
        """One pass over the tree; the root itself is the entry ``""``. Raises OSError when the
        root cannot be listed."""
        snapshot, unlisted = scan_tree(self.root, self._excluded)
        self._keep_unlisted(snapshot, unlisted)
        return snapshot

    def _keep_unlisted(self, snapshot: Snapshot, unlisted: list[tuple[str, OSError]]) -> None:
        """Entries that could not be read keep what the previous scan saw at and below them."""
        previous = self._snapshot or {}
        known, self._unlisted = self._unlisted, {}
        newly: list[tuple[str, OSError]] = []
        for top, error in unlisted:
            kept = known.get(top)
            if kept is None:  # newly unreadable: one pass over the previous snapshot
                newly.append((top, error))
                below = top + "/"
                kept = [(path, entry) for path, entry in previous.items() if path.startswith(below)]
                if top in previous and top not in snapshot:
                    kept.append((top, previous[top]))
            self._unlisted[top] = kept
            for path, entry in kept:
                snapshot.setdefault(path, entry)
        for top, error in newly:
            log.debug("cannot read %r: %s", top, error)
        if newly:
            top, error = newly[0]
            more = f" (and {len(newly) - 1} more, at debug level)" if len(newly) > 1 else ""
            log.warning(
                "cannot read %s/%s: %s; its entries stay as last seen%s",
                self.root,
                top,
                error,
                more,
            )
        cleared = known.keys() - self._unlisted.keys()
        if cleared:
            log.info("can read again below %s: %s", self.root, ", ".join(sorted(cleared)))


def scan_tree(
    root: str, excluded: ExcludePredicate | None
) -> tuple[Snapshot, list[tuple[str, OSError]]]:
    """One pass over the tree at `root`, which is the entry ``""``, and the entries that could
    not be read, with why. Raises OSError when the root itself cannot be listed."""
    st = os.stat(root)
    mode = st.st_mode
    snapshot: Snapshot = {
        "": (mode & _TYPE, st.st_size, st.st_mtime_ns, st.st_ino, mode & _PERMISSIONS)
    }
    unlisted: list[tuple[str, OSError]] = []
    # The hot loop runs once per entry: everything it uses is bound to a local name and the
    # mode is split by arithmetic. Listing an open directory makes entry.stat() an fstatat()
    # relative to it, which spares the kernel a walk of the whole path for every entry.
    open_directory, close, scandir = os.open, os.close, os.scandir
    type_mask, permission_mask, directory_type = _TYPE, _PERMISSIONS, DIRECTORY_TYPE
    stack = [("", root)]
    pop, push = stack.pop, stack.append
    while stack:
        relative, directory = pop()
        prefix = relative + "/" if relative else ""
        try:
            fd = open_directory(directory, _OPEN_DIRECTORY if relative else _OPEN_ROOT)
        except OSError as error:
            if not relative:
                raise
            if error.errno not in _VANISHED:
                unlisted.append((relative, error))
            continue
        try:
            with scandir(fd) as entries:
                for entry in entries:
                    name = entry.name
                    path = prefix + name
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as error:
                        if error.errno not in _VANISHED:
                            unlisted.append((path, error))
                        continue
                    mode = st.st_mode
                    kind = mode & type_mask
                    if excluded is not None and excluded(path, kind == directory_type):
                        continue
                    snapshot[path] = (
                        kind,
                        st.st_size,
                        st.st_mtime_ns,
                        st.st_ino,
                        mode & permission_mask,
                    )
                    if kind == directory_type:
                        push((path, directory + "/" + name))
        except OSError as error:  # the listing broke off (EIO on a network share)
            if not relative:
                raise
            unlisted.append((relative, error))
        finally:
            close(fd)
    return snapshot, unlisted
