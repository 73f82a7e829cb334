"""Pure coalescing: a run of watcher events in, one batch of changes out (no I/O, no clock).

Every change means "make the destination path equal to the source path as it is *now*": the
transfer reads the source when it applies the batch. That is what makes merging safe (create +
modify is one sync, many modifies are one) and what makes a retried or degraded batch correct
whatever happened in between. The only ordered part is the list of moves, replayed in the
destination as renames before the per-path changes, which are keyed by the paths' final names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from pylsyncd.events import Event, EventKind, is_within, parent_of, rebase


class ChangeKind(Enum):
    """What the transfer does for one path."""

    SYNC = "sync"  # copy the entry itself (a directory: create it and set its attributes)
    SYNC_TREE = "sync_tree"  # copy the entry and, for a directory, everything below it
    DELETE = "delete"  # the source no longer has it (checked again when applied)


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    kind: ChangeKind


@dataclass(frozen=True, slots=True)
class Move:
    """A rename to replay in the destination; it replaces whatever the destination has there."""

    source: str
    target: str
    is_dir: bool


@dataclass(frozen=True)
class Batch:
    """What one transfer applies: moves in order, then changes, parents before children."""

    moves: tuple[Move, ...] = ()
    changes: tuple[Change, ...] = ()
    full_resync: bool = False  # events were lost: the whole tree must be compared

    def __bool__(self) -> bool:
        return bool(self.moves or self.changes or self.full_resync)

    def without_moves(self) -> Batch:
        """The same outcome without renames: both ends of every move become tree syncs.

        Used when a batch is retried after a partial failure (a rename may already have happened,
        so replaying it could move the wrong thing) and when deletions are disabled.
        """
        ends = [end for move in self.moves for end in (move.source, move.target)]
        kinds = {path: ChangeKind.SYNC_TREE for path in ends}
        for change in self.changes:
            if (
                kinds.get(change.path) is not ChangeKind.SYNC_TREE
                or change.kind is ChangeKind.DELETE
            ):
                kinds[change.path] = change.kind
        return Batch((), _ordered_changes(kinds), self.full_resync)


@dataclass
class _Pending:
    kind: ChangeKind
    # Created during this batch: the destination may lack it, so a rename cannot be replayed.
    # (It may also have it: a transfer reads the source when it runs, possibly after the create.)
    new: bool


def _sort_key(path: str) -> list[str]:
    # Component-wise order puts every directory right before its contents ("a" < "a/b" < "a b").
    return path.split("/")


def coalesce(events: Iterable[Event]) -> Batch:
    """Merge events into the smallest batch with the same outcome."""
    pending: dict[str, _Pending] = {}
    moves: list[Move] = []
    full_resync = False

    for event in events:
        path = event.path
        current = pending.get(path)
        if event.kind is EventKind.OVERFLOW:
            full_resync = True
        elif event.kind is EventKind.CREATED:
            kind = ChangeKind.SYNC_TREE if event.tree else ChangeKind.SYNC
            if current is None:
                pending[path] = _Pending(kind, new=True)
            elif current.kind is ChangeKind.DELETE:
                pending[path] = _Pending(kind, new=False)  # deleted then recreated: a replacement
            elif kind is ChangeKind.SYNC_TREE:
                current.kind = kind
        elif event.kind in (EventKind.MODIFIED, EventKind.ATTRIB):
            if current is None:
                pending[path] = _Pending(ChangeKind.SYNC, new=False)
            elif current.kind is ChangeKind.DELETE:
                current.kind = ChangeKind.SYNC
        elif event.kind is EventKind.DELETED:
            # Even created and deleted within this batch, the path gets a delete (a no-op when
            # nothing is there): the previous batch may have read the source after the create
            # and copied the path, because transfers read the source when they run.
            if not _undo_last_move(pending, moves, path):
                pending[path] = _Pending(ChangeKind.DELETE, new=False)
        elif event.kind is EventKind.MOVED:
            assert event.target is not None, "a MOVED event carries its target"
            _apply_move(pending, moves, path, event.target, event.is_dir)

    kinds = {path: entry.kind for path, entry in pending.items()}
    return Batch(tuple(moves), _ordered_changes(kinds), full_resync)


def _apply_move(
    pending: dict[str, _Pending], moves: list[Move], source: str, target: str, is_dir: bool
) -> None:
    """Carry pending changes along with a rename, and record the rename when it can be replayed."""
    # Whatever stood at the target is replaced by the move, so changes pending there are moot.
    for key in _keys_within(pending, target, is_dir):
        del pending[key]
    inside = _keys_within(pending, source, is_dir)
    carried = {rebase(key, source, target): pending.pop(key) for key in inside}
    moved = carried.get(target)
    kind = ChangeKind.SYNC_TREE if is_dir else ChangeKind.SYNC
    if (moved is not None and moved.new) or _created_in_batch(pending, source):
        # The destination may not have the source yet: copy it instead of renaming, and delete
        # the old name in case a transfer that read the source late did copy it.
        carried[target] = _Pending(kind, new=True)
        pending[source] = _Pending(ChangeKind.DELETE, new=False)
    elif _created_in_batch(pending, target):
        # The destination lacks the target's directory until this batch creates it: copy there,
        # and remove the old name, which the destination does have.
        carried[target] = _Pending(kind, new=True)
        pending[source] = _Pending(ChangeKind.DELETE, new=False)
    else:
        moves.append(Move(source, target, is_dir))
    pending.update(carried)


def _undo_last_move(pending: dict[str, _Pending], moves: list[Move], deleted: str) -> bool:
    """A file renamed and then deleted within the batch is deleted under both names instead.

    Editors save this way (vim renames the original to a backup, writes the new file, deletes the
    backup): without this the destination would see a rename, a copy and a delete. The second
    name is deleted too because the rename may have replaced a file the destination still has.
    """
    if not moves or moves[-1].target != deleted or moves[-1].is_dir:
        return False
    move = moves.pop()
    pending[deleted] = _Pending(ChangeKind.DELETE, new=False)
    current = pending.get(move.source)
    if current is None:
        pending[move.source] = _Pending(ChangeKind.DELETE, new=False)
    else:
        current.new = False  # the rename is gone, so the destination still has the old file
    return True


def _created_in_batch(pending: dict[str, _Pending], path: str) -> bool:
    """True when a directory above `path` was created in this batch (the destination lacks it)."""
    while path:
        path = parent_of(path)
        entry = pending.get(path)
        if entry is not None and entry.new:
            return True
    return False


def _keys_within(pending: dict[str, _Pending], path: str, is_dir: bool) -> list[str]:
    if not is_dir:  # a file has no children: avoid scanning every pending key per file rename
        return [path] if path in pending else []
    return [key for key in pending if is_within(key, path)]


def _ordered_changes(kinds: dict[str, ChangeKind]) -> tuple[Change, ...]:
    """Parents before children; nothing below a deleted directory (its removal covers them)."""
    changes: list[Change] = []
    deleted: str | None = None
    for path in sorted(kinds, key=_sort_key):
        if deleted is not None and is_within(path, deleted):
            continue
        kind = kinds[path]
        if kind is ChangeKind.DELETE:
            deleted = path
        changes.append(Change(path, kind))
    return tuple(changes)


def merge(older: Batch, newer: Batch) -> Batch:
    """One batch with the outcome of `older` followed by `newer`, for requeueing a failed batch.

    Renames are dropped from both: a rename in `newer` could carry a path of `older` away before
    `older`'s change to it is applied, and a rename of `older` may already have happened.
    Without renames, changes are idempotent "make it equal to the source now", so a union is right.
    """
    kinds = {c.path: c.kind for c in older.without_moves().changes}
    for change in newer.without_moves().changes:
        if not (kinds.get(change.path) is ChangeKind.SYNC_TREE and change.kind is ChangeKind.SYNC):
            kinds[change.path] = change.kind  # the later change wins, but a tree sync stays deep
    return Batch((), _ordered_changes(kinds), older.full_resync or newer.full_resync)
