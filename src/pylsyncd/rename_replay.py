"""Renames made on one side, found by inode and replayed as renames on the other (pure).

A path that left side X while the inode it had there now sits at a new path of X, holding the
ancestor's content, was renamed on X. When the other side Y still holds the ancestor's version
at the old path (same content, same inode) and nothing of its own at the new one, renaming it on
Y reaches the same state without copying a byte (a renamed tree of 10 GB stays a rename). In
every other case the rename is left to the per-path rules, which lose nothing either: the old
path is a deletion (or, edited on Y, restored) and the new one a creation.

After a replayed rename, reconcile goes on with Y's and the ancestor's entries below the old path
moved to the new one, so what else changed inside the tree is reconciled under its new name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pylsyncd.entries import Ancestor, Entry, Kind, Side, same
from pylsyncd.events import is_within, parent_of, rebase
from pylsyncd.plan import Action, ActionKind, Record


@dataclass
class Replayed:
    """The renames to apply first, and the entries as they stand once they are applied."""

    ancestor: dict[str, Ancestor]
    a: dict[str, Entry]
    b: dict[str, Entry]
    actions: list[Action] = field(default_factory=list)

    def side(self, side: Side) -> dict[str, Entry]:
        """One side's entries (an identity test: hashing an Enum costs a Python call)."""
        return self.a if side is Side.A else self.b


def replay_renames(
    ancestor: Mapping[str, Ancestor],
    a: Mapping[str, Entry],
    b: Mapping[str, Entry],
    moved_sides: tuple[Side, ...],
) -> Replayed:
    """Find the renames made on each of `moved_sides` and replay them on the opposite side."""
    state = Replayed(dict(ancestor), dict(a), dict(b))
    scope = set(ancestor) | set(a) | set(b)
    moved: list[str] = []  # both ends of every replayed rename: nothing inside them is replayed
    for side in moved_sides:
        by_inode = _unique_inodes(state.side(side))
        for path in sorted(state.ancestor, key=lambda key: key.count("/")):
            if any(is_within(path, end) for end in moved):
                continue
            target = _rename_target(state, side, path, by_inode, scope)
            if target is None or any(is_within(target, end) for end in moved):
                continue
            _replay(state, side.other, path, target)
            moved += [path, target]
    return state


def _unique_inodes(entries: Mapping[str, Entry]) -> dict[int, str]:
    """Each inode's path, leaving out hard links (an inode at two paths names no single rename)."""
    paths: dict[int, str] = {}
    shared: set[int] = {0}  # no inode known
    for path, entry in entries.items():
        if entry.inode in paths:
            shared.add(entry.inode)
        paths[entry.inode] = path
    return {inode: path for inode, path in paths.items() if inode not in shared}


def _rename_target(
    state: Replayed, side: Side, path: str, by_inode: dict[int, str], scope: set[str]
) -> str | None:
    """Where `side` renamed `path` to, when the rename can be replayed on the other side."""
    here, there = state.side(side), state.side(side.other)
    known = state.ancestor[path]
    if path in here:
        return None
    target = by_inode.get(known.inode(side))
    if target is None or target == path or is_within(target, path):
        return None
    if not known.entry.same(here[target]):
        return None  # renamed and changed: a deletion and a creation
    old = there.get(path)
    if old is None or not known.entry.same(old) or old.inode != known.inode(side.other):
        return None  # the other side changed or replaced it: the per-path rules decide
    replaced = state.ancestor.get(target)
    if replaced is not None and (
        replaced.entry.kind is Kind.DIR or replaced.inode(side) == known.inode(side)
    ):
        return None  # renaming over a directory is not a rename the other side can replay
    if not _same_or_absent(replaced, there.get(target)):
        return None  # the other side has its own entry at the new name: the per-path rules
    parent = parent_of(target)
    if (
        parent
        and parent in scope
        and (there.get(parent) is None or there[parent].kind is not Kind.DIR)
    ):
        return None  # the new name's directory is created later, by a copy
    return target


def _same_or_absent(known: Ancestor | None, entry: Entry | None) -> bool:
    return same(known.entry if known is not None else None, entry)


def _replay(state: Replayed, side: Side, origin: str, target: str) -> None:
    """Plan the rename on `side` and move that side's and the ancestor's entries along."""
    entries = state.side(side)
    expected = entries.get(target)
    records = [Record(key, None) for key in state.ancestor if is_within(key, target)]
    records += [Record(key, None) for key in state.ancestor if is_within(key, origin)]
    for key in [key for key in state.ancestor if is_within(key, target)]:
        del state.ancestor[key]
    for key in [key for key in entries if is_within(key, target)]:
        del entries[key]
    for key in [key for key in state.ancestor if is_within(key, origin)]:
        moved = rebase(key, origin, target)
        state.ancestor[moved] = state.ancestor.pop(key)
        records.append(Record(moved, state.ancestor[moved]))
    old = entries[origin]
    for key in [key for key in entries if is_within(key, origin)]:
        entries[rebase(key, origin, target)] = entries.pop(key)
    state.actions.append(
        Action(
            ActionKind.RENAME,
            side,
            target,
            expected,
            entry=old,
            origin=origin,
            records=tuple(records),
        )
    )
