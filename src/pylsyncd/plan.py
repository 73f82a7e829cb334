"""A two-way plan: the actions that make both sides agree, in the order they can be applied.

Every action writes ONE side at ONE path and carries what the plan expected to find there
(`expected`) and, for a copy or a rename, the version it moves (`entry`, which must still be what
the origin holds). The applier re-checks both right before it writes (a compare-and-swap); on a
mismatch it skips the action and hands the path back to reconcile, so a change made while the
plan ran is never overwritten. Once an action succeeded, its `records` are what the ancestor state
keeps for those paths (see `Action.records_after`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from pylsyncd.entries import Ancestor, Entry, Side


class ActionKind(Enum):
    """What an action does on its side."""

    RENAME = "rename"  # `origin` -> `path` on `side`, replacing what `path` holds (a replayed move)
    DELETE = "delete"  # remove `path` (a directory: already emptied by earlier actions)
    COPY = "copy"  # write the other side's `origin` at `path` (a directory: create it)
    SET_ATTRIBUTES = "set_attributes"  # same content: only the mode (or a directory's times)
    RECORD = "record"  # nothing to write: both sides agree, only the ancestor changes


@dataclass(frozen=True, slots=True)
class Record:
    """What the ancestor state keeps for `path` once an action succeeded (None: forget it)."""

    path: str
    ancestor: Ancestor | None


@dataclass(frozen=True, slots=True)
class Action:
    """One write on one side, with what it expects to find (the compare-and-swap)."""

    kind: ActionKind
    side: Side  # the side written
    path: str
    expected: Entry | None  # what `side` holds at `path` now (None: nothing)
    entry: Entry | None = None  # COPY/RENAME/SET_ATTRIBUTES: the version written there
    origin: str = ""  # COPY: the path read on the other side; RENAME: the old path on `side`
    records: tuple[Record, ...] = ()

    def records_after(self, written_inode: int) -> tuple[Record, ...]:
        """The records with the inode this action's write produced on its side filled in.

        A copy is written to a temporary file and renamed, so the new inode is known only once
        it happened; the plan leaves the written side's inode of `path` at 0.
        """
        settled = []
        for record in self.records:
            ancestor = record.ancestor
            if ancestor is not None and record.path == self.path:
                if self.side is Side.A:
                    ancestor = replace(ancestor, inode_a=written_inode)
                else:
                    ancestor = replace(ancestor, inode_b=written_inode)
            settled.append(Record(record.path, ancestor))
        return tuple(settled)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A path both sides changed differently: one WARNING line and one entry in the status."""

    path: str
    winner: Side
    copy: str | None  # where the loser is kept on both sides (None: see `pylsyncd.reconcile`)
    loser: Side


@dataclass(frozen=True)
class Plan:
    """Renames first, then deletions (children first), then writes (parents first)."""

    actions: tuple[Action, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    halt: str | None = None  # why nothing may be propagated (the pair halts)

    def __bool__(self) -> bool:
        return bool(self.actions or self.conflicts or self.halt)

    def writes(self) -> tuple[Action, ...]:
        """The actions that touch a side (every action but ancestor-only records)."""
        return tuple(action for action in self.actions if action.kind is not ActionKind.RECORD)
