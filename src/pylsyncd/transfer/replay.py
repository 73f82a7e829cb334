"""The direct backend's batch replay: renames replayed as renames, then each change synced.

Renames are replayed as renames, so moving a directory of 10,000 files costs one syscall; a path
found gone from the source is remembered for a while, for the rename that may have taken it.
"""

from __future__ import annotations

import logging
import os
import stat
import time

from pylsyncd.coalesce import Batch, Change, ChangeKind, Move
from pylsyncd.events import is_within, rebase
from pylsyncd.transfer.batch_sharing import BatchReplay, BatchSharing
from pylsyncd.transfer.directories import split
from pylsyncd.transfer.run import TransferState
from pylsyncd.transfer.tree_sync import NOT_LOOKED, SourceLook

log = logging.getLogger(__name__)

# How long a path found gone from the source waits for the rename that may have taken it.
_VANISHED_BATCHES = 3
_VANISHED_SECONDS = 5.0


def expire_vanished(state: TransferState) -> None:
    """Forget vanished paths once the rename that may explain them had time to arrive: a few
    batches and a few seconds (its event was queued before the transfer saw the path go)."""
    state.batch_number += 1
    now = time.monotonic()
    for path, (number, seen) in list(state.vanished.items()):
        if number < state.batch_number - _VANISHED_BATCHES and seen < now - _VANISHED_SECONDS:
            del state.vanished[path]


