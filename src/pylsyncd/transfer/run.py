"""One run of the direct backend over a destination: a batch, a full sync, or one subtree.

A run holds what lives only as long as it does (open directory descriptors, the directories whose
mtimes must be copied at the end, the failures to retry, the outcome). What lasts from one run to
the next is the transfer's `TransferState`, which a run holds, never copies.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pylsyncd.coalesce import Batch, Change, ChangeKind, Move
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome, Ownership, Progress
from pylsyncd.transfer.destination import DestinationTree
from pylsyncd.transfer.directories import split
from pylsyncd.transfer.hardlinks import HardLinks
from pylsyncd.transfer.hot_files import HotFiles
from pylsyncd.transfer.source import SourceTree, UnreadableSourceError

log = logging.getLogger(__name__)
_Item = TypeVar("_Item", Move, Change)


@dataclass(eq=False)
class TransferState:
    """What a direct transfer keeps from one run to the next, and the settings it runs with."""

    source: str
    destination: str
    excludes: ExcludeRules
    ownership: Ownership
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Source entries the daemon may not read, reported once each, not at every event.
    reported_unreadable: set[str] = field(default_factory=set)
    # Paths a batch found gone from the source (or whose directory attributes it could not
    # read): path -> (batch number, monotonic time). See `Replay.move`.
    vanished: dict[str, tuple[int, float]] = field(default_factory=dict)
    batch_number: int = 0
    in_place_size: int = 16 * 1024 * 1024  # IN_PLACE_SIZE
    # Only what the destination lacks is written: nothing there is replaced or removed (a
    # two-way pair's first start copies a side's own subtrees so, see `pair.one_sided`).
    create_only: bool = False
    # A live batch of at least this many changes shares its files with a helper process
    # (`batch_sharing`): below, starting one costs more than it saves.
    helper_batch_min: int = 2000
    hard_links: HardLinks = field(init=False)
    hot_files: HotFiles = field(default_factory=HotFiles)

    def __post_init__(self) -> None:
        self.hard_links = HardLinks(self.source, self.excludes)


class Run:
    """The state of one batch: open directory descriptors, touched directories, the outcome."""

    def __init__(self, state: TransferState, *, delete: bool, progress: Progress | None = None):
        self.state = state
        self.delete = delete
        self.progress = progress
        self.entries = 0
        self.outcome = Outcome()
        self.source_tree = SourceTree(state.source)
        self.tree = DestinationTree(
            state.destination,
            self._source_dir_stat,
            state.ownership,
            state.in_place_size,
            create_only=state.create_only,
        )
        # Directories whose mtime must be copied, at the end (`finish`) unless a tree sync was
        # done with them before (`set_times_now`).
        self.touched: set[str] = set()
        # Create-only (a two-way merge's copies): the directories this run made, the only ones
        # whose times and attributes it sets. A directory both sides hold is not this run's to
        # change, and each subtree copied into it would otherwise be one more event there.
        self.made_dirs: set[str] = set()
        self.failed: list[Change] = []

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

    def count_copy(self, path: str, written: int) -> None:
        self.outcome.copied += 1
        self.outcome.bytes += written
        log.debug("copied %r (%d bytes)", path, written)

    def skip_unreadable(self, error: UnreadableSourceError) -> None:
        """Leave an entry the daemon may not read as the destination has it; say so once.

        Not a failure: a retry cannot help until a chmod, which raises its own event.
        """
        path = str(error.filename)
        if path in self.state.reported_unreadable:
            log.debug("still cannot read %r: %s", path, error.strerror)
            return
        self.state.reported_unreadable.add(path)
        log.warning(
            "cannot read %s: %s; skipped (the destination keeps what it has there), "
            "everything else goes on",
            os.path.join(self.state.source, path) if path else self.state.source,
            error.strerror,
        )

    def trim_descriptors(self, keep: str) -> None:
        """Bound the open directory descriptors; those of `keep` and its ancestors may be in use."""
        self.source_tree.trim(keep)
        self.tree.trim(keep)

    def finish(self) -> None:
        try:
            # Sorted: neighbours share their parents' descriptors between two trims.
            for path in sorted(self.touched | self.tree.changed_dirs):
                if not self.may_change_dir(path):
                    continue
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

    def set_times_now(self, path: str) -> None:
        """A directory this run is done with (its entries synced, the extras removed) gets its
        times now, not in `finish`: a full sync that kept every directory for `finish` held a
        path and a set slot per directory of the tree (about 10 MiB at 100,000 directories)
        until the whole tree was synced. Whatever writes in it later in this run (another name
        of a hard link, a missing parent created) touches it again, and `finish` sets its times
        once more."""
        if not self.may_change_dir(path):
            return
        source = self._source_dir_stat(path)
        if source is None:
            return  # renamed or deleted since: `finish` tells
        try:
            self.tree.set_dir_times(path, source)
        except OSError as error:
            log.debug("cannot set times of %r now: %s", path, error)
            return  # `finish` tries again
        self.touched.discard(path)

    def may_change_dir(self, path: str) -> bool:
        """Whether this run may set the attributes and times of the directory at `path`."""
        return not self.state.create_only or path in self.made_dirs

    def make_dir(self, parent_fd: int, name: str, path: str, mode: int) -> None:
        """A new directory at `path` (`name` in `parent_fd`), counted, its attributes to come."""
        os.mkdir(name, mode, dir_fd=parent_fd)
        self.outcome.dirs += 1
        if self.state.create_only:
            self.made_dirs.add(path)

    def set_dir_attributes(self, path: str, fd: int, source: os.stat_result) -> None:
        """The source's owner and mode on the directory at `path`, where this run may."""
        if self.may_change_dir(path):
            self.tree.set_dir_attributes(fd, source)

    def _delete(self, path: str) -> None:
        if not self.delete or path == "":
            return
        parent, name = split(path)
        self.touched.add(parent)  # a create and delete between batches still changed its mtime
        parent_fd = self.tree.open_dir(parent)
        if parent_fd is not None:
            self._remove(parent_fd, name, path)

    def _remove(self, parent_fd: int, name: str, path: str) -> None:
        keep = self._excluded if self.state.excludes else None
        if self.tree.remove(parent_fd, name, path, keep):
            self.outcome.deleted += 1
            self.touched.add(split(path)[0])
            log.debug("deleted %r", path)

    def _excluded(self, path: str, is_dir: bool) -> bool:
        return bool(self.state.excludes) and self.state.excludes.excludes(path, is_dir)

    def _source_dir_stat(self, path: str) -> os.stat_result | None:
        try:
            source = self.source_tree.lstat(path)
        except OSError:
            return None
        return source if source is not None and stat.S_ISDIR(source.st_mode) else None

    def _vanish(self, path: str) -> None:
        self.state.vanished[path] = (self.state.batch_number, time.monotonic())
