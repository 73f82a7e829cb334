"""The direct backend's tree sync: make a destination path, or a whole tree, equal to the source.

One way, like rsync: entries whose size and mtime (and the attributes we copy) match are left as
they are, what differs is copied, and what the source lacks is removed when deletions are on.
Every access goes through `SourceTree` and `DestinationTree`, which never follow a symlink.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from collections.abc import Callable
from enum import Enum
from typing import Literal

from pylsyncd.coalesce import Change, ChangeKind
from pylsyncd.transfer import Progress
from pylsyncd.transfer.directories import split
from pylsyncd.transfer.file_copy import copy_file, same_file
from pylsyncd.transfer.file_writer import FileWrite
from pylsyncd.transfer.new_directories import NewDirectories
from pylsyncd.transfer.run import Run, TransferState
from pylsyncd.transfer.source import SourceChangedError, SourceTree, UnreadableSourceError

log = logging.getLogger(__name__)

# Temporary files a killed daemon may have left behind; removed whenever their directory is synced.
_LEFTOVER = re.compile(r"\.pylsyncd\.[0-9a-f]{12}\.tmp")
# How many times one sync looks at an entry that keeps changing under it before leaving it to
# its next event: each look that finds it changed was raced by a write with an event of its own.
_LOOKS = 3


class _Looked(Enum):
    """`sync`'s first look at the source entry is still to be done (its caller did not)."""

    NOT_YET = 0


NOT_LOOKED = _Looked.NOT_YET
# What a caller's look at a source entry found: its lstat, None when gone, or NOT_LOOKED.
SourceLook = os.stat_result | None | Literal[_Looked.NOT_YET]


