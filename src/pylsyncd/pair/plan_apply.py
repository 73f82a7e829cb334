"""Applies a two-way plan to both roots, each action a compare-and-swap.

Right before each write the applier reads the path on the side it writes (and, for a copy, the
origin on the other side) and goes on only if it holds what the plan saw (`side_tree.matches`):
the same content under the same inode. Otherwise the action is skipped and its path handed back
to the next reconcile, so a change made while the plan ran is never overwritten. Files and
symlinks are written to a temporary name and renamed into place (`DestinationTree`, which never
follows a symlink below a root); a copy's origin is opened once and checked again by fstat, so
the bytes written are the version the plan chose.

A directory whose mode denies its owner writing gets it once the plan is applied (its record
only then): a read-only directory would refuse the entries the same plan writes into it.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pylsyncd.conflict_names import conflict_copy_name
from pylsyncd.entries import Entry, Kind, Side
from pylsyncd.pair import side_writes
from pylsyncd.pair.side_tree import entry_at, entry_of, matches, read_entry
from pylsyncd.plan import Action, ActionKind, Plan, Record
from pylsyncd.transfer.destination import DestinationTree
from pylsyncd.transfer.directories import DIR_FLAGS, GONE, lstat_at, split
from pylsyncd.transfer.rename_flags import rename_noreplace

log = logging.getLogger("pylsyncd")

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# What a write meets when the tree changed under it since the check: the path goes back to
# reconcile, like a failed compare-and-swap.
_RACED = (*GONE, errno.ENOTEMPTY, errno.EEXIST, errno.ELOOP, errno.EISDIR)
RECORDS_PER_APPEND = 512  # records made durable together (one journal frame, one fdatasync)


class _Skipped(Exception):
    """The side does not hold what the plan saw: hand the path back (and `also`)."""

    def __init__(self, why: str, also: str | None = None) -> None:
        super().__init__(why)
        self.also = also  # a missing directory: reconciled again too, which brings it back


@dataclass
class Applied:
    """What applying a plan did."""

    written: dict[Side, int] = field(default_factory=lambda: {Side.A: 0, Side.B: 0})
    bytes: int = 0
    handed_back: set[str] = field(default_factory=set)  # to reconcile again
    error: str | None = None  # the first failure that was not a race (retried with backoff)
    done: set[str] = field(default_factory=set)  # paths whose actions all succeeded
    # What was written, for ON_SYNC and the metrics: paths in order (a rename's both ends), and
    # writes by kind (a copy or an attribute change; a deletion; a replayed rename).
    changed: dict[str, None] = field(default_factory=dict)  # an ordered set
    kinds: dict[ActionKind, int] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        """Writes on both sides."""
        return self.written[Side.A] + self.written[Side.B]

    def wrote(self, action: Action, written: int) -> None:
        """Count one applied write of `written` bytes."""
        self.written[action.side] += 1
        self.bytes += written
        self.kinds[action.kind] = self.kinds.get(action.kind, 0) + 1
        if action.kind is ActionKind.RENAME:
            self.changed[action.origin] = None
        self.changed[action.path] = None


def _hand_back(applied: Applied, action: Action) -> None:
    """An action not applied: its path, and a rename's or a copy's origin, are reconciled again.

    A replayed rename's origin has no action of its own in the plan (the plan saw it moved), and
    no event may ever name it again: found by the two-sided churn, a file renamed on one side
    while the other changed the new name stayed at the old name on that other side for good.
    """
    applied.handed_back.add(action.path)
    if action.origin:
        applied.handed_back.add(action.origin)


def _rename(origin_fd: int, origin: str, parent_fd: int, name: str, found: Entry | None) -> None:
    """A replayed rename onto `name`, which holds `found` (checked): never over anything else."""
    if found is None:
        if not rename_noreplace(origin_fd, origin, parent_fd, name):
            # No RENAME_NOREPLACE on this filesystem: the check right before is what there is.
            os.rename(origin, name, src_dir_fd=origin_fd, dst_dir_fd=parent_fd)
    elif found.kind is Kind.DIR:  # emptied by the plan: rename fails if it was filled since
        os.rename(origin, name, src_dir_fd=origin_fd, dst_dir_fd=parent_fd)
    else:
        try:
            side_writes.swap_in(
                origin_fd, origin, parent_fd, name, lambda fd, at: matches(entry_at(fd, at), found)
            )
        except side_writes.PathTaken as taken:
            raise _Skipped(str(taken)) from None


def _remove(
    tree: DestinationTree,
    parent_fd: int,
    name: str,
    path: str,
    found: Entry | None,
    side: Side,
) -> None:
    """Remove one entry; a directory only when empty (the plan emptied it first)."""
    if found is not None and found.kind is Kind.DIR:
        tree.forget(path)
        os.rmdir(name, dir_fd=parent_fd)
        return

    def holds_found(dir_fd: int, name: str) -> bool:
        return matches(entry_at(dir_fd, name), found)

    def keep_as() -> str:  # the name it had was taken again while it was moved back
        for attempt in itertools.count(1):
            kept = split(conflict_copy_name(path, datetime.now(), side, attempt))[1]
            if lstat_at(parent_fd, kept) is None:
                return kept
        raise AssertionError("unreachable")

    try:
        side_writes.remove(parent_fd, name, holds_found, keep_as)
    except side_writes.PathTaken as taken:
        raise _Skipped(str(taken)) from None


class PlanApplier:
    """Applies plans to the two trees of one batch; `record` makes records durable."""

    def __init__(
        self,
        trees: dict[Side, DestinationTree],
        record: Callable[[list[Record]], None],
    ) -> None:
        self._trees = trees
        self._record = record
        self._modes: dict[tuple[Side, str], int] = {}  # directories created, their final mode

    def apply(self, plan: Plan) -> Applied:
        """Apply every action whose check passes; records are made durable in chunks."""
        applied = Applied()
        records: list[Record] = []
        late: list[Record] = []  # directories whose mode waits for the end of the plan
        for action in plan.actions:
            try:
                inode, written = self._apply(action)
            except _Skipped as skipped:
                log.debug("skipped %s on %s: %s", action.path, action.side.value, skipped)
                _hand_back(applied, action)
                if skipped.also is not None:
                    applied.handed_back.add(skipped.also)
                continue
            except OSError as error:
                if error.errno in _RACED:
                    _hand_back(applied, action)
                    continue
                log.debug("failed %s", action, exc_info=True)
                applied.error = applied.error or f"{action.path}: {error.strerror or error}"
                _hand_back(applied, action)
                continue
            except Exception as error:
                # One entry's surprise must not stop the pair: it is retried with backoff.
                log.debug("failed %s", action, exc_info=True)
                applied.error = applied.error or f"{action.path}: {type(error).__name__}: {error}"
                _hand_back(applied, action)
                continue
            if action.kind is not ActionKind.RECORD:
                log.debug("%s %s on the %s", action.kind.value, action.path, action.side.value)
                applied.wrote(action, written)
            if (action.side, action.path) in self._modes:
                late.extend(action.records_after(inode))  # true once its mode is set
            else:
                records.extend(action.records_after(inode))
            if len(records) >= RECORDS_PER_APPEND:
                self._record(records)
                records = []
        self._set_directory_modes()
        if records or late:
            self._record(records + late)
        applied.done = {action.path for action in plan.actions} - applied.handed_back
        return applied

    def _apply(self, action: Action) -> tuple[int, int]:
        """One checked action: the inode left at its path, and the bytes written."""
        if action.kind is ActionKind.RECORD:
            return 0, 0
        for each in self._trees.values():
            each.trim("")  # a plan over many directories must not run out of descriptors
        tree = self._trees[action.side]
        parent, name = split(action.path)
        parent_fd = tree.open_dir(parent)
        if parent_fd is None:
            raise _Skipped(f"no directory {parent!r}", also=parent)
        if action.kind is ActionKind.COPY and action.expected is None:
            found = None  # mkdir and linkat fail where the name was taken: the check is atomic
        else:
            found = read_entry(tree, action.path)
            if not matches(found, action.expected):
                raise _Skipped(f"found {found}, the plan saw {action.expected}")
        if action.kind is ActionKind.DELETE:
            _remove(tree, parent_fd, name, action.path, found, action.side)
            return 0, 0
        entry = action.entry
        assert entry is not None
        if action.kind is ActionKind.RENAME:
            if not matches(read_entry(tree, action.origin), entry):
                raise _Skipped(f"the origin {action.origin!r} changed")
            origin_parent, origin_name = split(action.origin)
            origin_fd = tree.open_dir(origin_parent)
            if origin_fd is None:
                raise _Skipped(f"no directory {origin_parent!r}")
            _rename(origin_fd, origin_name, parent_fd, name, found)
            tree.forget(action.origin)
            tree.forget(action.path)
            return entry.inode, 0
        if action.kind is ActionKind.SET_ATTRIBUTES:
            assert found is not None
            try:
                return side_writes.set_attributes(parent_fd, name, found, entry), 0
            except side_writes.PathTaken as taken:
                raise _Skipped(str(taken)) from None
        return self._copy(action, tree, parent_fd, name, found, entry)

    def _copy(
        self,
        action: Action,
        tree: DestinationTree,
        parent_fd: int,
        name: str,
        found: Entry | None,
        entry: Entry,
    ) -> tuple[int, int]:
        """Write the other side's `origin` at the action's path."""
        origin = self._trees[action.side.other]
        origin_parent, origin_name = split(action.origin)
        origin_fd = origin.open_dir(origin_parent)
        # A file's origin is checked once opened (by fstat): what is read is what was checked.
        if origin_fd is None or (
            entry.kind is not Kind.FILE and not matches(read_entry(origin, action.origin), entry)
        ):
            raise _Skipped(f"the origin {action.origin!r} changed")
        if entry.kind is Kind.DIR:
            if found is not None:
                _remove(tree, parent_fd, name, action.path, found, action.side)
            os.mkdir(name, 0o700, dir_fd=parent_fd)
            fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
            try:
                if entry.mode & 0o700 == 0o700:
                    os.fchmod(fd, entry.mode)
                else:
                    self._modes[(action.side, action.path)] = entry.mode
                return os.fstat(fd).st_ino, 0
            finally:
                os.close(fd)
        if found is not None and found.kind is Kind.DIR:
            # Emptied by the plan.
            _remove(tree, parent_fd, name, action.path, found, action.side)
            found = None
        expected = found  # what the path holds now that the plan's own removal is done

        def unchanged(dir_fd: int, name: str) -> bool:
            return matches(entry_at(dir_fd, name), expected)

        try:
            if entry.kind is Kind.SYMLINK:
                status = lstat_at(origin_fd, origin_name)
                if status is None:
                    raise _Skipped(f"the origin {action.origin!r} is gone")
                side_writes.write_symlink(
                    parent_fd,
                    name,
                    entry.target,
                    status,
                    tree.ownership,
                    unchanged,
                    expected is not None,
                )
                return self._inode(parent_fd, name), 0
            source_fd = os.open(origin_name, _FILE_FLAGS, dir_fd=origin_fd)
            try:
                status = os.fstat(source_fd)
                if not matches(entry_of(status), entry):
                    raise _Skipped(f"the origin {action.origin!r} changed as it was opened")
                written, inode = side_writes.write_file(
                    parent_fd,
                    name,
                    source_fd,
                    status,
                    tree.ownership,
                    unchanged,
                    expected is not None,
                )
            finally:
                os.close(source_fd)
        except side_writes.PathTaken as taken:
            raise _Skipped(str(taken)) from None
        return inode, written

    def _inode(self, parent_fd: int, name: str) -> int:
        status = lstat_at(parent_fd, name)
        if status is None:
            raise _Skipped("gone right after it was written")
        return status.st_ino

    def _set_directory_modes(self) -> None:
        """The created directories' modes, deepest first (their entries are written by now)."""
        for (side, path), mode in sorted(
            self._modes.items(), key=lambda item: item[0][1].count("/"), reverse=True
        ):
            fd = self._trees[side].open_dir(path)
            if fd is not None and stat.S_IMODE(os.fstat(fd).st_mode) != mode:
                os.fchmod(fd, mode)
        self._modes.clear()
