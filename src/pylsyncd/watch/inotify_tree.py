"""The kernel's inotify watches over one tree, kept in step with a `WatchTable`.

The watcher (inotify.py, whose docstring tells the races involved) tells this class what its
records said: a directory created, renamed, gone. This class adds and removes the kernel's
watches accordingly and records in the table what it did.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable, Mapping

from pylsyncd.events import Event, EventKind, is_within_any, rebase
from pylsyncd.watch import ExcludePredicate, WatchLimitError
from pylsyncd.watch.first_walk import SPLIT_DEPTH, SPLIT_WANTED, FirstWalk
from pylsyncd.watch.inotify_kernel import (
    WATCH_LIMITS,
    WATCH_MASK,
    InotifyInstance,
    binding_watch_limit,
    watch_limit_message,
)
from pylsyncd.watch.move_pairing import Arrival, Departure, MoveOutcome
from pylsyncd.watch.watch_table import WatchTable

log = logging.getLogger(__name__)
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()

# inotify_add_watch(fd, path, mask) -> wd, raising OSError: `inotify_kernel.inotify_add_watch`.
AddWatch = Callable[[int, bytes, int], int]


class TreeWatches:
    """One watch per directory below `root` that `excluded` does not exclude."""

    def __init__(
        self,
        root: str,
        excluded: ExcludePredicate,
        inotify: InotifyInstance,
        table: WatchTable,
        add_watch: AddWatch,
    ) -> None:
        self.root = root
        self._excluded = excluded
        self._inotify = inotify
        self._table = table
        self._add_watch_call = add_watch
        self._denied_reported = False
        # path -> the same path as another table of this tree already holds it (the hybrid's
        # rescans): a directory's path is then one string in memory, not two.
        self.shared_paths: Mapping[str, str] = {}
        self.entries_listed = 0  # entries (not excluded) the last `watch_tree` found

    def watch_tree(
        self, top: str, out: list[Event | None] | None, watched: set[int] | None = None
    ) -> None:
        """Watch `top` and every directory below it that is not excluded; their wds go into
        `watched` when given (a set of all of them would outlive the walk in fragmented memory).
        With `out`, every entry found is reported CREATED: `top` is new, and whatever appeared in
        it before its watch existed would otherwise be missed."""
        self.begin_walk()
        stack = [top]
        while stack:
            self.watch_directory(stack.pop(), stack, out, watched)

    def begin_walk(self) -> None:
        """A walk of a new tree starts: `entries_listed` counts what it finds."""
        self._table.begin_listing()
        self.entries_listed = 0

    def watch_directory(
        self,
        rel: str,
        subdirectories: list[str],
        out: list[Event | None] | None,
        watched: set[int] | None,
    ) -> None:
        """Watch the directory at `rel`, then list it: its directories not excluded go into
        `subdirectories`, and with `out` every entry is reported CREATED."""
        table = self._table
        known = None if out is None else table.wd_of(rel)
        absolute = self._abs(rel)
        wd = self._add_watch(rel, absolute)
        if wd is None:
            return
        if watched is not None:
            watched.add(wd)
        if out is not None and wd == known and table.carried_to(wd) != rel:
            return  # watched before it was last listed: its contents are covered
        listed = 0
        try:
            with os.scandir(absolute) as entries:
                for entry in entries:
                    child = f"{rel}/{entry.name}" if rel else entry.name
                    is_dir = entry.is_dir(follow_symlinks=False)
                    if self._excluded(child, is_dir):
                        if is_dir:
                            table.exclude(child)
                        continue
                    listed += 1
                    if out is not None:
                        out.append(Event(EventKind.CREATED, child, is_dir))
                    if is_dir:
                        subdirectories.append(self.shared_paths.get(child, child))
        except (FileNotFoundError, NotADirectoryError):
            pass  # removed since its watch was added: its deletion is reported
        except PermissionError:
            self._report_denied(rel)
        self.entries_listed += listed

    def rewatch(self) -> None:
        """Events were lost, renames among them: rebuild every watch from a fresh walk."""
        stale = self._table.wds()
        self._table.forget_notes()
        try:
            watched: set[int] = set()
            self.watch_tree("", None, watched)
            stale -= watched
        except OSError as error:  # the root itself is gone: the resync will report it
            log.debug("cannot watch %s again: %s", self.root, error)
            return
        for wd in stale:  # directories deleted or moved out of the tree meanwhile
            self._table.forget(wd)
            self._inotify.remove_watch(wd)

    def departure(self, path: str, is_dir: bool) -> Departure:
        """The first half of a rename of `path`, with what a directory takes along."""
        if not is_dir:
            return Departure(path, is_dir)
        unwatched = self._table.take_unwatched_below(path)
        watches: dict[str, int] = {}
        for below, wd in self._table.watches_below(path).items():
            # The records are read late: the watch added for an earlier record (a listing, a
            # move in) may belong to a directory that took the name since, and ours has none.
            if self._watches_now(below, wd):
                unwatched.append(below)
            else:
                watches[below] = wd
        return Departure(path, is_dir, watches, self._table.excluded_below(path), unwatched)

    def directory_moved(
        self, arrival: Arrival, target: str, excluded: bool, out: list[Event | None]
    ) -> None:
        """The second half of a directory's rename, to `target` (`excluded` or not): follow it."""
        source = arrival.departure
        if excluded:
            self._table.exclude(target)
        if source is None:  # moved in from outside the tree (or from an unwatched directory)
            if not excluded:
                self.watch_tree(target, None)
        elif arrival.outcome is MoveOutcome.ARRIVED:  # from an excluded path
            self._table.include(*source.excluded_dirs)
            if not excluded:
                self.watch_tree(target, None)
        elif arrival.outcome is MoveOutcome.LEFT:
            self.drop(source.watches, source.excluded_dirs)  # its provisional DELETED stands
        else:
            self._rename(source, target, out)
            for path in source.unwatched:
                self.watch_tree(rebase(path, source.path, target), out)

    def drop(self, watches: Mapping[str, int], excluded_dirs: list[str]) -> None:
        """Stop the given watches (a directory left the tree, or is excluded now)."""
        for wd in self._table.drop(watches, excluded_dirs):
            self._inotify.remove_watch(wd)

    def _rename(self, source: Departure, new: str, out: list[Event | None]) -> None:
        """Carry the watches below a renamed directory over to its new path."""
        table = self._table
        renamed = table.rename(source.watches, source.path, new)
        # Path patterns ("a/cache") can flip with the new location: drop what became excluded,
        # and watch what became included (a tree create: the destination never had it).
        for path in sorted(renamed):
            if path != new and table.is_watched(path) and self._excluded(path, True):
                self.drop(table.watches_below(path), table.excluded_below(path))
                table.exclude(path)
        for path in source.excluded_dirs:
            table.include(path)
            moved = rebase(path, source.path, new)
            if self._excluded(moved, True):
                table.exclude(moved)
            else:
                out.append(Event(EventKind.CREATED, moved, True, tree=True))
                self.watch_tree(moved, None)

    def _add_watch(self, rel: str, absolute: str) -> int | None:
        """Watch one directory (`absolute`: its path); None when it vanished or cannot be
        read."""
        path = absolute.encode(_FS_ENCODING, _FS_ERRORS)
        try:
            wd = self._add_watch_call(self._inotify.fd, path, WATCH_MASK)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise _limit_error(self.root, self._excluded, self._table) from None
            if not rel:
                raise  # the root itself: nothing to mirror
            if error.errno in (errno.ENOENT, errno.ENOTDIR):
                self._table.mark_unwatched(rel)
                return None  # removed or replaced since it was listed (or since it was created)
            if error.errno == errno.EACCES:
                self._report_denied(rel)
                return None
            raise
        self._table.add(wd, rel)
        return wd

    def _watches_now(self, rel: str, wd: int) -> bool:
        """Whether `wd` watches the directory at `rel` now (not one that has left that path)."""
        try:
            found = self._add_watch_call(self._inotify.fd, os.fsencode(self._abs(rel)), WATCH_MASK)
        except OSError:
            return False
        if found != wd and self._table.path_of(found) is None:
            # An unwatched directory took the name: its event follows.
            self._inotify.remove_watch(found)
        return found == wd

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