class TreeSync(Run):
    """A run that syncs paths and trees: what a batch's changes and a full sync are made of."""

    def __init__(self, state: TransferState, *, delete: bool, progress: Progress | None = None):
        super().__init__(state, delete=delete, progress=progress)
        self.linked: set[tuple[int, int]] = set()  # inodes whose other names this run copied
        # While set, directories met in a listing go to it, unsynced (`FullSync.sync_top`).
        self.defer: Callable[[str], None] | None = None
        # Whether a grown file may be updated by its tail alone, compared whole later: for live
        # changes, not for a whole tree's comparison, which may find a destination from long ago.
        self.trust_appends = False
        self.fresh = NewDirectories()  # what is known missing in directories it created

    def sync_tree(self, change: Change) -> None:
        """A subtree of a full sync: compared (size and mtime), not copied regardless."""
        self.trim_descriptors("")
        self.sync(change.path, recursive=True, forced=False)

    def sync(
        self, path: str, *, recursive: bool, forced: bool, found: SourceLook = NOT_LOOKED
    ) -> None:
        """Make the destination's `path` (and below it, when `recursive`) what the source holds.

        An entry that goes or changes type between two of these steps is looked at again and
        synced as it is then: the source's normal life, never a failure (its change raised an
        event of its own, which this sync may have served). `found`: the caller's fresh lstat.
        """
        for _ in range(_LOOKS):
            try:
                self._sync_as_found(path, recursive=recursive, forced=forced, found=found)
                return
            except SourceChangedError as error:
                log.debug("%r changed while synced (%s); looking again", path, error.strerror)
            # What it became is new to the destination: a directory now is synced with its
            # entries (unchanged ones are still skipped), whatever this sync was asked for.
            recursive = True
            found = NOT_LOOKED
        log.debug("%r keeps changing; left to its next event", path)

    def _sync_as_found(
        self, path: str, *, recursive: bool, forced: bool, found: SourceLook
    ) -> None:
        source = self.source_tree.lstat(path) if found is NOT_LOOKED else found
        if source is None:
            self._delete(path)
            return
        if path == "":
            self._sync_dir("", source, recursive)
            return
        parent, name = split(path)
        parent_fd = self.tree.ensure_dir(parent)
        missing = self.fresh.known_missing(path, self.tree.changed_dirs)
        existing = None if missing else self.tree.lstat(parent_fd, name)
        mode = source.st_mode
        if _left_as_it_is(self.state, path, existing, mode):
            return
        parent_written = True  # its times are copied again, unless only a file's content changed
        if existing is not None and stat.S_ISDIR(existing.st_mode) != stat.S_ISDIR(mode):
            self.tree.remove(parent_fd, name, path)  # a file replaced by a directory or back
            existing = None
        if stat.S_ISDIR(mode):
            created = existing is None
            if created:
                self.make_dir(parent_fd, name, path, _new_dir_mode(self.state, source))
            self._sync_dir(path, source, recursive, created=created)
        elif stat.S_ISREG(mode):
            if forced or not same_file(existing, source, self.tree.ownership):
                write = self._copy_file(path, parent_fd, name, existing)
                self.count_copy(path, write.written)
                parent_written = write.directory_written
                if forced and source.st_nlink > 1:
                    # A file synced as a tree is the end of a rename not replayed (a retried
                    # batch): new to the destination, yet maybe changed before the rename.
                    changed = existing is not None or recursive
                    self._sync_other_names(path, source, changed=changed)
        elif stat.S_ISLNK(mode):
            target = _read_link(self.source_tree, path, source)
            if forced or not _same_link(parent_fd, name, existing, source, target):
                self.tree.write_symlink(parent_fd, name, target, source)
                self.outcome.links += 1
                log.debug("linked %r -> %r", path, target)
        else:
            log.debug("skipped %r: not a file, directory or symlink", path)
            return
        if parent_written:
            self.touched.add(parent)

    def _sync_other_names(self, path: str, source: os.stat_result, *, changed: bool) -> None:
        """A hard-linked file changed through `path`: its other names raised no event."""
        inode = (source.st_dev, source.st_ino)
        if inode in self.linked:
            return
        self.linked.add(inode)
        for other in self.state.hard_links.others(path, source, changed=changed):
            self.sync(other, recursive=False, forced=True)

    def _copy_file(
        self, path: str, parent_fd: int, name: str, existing: os.stat_result | None = None
    ) -> FileWrite:
        """What was written; SourceChangedError when the file went or became something else."""
        files, hot = self.tree.files, self.state.hot_files
        target = (path, parent_fd, name)
        written, due = copy_file(self.source_tree, files, hot, target, existing, self.trust_appends)
        if due is not None:
            self.compare_later(path, due)
        return written

    def compare_later(self, path: str, due: float) -> None:
        """A file updated by its tail alone is to be compared whole at `due` (see `Replay`)."""
        raise AssertionError(f"{path!r}: a tree sync that trusts no append compares it all")

    def _sync_dir(
        self, path: str, source: os.stat_result, recursive: bool, *, created: bool = False
    ) -> None:
        """`created`: this run has just made the directory, so it is empty."""
        fd = self.tree.open_dir(path)
        if fd is None:  # raced with a concurrent change; the next event repairs it
            raise FileNotFoundError(2, "destination directory vanished", path)
        self.set_dir_attributes(path, fd, source)
        self.touched.add(path)
        if path:
            self.touched.add(split(path)[0])
        if created:
            self.fresh.created(path)
        if recursive or not created:  # an empty directory has no extras to remove
            self._sync_children(path, fd, recursive, empty=created)
        if recursive:
            self.fresh.done(path)
        if recursive and path and self.defer is None:
            self.set_times_now(path)

    def _sync_children(self, path: str, fd: int, recursive: bool, *, empty: bool = False) -> None:
        """Sync the entries (for a tree) and remove what the source no longer has (always).

        Removing extras on every directory sync, not only for trees, matters when a transfer read
        the source later than its events: an entry it copied and that was deleted before the next
        rescan (polling) raises no event of its own, but its directory's mtime changed."""
        try:
            children = self.source_tree.children(path)  # SourceChangedError: `sync` looks again
        except UnreadableSourceError as error:
            self.skip_unreadable(error)
            return  # what the source has there is unknown: remove nothing
        # Listed first: a name missing here needs no lstat of its own before it is copied.
        in_destination: dict[str, bool] = {}
        if not empty:
            with os.scandir(fd) as entries:
                in_destination = {e.name: e.is_dir(follow_symlinks=False) for e in entries}
        present: set[str] = set()
        for name, is_dir, is_file in children:
            if self.state.cancelled.is_set():
                raise InterruptedError(errno.EINTR, "cancelled at shutdown", path)
            child = f"{path}/{name}" if path else name
            if self.state.excludes and self.state.excludes.excludes(child, is_dir):
                continue
            present.add(name)
            if not recursive:
                continue
            if is_file and name not in in_destination:
                self._copy_new_file(child, path, fd, name)
            elif is_dir and self.defer is not None:
                self.fresh.note(path, name)  # may be there by the time this run syncs it
                self.defer(child)  # synced later, by this run or by the helper process
            else:
                # This directory's descriptors and its parents' are in use: they stay open.
                self.trim_descriptors(path)
                self._sync_child(child)
            self.entries += 1
            if self.progress is not None:
                self.progress(self.entries)
        for name, is_dir in in_destination.items():
            if name in present:
                continue
            child = f"{path}/{name}" if path else name
            leftover = _LEFTOVER.fullmatch(name) is not None
            if leftover or (self.delete and not self._excluded(child, is_dir)):
                self._remove(fd, name, child)

    def _copy_new_file(self, path: str, parent: str, parent_fd: int, name: str) -> None:
        """A file the destination lacks (an initial sync's bulk), in half the system calls of
        `sync`: no lstat on either side. Anything unexpected takes the general path."""
        self.fresh.note(parent, name)
        try:
            copied = self._copy_file(path, parent_fd, name).written
        except OSError:  # gone or changed since the listing, unreadable, or a failure:
            self._sync_child(path)  # `sync` tells which, and reports it once
            return
        self.count_copy(path, copied)
        self.touched.add(parent)

    def _sync_child(self, child: str) -> None:
        """Sync one entry of a tree; its failure is kept for the retry and the tree goes on."""
        try:
            self.sync(child, recursive=True, forced=False)
        except InterruptedError:
            raise  # cancelled: the whole run stops
        except UnreadableSourceError as error:
            self.skip_unreadable(error)
        except OSError as error:
            self.fail(Change(child, ChangeKind.SYNC_TREE), error)


