"""The `direct` backend: applies a batch with in-process file operations (no child process).

Renames are replayed as renames, so moving a directory of 10,000 files costs one syscall;
deleting a tree is one recursive removal; files are written through a temporary file and a
rename. All destination access goes through `DestinationTree`, which never follows symlinks.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from pylsyncd.coalesce import Batch, Change, ChangeKind, Move
from pylsyncd.events import is_within, rebase
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome, Ownership, Progress
from pylsyncd.transfer.destination import DestinationTree
from pylsyncd.transfer.directories import GONE, split
from pylsyncd.transfer.hardlinks import HardLinks
from pylsyncd.transfer.helper import Helper, Settings, SubtreeReport, can_help
from pylsyncd.transfer.source import SourceTree, UnreadableSourceError

log = logging.getLogger(__name__)
_Item = TypeVar("_Item", Move, Change)

# Temporary files a killed daemon may have left behind; removed whenever their directory is synced.
_LEFTOVER = re.compile(r"\.pylsyncd\.[0-9a-f]{12}\.tmp")
# How long a path found gone from the source waits for the rename that may have taken it.
_VANISHED_BATCHES = 3
_VANISHED_SECONDS = 5.0
# A full sync syncs the top of the tree itself until it finds this many directories (or has gone
# this deep), then shares those subtrees with a helper process.
_SUBTREES_WANTED = 8
_SPLIT_DEPTH = 3


class DirectTransfer:
    """Mirrors `source` into `destination` on the same machine."""

    def __init__(
        self,
        source: str,
        destination: str,
        excludes: ExcludeRules,
        *,
        delete: bool,
        ownership: Ownership | None = None,
    ):
        self.source = source
        self.destination = destination
        self.excludes = excludes
        self.delete = delete  # deletions while running (DELETE=true or running)
        self.ownership = ownership or Ownership.for_daemon(None, None)
        self.cancelled = threading.Event()
        # Source entries the daemon may not read, reported once each, not at every event.
        self.reported_unreadable: set[str] = set()
        self.hard_links = HardLinks(source, excludes)
        # Paths a batch found gone from the source (or whose directory attributes it could not
        # read): path -> (batch number, monotonic time). See `_Run.move`.
        self.vanished: dict[str, tuple[int, float]] = {}
        self.batch_number = 0

    def cancel(self) -> None:
        self.cancelled.set()

    def apply(self, batch: Batch) -> Outcome:
        if not self.delete and batch.moves:
            batch = batch.without_moves()  # a rename would remove the old name
        self._expire_vanished()
        run = _Run(self, delete=self.delete)
        try:
            for move in batch.moves:
                run.trim_descriptors("")  # between steps no descriptor is held
                run.attempt(run.move, move)
            for path in run.moved_vanished:
                run.trim_descriptors("")
                run.attempt(run.change, Change(path, ChangeKind.SYNC_TREE))
            for change in batch.changes:
                run.trim_descriptors("")
                run.attempt(run.change, change)
            # Names of hard-linked files met in this batch and not known yet, found in one walk.
            while found := self.hard_links.search():
                for path, forced in found:
                    run.trim_descriptors("")
                    step = run.change if forced else run.check_found_name
                    run.attempt(step, Change(path, ChangeKind.SYNC))
        finally:
            run.finish()
        return run.outcome

    def _expire_vanished(self) -> None:
        """Forget vanished paths once the rename that may explain them had time to arrive: a few
        batches and a few seconds (its event was queued before the transfer saw the path go)."""
        self.batch_number += 1
        now = time.monotonic()
        for path, (number, seen) in list(self.vanished.items()):
            if number < self.batch_number - _VANISHED_BATCHES and seen < now - _VANISHED_SECONDS:
                del self.vanished[path]

    def full_sync(self, *, delete: bool, progress: Progress | None = None) -> Outcome:
        run = _Run(self, delete=delete, progress=progress)
        try:
            subtrees = run.sync_top(_SUBTREES_WANTED, _SPLIT_DEPTH)
            self._sync_subtrees(run, deque(subtrees), delete)
        finally:
            run.finish()
        return run.outcome

    def sync_subtree(self, path: str, *, delete: bool) -> tuple[Outcome, int]:
        """One subtree of a full sync (in the helper process): the outcome, and entries done."""
        run = _Run(self, delete=delete)
        try:
            run.attempt(run.sync_tree, Change(path, ChangeKind.SYNC_TREE))
        finally:
            run.finish()
        return run.outcome, run.entries

    def _sync_subtrees(self, run: _Run, subtrees: deque[str], delete: bool) -> None:
        """Sync the subtrees, sharing them with a helper process when one can run beside us: it
        takes them from the end while we take them from the front, until none is left."""
        helper = self._start_helper(delete) if len(subtrees) > 1 else None
        given: set[str] = set()  # to the helper, not reported yet
        helped = 0
        try:
            while subtrees or given:
                if helper is not None:
                    try:
                        for report in helper.reports(0 if subtrees else 0.1):
                            given.discard(report.path)
                            run.add_report(report)
                            helped += 1
                        while helper.wants_work() and len(subtrees) > 1:
                            given.add(subtrees[-1])
                            helper.give(subtrees.pop())
                    except ChildProcessError as error:
                        log.warning("%s; syncing its part here", error)
                        helper.close()
                        helper = None
                        subtrees.extend(sorted(given))
                        given.clear()
                    if not subtrees and helper is not None and not helper.ready:
                        break  # it is not even started: this tree was small, we are done
                if self.cancelled.is_set():
                    raise InterruptedError(errno.EINTR, "cancelled at shutdown")
                if subtrees:
                    run.attempt(run.sync_tree, Change(subtrees.popleft(), ChangeKind.SYNC_TREE))
        except InterruptedError as error:
            run.fail(Change("", ChangeKind.SYNC_TREE), error)
        finally:
            if helper is not None:
                helper.close()
        log.debug("full sync: %d of its subtrees synced by the helper process", helped)

    def _start_helper(self, delete: bool) -> Helper | None:
        if not can_help():
            return None
        settings = Settings(
            self.source,
            self.destination,
            list(self.excludes.patterns),
            delete,
            self.ownership.uid,
            self.ownership.gid,
            self.ownership.preserve,
            sorted(self.reported_unreadable),
            logging.getLogger("pylsyncd").getEffectiveLevel(),
        )
        try:
            return Helper(settings)
        except OSError as error:
            log.debug("no helper process: %s", error)
            return None


class _Run:
    """The state of one batch: open directory descriptors, touched directories, the outcome."""

    def __init__(self, transfer: DirectTransfer, *, delete: bool, progress: Progress | None = None):
        self.source = transfer.source
        self.excludes = transfer.excludes
        self.delete = delete
        self.progress = progress
        self.cancelled = transfer.cancelled
        self.reported_unreadable = transfer.reported_unreadable
        self.hard_links = transfer.hard_links
        self.linked: set[tuple[int, int]] = set()  # inodes whose other names this run copied
        self.vanished = transfer.vanished
        self.batch_number = transfer.batch_number
        self.moved_vanished: list[str] = []  # vanished paths a replayed rename carried along
        self.entries = 0
        self.outcome = Outcome()
        self.source_tree = SourceTree(transfer.source)
        self.tree = DestinationTree(transfer.destination, self._source_dir_stat, transfer.ownership)
        self.touched: set[str] = set()  # directories whose mtime must be copied at the end
        self.failed: list[Change] = []
        # While set, directories met in a listing are handed to it instead of synced (`sync_top`).
        self.defer: Callable[[str], None] | None = None

    def attempt(self, step: Callable[[_Item], None], item: _Item) -> None:
        """Run one step; a failure is remembered for the retry and the batch goes on."""
        try:
            step(item)
        except UnreadableSourceError as error:
            self.skip_unreadable(error)
        except OSError as error:
            self.fail(item, error)

    def fail(self, item: Move | Change, error: OSError) -> None:
        """Remember a failed step for the retry; the first error is the one the log shows."""
        if self.outcome.error is None:
            self.outcome.error = f"{error.strerror or error}: {error.filename or ''}".rstrip(": ")
        if isinstance(item, Move):
            self.failed += [Change(item.source, ChangeKind.SYNC_TREE)]
            self.failed += [Change(item.target, ChangeKind.SYNC_TREE)]
        else:
            self.failed.append(item)
        log.debug("failed: %r", item, exc_info=True)  # called from an except block

    def skip_unreadable(self, error: UnreadableSourceError) -> None:
        """Leave an entry the daemon may not read as the destination has it; say so once.

        Not a failure: a retry cannot help until a chmod, which raises its own event.
        """
        path = str(error.filename)
        if path in self.reported_unreadable:
            log.debug("still cannot read %r: %s", path, error.strerror)
            return
        self.reported_unreadable.add(path)
        log.warning(
            "cannot read %s: %s; skipped (the destination keeps what it has there), "
            "everything else goes on",
            os.path.join(self.source, path) if path else self.source,
            error.strerror,
        )

    def sync_top(self, wanted: int, depth: int) -> list[str]:
        """Sync the top of the tree: files, and directories without their contents, one level
        after the other until a level has `wanted` directories or `depth` levels are done.

        Returns the directories of the last level: subtrees still to be synced.
        """
        level: list[str] = []
        self.defer = level.append
        try:
            self.attempt(self.change, Change("", ChangeKind.SYNC_TREE))
            for _ in range(depth - 1):
                if len(level) >= wanted:
                    break
                above, level = level, []
                self.defer = level.append
                for path in above:
                    self.trim_descriptors("")
                    self.attempt(self.sync_tree, Change(path, ChangeKind.SYNC_TREE))
        finally:
            self.defer = None
        return level

    def sync_tree(self, change: Change) -> None:
        """A subtree of a full sync: compared (size and mtime), not copied regardless."""
        self.trim_descriptors("")
        self.sync(change.path, recursive=True, forced=False)

    def add_report(self, report: SubtreeReport) -> None:
        """Count what the helper process did in one subtree as done by this run."""
        self.outcome.copied += report.copied
        self.outcome.bytes += report.bytes
        self.outcome.dirs += report.dirs
        self.outcome.links += report.links
        self.outcome.deleted += report.deleted
        self.failed += report.failed_changes()
        if self.outcome.error is None:
            self.outcome.error = report.error
        self.reported_unreadable.update(report.unreadable)
        self.entries += report.entries
        if self.progress is not None:
            self.progress(self.entries)

    def trim_descriptors(self, keep: str) -> None:
        """Bound the open directory descriptors; those of `keep` and its ancestors may be in use."""
        self.source_tree.trim(keep)
        self.tree.trim(keep)

    def finish(self) -> None:
        try:
            # Sorted: neighbours share their parents' descriptors between two trims.
            for path in sorted(self.touched | self.tree.changed_dirs):
                self.trim_descriptors("")
                source = self._source_dir_stat(path)
                if source is None:
                    # Renamed away since (its times follow with that rename), or deleted.
                    self._vanish(path)
                    continue
                try:
                    self.tree.set_dir_times(path, source)
                except OSError as error:
                    log.debug("cannot set times of %r: %s", path, error)
        finally:
            self.tree.close()
            self.source_tree.close()
        if self.failed:
            self.outcome.failed = Batch((), tuple(self.failed))

    def _source_dir_stat(self, path: str) -> os.stat_result | None:
        try:
            source = self.source_tree.lstat(path)
        except OSError:
            return None
        return source if source is not None and stat.S_ISDIR(source.st_mode) else None

    def move(self, move: Move) -> None:
        """Replay a rename; when the destination does not hold the old name, copy instead."""
        source_parent, source_name = split(move.source)
        target_parent, target_name = split(move.target)
        source_fd = self.tree.open_dir(source_parent)
        target_fd = self.tree.open_dir(target_parent)
        if (
            source_fd is None
            or target_fd is None
            or self.tree.lstat(source_fd, source_name) is None
        ):
            self.change(Change(move.target, ChangeKind.SYNC_TREE))
            self.change(Change(move.source, ChangeKind.SYNC_TREE))
            return
        existing = self.tree.lstat(target_fd, target_name)
        if existing is not None and (move.is_dir or stat.S_ISDIR(existing.st_mode)):
            # rename(2) cannot put a file over a directory or a directory over a non-empty one;
            # the source's rename replaced whatever stood there, so it goes here too.
            self.tree.remove(target_fd, target_name, move.target)
        os.rename(source_name, target_name, src_dir_fd=source_fd, dst_dir_fd=target_fd)
        self.tree.forget(move.source)
        self.tree.forget(move.target)
        self.hard_links.moved(move.source, move.target)
        # What an earlier batch found gone below the old name was renamed with it, the events
        # for it named the old path: the destination's copy may lack it, or be stale.
        for path in [path for path in self.vanished if is_within(path, move.source)]:
            moved = rebase(path, move.source, move.target)
            self.vanished[moved] = self.vanished.pop(path)
            self.moved_vanished.append(moved)
        self.touched.update((source_parent, target_parent))
        self.outcome.moved += 1
        log.debug("moved %r -> %r", move.source, move.target)

    def change(self, change: Change) -> None:
        """Make the destination path equal to the source path as it is now.

        The path itself is copied even when size and mtime match: an event says it changed, and
        a same-size rewrite within one timestamp tick is exactly what rsync's quick check misses.
        """
        expected = change.kind is not ChangeKind.DELETE and change.path != ""
        if expected and self.source_tree.lstat(change.path) is None:
            # Gone before this transfer read it: deleted, or renamed (its event follows).
            self._vanish(change.path)
            for other in self.hard_links.others_of_vanished(change.path):
                self.sync(other, recursive=False, forced=True)
        self.sync(change.path, recursive=change.kind is not ChangeKind.SYNC, forced=True)

    def _vanish(self, path: str) -> None:
        self.vanished[path] = (self.batch_number, time.monotonic())

    def sync(self, path: str, *, recursive: bool, forced: bool) -> None:
        source = self.source_tree.lstat(path)
        if source is None:
            self._delete(path)
            return
        if path == "":
            self._sync_dir("", source, recursive)
            return
        parent, name = split(path)
        parent_fd = self.tree.ensure_dir(parent)
        existing = self.tree.lstat(parent_fd, name)
        mode = source.st_mode
        if existing is not None and stat.S_ISDIR(existing.st_mode) != stat.S_ISDIR(mode):
            self.tree.remove(parent_fd, name, path)  # a file replaced by a directory or back
            existing = None
        if stat.S_ISDIR(mode):
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
                self.outcome.dirs += 1
            self._sync_dir(path, source, recursive)
        elif stat.S_ISREG(mode):
            if forced or not self._same_file(existing, source):
                copied = self._copy_file(path, parent_fd, name)
                if copied is None:
                    return
                self._count_copy(path, copied)
                if forced and source.st_nlink > 1:
                    # A file synced as a tree is the end of a rename not replayed (a retried
                    # batch): new to the destination, yet maybe changed before the rename.
                    changed = existing is not None or recursive
                    self._sync_other_names(path, source, changed=changed)
        elif stat.S_ISLNK(mode):
            target = self.source_tree.readlink(path)
            if forced or not self._same_link(parent_fd, name, existing, source, target):
                self.tree.write_symlink(parent_fd, name, target, source)
                self.outcome.links += 1
                log.debug("linked %r -> %r", path, target)
        else:
            log.debug("skipped %r: not a file, directory or symlink", path)
            return
        self.touched.add(parent)

    def check_found_name(self, change: Change) -> None:
        """A name of a file that got a new link: copied only if its size, mtime or mode differ
        (the file may have been changed, through the new name, since the link was made)."""
        self.sync(change.path, recursive=False, forced=False)

    def _sync_other_names(self, path: str, source: os.stat_result, *, changed: bool) -> None:
        """A hard-linked file changed through `path`: its other names raised no event."""
        inode = (source.st_dev, source.st_ino)
        if inode in self.linked:
            return
        self.linked.add(inode)
        for other in self.hard_links.others(path, source, changed=changed):
            self.sync(other, recursive=False, forced=True)

    def _count_copy(self, path: str, copied: int) -> None:
        self.outcome.copied += 1
        self.outcome.bytes += copied
        log.debug("copied %r (%d bytes)", path, copied)

    def _copy_file(self, path: str, parent_fd: int, name: str) -> int | None:
        """Bytes copied, or None when the source changed under us (its next event follows)."""
        try:
            src_fd = self.source_tree.open_file(path)
        except OSError as error:
            if error.errno not in (*GONE, errno.ELOOP):  # ELOOP: it became a symlink
                raise
            return None
        try:
            source = os.fstat(src_fd)
            if not stat.S_ISREG(source.st_mode):
                return None  # it became something else since lstat; that change has an event
            return self.tree.write_file(parent_fd, name, src_fd, source)
        finally:
            os.close(src_fd)

    def _sync_dir(self, path: str, source: os.stat_result, recursive: bool) -> None:
        fd = self.tree.open_dir(path)
        if fd is None:  # raced with a concurrent change; the next event repairs it
            raise FileNotFoundError(2, "destination directory vanished", path)
        self.tree.set_dir_attributes(fd, source)
        self.touched.add(path)
        if path:
            self.touched.add(split(path)[0])
        self._sync_children(path, fd, recursive)

    def _sync_children(self, path: str, fd: int, recursive: bool) -> None:
        """Sync the entries (for a tree) and remove what the source no longer has (always).

        Removing extras on every directory sync, not only for trees, matters when a transfer read
        the source later than its events: an entry it copied and that was deleted before the next
        rescan (polling) raises no event of its own, but its directory's mtime changed.
        """
        try:
            children = self.source_tree.children(path)
        except UnreadableSourceError as error:
            self.skip_unreadable(error)
            return  # what the source has there is unknown: remove nothing
        # Listed first: a name missing here needs no lstat of its own before it is copied.
        with os.scandir(fd) as entries:
            in_destination = {entry.name: entry.is_dir(follow_symlinks=False) for entry in entries}
        present: set[str] = set()
        for name, is_dir, is_file in children:
            if self.cancelled.is_set():
                raise InterruptedError(errno.EINTR, "cancelled at shutdown", path)
            child = f"{path}/{name}" if path else name
            if self.excludes and self.excludes.excludes(child, is_dir):
                continue
            present.add(name)
            if not recursive:
                continue
            if is_file and name not in in_destination:
                self._copy_new_file(child, path, fd, name)
            elif is_dir and self.defer is not None:
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
        """Copy a regular file the destination lacks, the bulk of an initial sync, with half the
        system calls of `sync`: the open source's fstat stands in for its lstat, and the
        destination's listing for an lstat there. Anything unexpected takes the general path."""
        try:
            copied = self._copy_file(path, parent_fd, name)
        except OSError:
            copied = None  # unreadable, or a failure: `sync` tells which, and reports it once
        if copied is None:  # or gone, or no longer a regular file since the listing
            self._sync_child(path)
            return
        self._count_copy(path, copied)
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

    def _delete(self, path: str) -> None:
        if not self.delete or path == "":
            return
        parent, name = split(path)
        self.touched.add(parent)  # a create and delete between batches still changed its mtime
        parent_fd = self.tree.open_dir(parent)
        if parent_fd is not None:
            self._remove(parent_fd, name, path)

    def _remove(self, parent_fd: int, name: str, path: str) -> None:
        keep = self._excluded if self.excludes else None
        if self.tree.remove(parent_fd, name, path, keep):
            self.outcome.deleted += 1
            self.touched.add(split(path)[0])
            log.debug("deleted %r", path)

    def _excluded(self, path: str, is_dir: bool) -> bool:
        return bool(self.excludes) and self.excludes.excludes(path, is_dir)

    def _same_file(self, existing: os.stat_result | None, source: os.stat_result) -> bool:
        """rsync's quick check (size and mtime), plus the attributes we copy."""
        return (
            existing is not None
            and stat.S_ISREG(existing.st_mode)
            and existing.st_size == source.st_size
            and existing.st_mtime_ns == source.st_mtime_ns
            and existing.st_mode == source.st_mode
            and self.tree.ownership.matches(existing, source)
        )

    def _same_link(
        self,
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