def watch_in_stages(watches: TreeWatches, first_walk: FirstWalk) -> None:
    """Watch the whole tree for an initial sync that runs beside: the root and the levels below
    it, one after the other until a level holds `SPLIT_WANTED` directories or `SPLIT_DEPTH`
    levels are watched (the sync's split), then each directory of the level below with all it
    holds, each then told covered (see `first_walk`)."""
    watches.begin_walk()
    level = [""]
    levels = 0
    while levels < SPLIT_DEPTH:
        below: list[str] = []
        for rel in level:
            watches.watch_directory(rel, below, None, None)
        level, levels = below, levels + 1
        if len(level) >= SPLIT_WANTED:
            break
    first_walk.top_watched(levels)
    # From the end: the helper takes the sync's subtrees from the end of its list, which lists
    # the same directories in the same order.
    for subtree in reversed(level):
        stack = [subtree]
        while stack:
            watches.watch_directory(stack.pop(), stack, None, None)
        first_walk.cover(subtree)


class HeldDirectories:
    """Trees the daemon is about to write whole itself, whose new directories get no watch until
    released: each would otherwise cost a listing, then an event per entry written, which the
    reader turns into events beside the writer. Whoever holds them reads those trees once the
    watches are added (as the initial sync does), which sees what was written before."""

    def __init__(self, watches: TreeWatches, inotify: InotifyInstance, table: WatchTable) -> None:
        self._watches = watches
        self._inotify = inotify
        self._table = table
        # Replaced whole, so another thread may hold while the reader looks.
        self._tops: frozenset[str] = frozenset()

    def hold(self, tops: list[str]) -> None:
        """Add no watch at or below `tops` until `release`; any thread may call it."""
        self._tops = self._tops | frozenset(tops)

    def release(self, tops: list[str]) -> None:
        """Watch `tops` and everything below them now: on the reading thread, between reads."""
        self._tops = self._tops - frozenset(tops)
        for top in sorted(tops):
            if self._inotify.fd >= 0:
                self._watches.watch_tree(top, None)

    def holds_back(self, path: str) -> bool:
        """Whether the directory new at `path` waits for its watch; it is then noted unwatched,
        so that a rename before the release watches it at its new name."""
        if not self.covers(path):
            return False
        self._table.mark_unwatched(path)
        return True

    def covers(self, path: str) -> bool:
        """Whether a new directory at `path` is to get no watch yet."""
        tops = self._tops
        return bool(tops) and is_within_any(path, tops)


def _limit_error(root: str, excluded: ExcludePredicate, table: WatchTable) -> WatchLimitError:
    """Out of inotify watches: the error that says which limit to raise, and to what."""
    limit, sysctl = binding_watch_limit() or (len(table), WATCH_LIMITS[0])
    missing = _count_unwatched(root, excluded, table)
    return WatchLimitError(watch_limit_message(limit, missing, sysctl))


def _count_unwatched(root: str, excluded: ExcludePredicate, table: WatchTable) -> int:
    """Directories in the tree (not excluded) without a watch yet: what the limit must fit."""
    missing = 0
    stack = [""]
    while stack:
        rel = stack.pop()
        missing += not table.is_watched(rel)
        try:
            with os.scandir(f"{root}/{rel}" if rel else root) as entries:
                for entry in entries:
                    child = f"{rel}/{entry.name}" if rel else entry.name
                    if entry.is_dir(follow_symlinks=False) and not excluded(child, True):
                        stack.append(child)
        except OSError:
            continue
    return missing