def _left_as_it_is(
    state: TransferState, path: str, existing: os.stat_result | None, mode: int
) -> bool:
    """Whether a create-only run leaves `path` alone: the destination holds an entry there, and
    only a directory may be gone into."""
    if existing is None or not state.create_only:
        return False
    if stat.S_ISDIR(existing.st_mode) and stat.S_ISDIR(mode):
        return False
    log.debug("left %r as the destination has it: only new names are written", path)
    return True


def _new_dir_mode(state: TransferState, source: os.stat_result) -> int:
    """The mode a directory is made with, before its attributes are set: private to us until
    it has its owner. Create-only (a two-way merge) makes it with the source's own mode when
    the owner needs no change, so a daemon killed right after the mkdir leaves no directory
    whose mode differs from the other side's (a conflict at the next merge)."""
    mode = stat.S_IMODE(source.st_mode) & 0o777
    if not state.create_only or mode & 0o700 != 0o700:
        return 0o700
    owner = state.ownership.of(source)
    if owner is not None and (
        owner[0] not in (-1, os.geteuid()) or owner[1] not in (-1, os.getegid())
    ):
        return 0o700
    return mode


def _same_link(
    parent_fd: int,
    name: str,
    existing: os.stat_result | None,
    source: os.stat_result,
    target: str,
) -> bool:
    return (
        existing is not None
        and stat.S_ISLNK(existing.st_mode)
        and existing.st_mtime_ns == source.st_mtime_ns
        and os.readlink(name, dir_fd=parent_fd) == target
    )


def _read_link(source_tree: SourceTree, path: str, source: os.stat_result) -> str:
    """The target of the symlink `source` describes; SourceChangedError when another entry
    stands at `path` by the time it is read (its target would be copied with the old
    link's times)."""
    target = source_tree.readlink(path)
    now = source_tree.lstat(path)
    if now is None or (now.st_ino, now.st_mtime_ns) != (source.st_ino, source.st_mtime_ns):
        raise SourceChangedError(errno.ENOENT, "replaced while read", path)
    return target