class Replay(BatchReplay):
    """One batch replayed: its moves, then its changes, then the other names of hard links."""

    def __init__(self, state: TransferState, *, delete: bool, may_defer: bool = True):
        super().__init__(state, delete=delete)
        self.moved_vanished: list[str] = []  # vanished paths a replayed rename carried along
        self.synced_ahead: list[str] = []  # hard-linked names a replayed rename put older copies on
        self.trust_appends = True  # live changes: a grown file is most likely appended to
        self.fresh.stop()  # on for the changes only, once the renames are replayed
        # False for the last batch before the daemon exits: nothing waits for later.
        self.may_defer = may_defer
        self._compare_now: list[str] = []  # appended files to compare before this run ends
        self.sharing: BatchSharing | None = None  # a big batch's helper process, while it runs

    def replay(self, batch: Batch) -> None:
        """Apply the batch; each failure is kept in the outcome for the retry."""
        for move in batch.moves:
            self.trim_descriptors("")  # between steps no descriptor is held
            self.attempt(self.move, move)
        for path in self.moved_vanished:
            self.trim_descriptors("")
            self.attempt(self.change, Change(path, ChangeKind.SYNC_TREE))
        for path in self.synced_ahead:
            self.trim_descriptors("")
            self.attempt(self.change, Change(path, ChangeKind.SYNC))
        self.state.hot_files.expire()
        # Directories the changes create are known empty but for what they put there; only
        # here, where no rename (a move's or a hard link's) can bring anything else in.
        self.fresh.start()
        sharing = self.sharing = BatchSharing.for_batch(self, len(batch.changes))
        try:
            for change in batch.changes:
                held_until = self._held_until(change)
                if held_until is not None:
                    self.outcome.defer(change, held_until)
                    continue
                self.trim_descriptors("")
                if sharing is None or not sharing.set_aside(change):
                    self.attempt(self.change, change)
            if sharing is not None:
                sharing.sync_set_aside()
        finally:
            if sharing is not None:
                sharing.stop()
        self.fresh.stop()
        # The last batch before the daemon exits: the appended files it updated by their tail
        # are compared whole now, since no later comparison will come.
        while self._compare_now:
            path = self._compare_now.pop()
            self.trust_appends = False
            self.attempt(self.change, Change(path, ChangeKind.SYNC))
        # Names of hard-linked files met in this batch and not known yet, found in one walk.
        while found := self.state.hard_links.search():
            for path, forced in found:
                self.trim_descriptors("")
                step = self.change if forced else self.check_found_name
                self.attempt(step, Change(path, ChangeKind.SYNC))

    def move(self, move: Move) -> None:
        """Replay a rename; when the destination does not hold the old name, copy instead."""
        source_parent, source_name = split(move.source)
        target_parent, target_name = split(move.target)
        source_fd = self.tree.open_dir(source_parent)
        target_fd = self.tree.open_dir(target_parent)
        moving = None if source_fd is None else self.tree.lstat(source_fd, source_name)
        if source_fd is None or target_fd is None or moving is None:
            self.change(Change(move.target, ChangeKind.SYNC_TREE))
            self.change(Change(move.source, ChangeKind.SYNC_TREE))
            return
        # What the destination holds at the old name should be what the source now holds at
        # the new one (its type and mtime, which the copies keep). When it is not, the rename
        # is reported late and the old name was used again since: renamed all the same (the
        # destination may hold much of it), then checked against the source. When the source
        # no longer has the new name, it was renamed on (a later move carries it, and checks
        # it) or deleted (its deletion follows): syncing it now would delete a whole tree
        # that the next move was about to carry to where it now is.
        arrived = self.source_tree.lstat(move.target)
        late = arrived is not None and (
            stat.S_IFMT(arrived.st_mode) != stat.S_IFMT(moving.st_mode)
            or arrived.st_mtime_ns != moving.st_mtime_ns
        )
        existing = self.tree.lstat(target_fd, target_name)
        if existing is not None and (move.is_dir or stat.S_ISDIR(existing.st_mode)):
            # rename(2) cannot put a file over a directory or a directory over a non-empty one;
            # the source's rename replaced whatever stood there, so it goes here too.
            self.tree.remove(target_fd, target_name, move.target)
        os.rename(source_name, target_name, src_dir_fd=source_fd, dst_dir_fd=target_fd)
        self.tree.forget(move.source)
        self.tree.forget(move.target)
        self.synced_ahead += self.state.hard_links.moved(move.source, move.target)
        for path, due in self.state.hot_files.moved(move.source, move.target):
            self.compare_later(path, due)
        # What an earlier batch found gone below the old name was renamed with it, the events
        # for it named the old path: the destination's copy may lack it, or be stale.
        for path in [path for path in self.state.vanished if is_within(path, move.source)]:
            moved = rebase(path, move.source, move.target)
            self.state.vanished[moved] = self.state.vanished.pop(path)
            self.moved_vanished.append(moved)
        # Directories this batch wrote in earlier (a rename out of them) now have new names:
        # their times are copied there at the end, not looked up under names that are gone.
        # Only a directory's rename can carry them (a lockfile's rename need not look).
        for dirs in (self.touched, self.tree.changed_dirs) if move.is_dir else ():
            for path in [path for path in dirs if is_within(path, move.source)]:
                dirs.discard(path)
                dirs.add(rebase(path, move.source, move.target))
        self.touched.update((source_parent, target_parent))
        self.outcome.moved += 1
        log.debug("moved %r -> %r", move.source, move.target)
        if self.source_tree.lstat(move.source) is not None:
            # The old name exists again in the source: made again since the rename, its event
            # maybe gone with an earlier batch (rescans beside inotify report a rename late).
            # Then what was renamed here may be that new entry: both ends as they are now.
            self.change(Change(move.source, ChangeKind.SYNC_TREE))
            late = arrived is not None
        if late:
            self.sync(move.target, recursive=True, forced=False)

    def _held_until(self, change: Change) -> float | None:
        """When a hot file's change may be applied, if not now (its last copy is not paid
        back yet; see `hot_files`)."""
        if not self.may_defer or change.kind is not ChangeKind.SYNC:
            return None
        return self.state.hot_files.wait_until(change.path)

    def compare_later(self, path: str, due: float) -> None:
        if self.may_defer:
            self.outcome.defer(Change(path, ChangeKind.SYNC), due)
        else:
            self._compare_now.append(path)

    def change(self, change: Change) -> None:
        """Make the destination path equal to the source path as it is now.

        The path itself is copied even when size and mtime match: an event says it changed, and
        a same-size rewrite within one timestamp tick is exactly what rsync's quick check misses.
        """
        expected = change.kind is not ChangeKind.DELETE and change.path != ""
        found: SourceLook = self.source_tree.lstat(change.path) if expected else NOT_LOOKED
        if found is None:
            # Gone before this transfer read it: deleted, or renamed (its event follows).
            self._vanish(change.path)
            for other in self.state.hard_links.others_of_vanished(change.path):
                self.sync(other, recursive=False, forced=True)
            found = NOT_LOOKED  # the other names' syncs took time: look again
        recursive = change.kind is not ChangeKind.SYNC
        self.sync(change.path, recursive=recursive, forced=True, found=found)

    def vanished_elsewhere(self, path: str) -> None:
        """A change the helper process synced found `path` gone: remembered as this process
        remembers what it finds gone (`change`)."""
        self._vanish(path)
        for other in self.state.hard_links.others_of_vanished(path):
            self.sync(other, recursive=False, forced=True)

    def check_found_name(self, change: Change) -> None:
        """A name of a file that got a new link: copied only if its size, mtime or mode differ
        (the file may have been changed, through the new name, since the link was made)."""
        self.sync(change.path, recursive=False, forced=False)
