"""From each path's outcome to the plan's actions, in an order that can be applied (pure).

Order: replayed renames; conflict losers renamed aside (their path is then free for the winner);
deletions, deepest first (a directory is empty when its turn comes); copies and attribute
changes, parents first (a directory exists before its entries are written); records last.
The ancestor records of a path ride on its last write, so they are saved only once it happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from pylsyncd.entries import Ancestor, Entry, Kind, Side, same
from pylsyncd.plan import Action, ActionKind, Conflict, Record
from pylsyncd.rename_replay import Replayed


@dataclass
class Outcome:
    """Which side's version each side ends with at one path, and a loser kept aside."""

    take_a: Side
    take_b: Side
    kept: Side | None = None  # whose version is kept as a conflict copy
    kept_on: tuple[Side, ...] = ()  # where the copy is written
    winner: Side | None = None  # a conflict: who took the path


_PHASES = (ActionKind.RENAME, ActionKind.DELETE, ActionKind.COPY, ActionKind.RECORD)


def ordered_plan(
    state: Replayed, outcomes: Mapping[str, Outcome], conflicts: Mapping[str, Conflict]
) -> list[Action]:
    """The actions of every path, grouped in phases and ordered within each."""
    phases: dict[ActionKind, list[Action]] = {kind: [] for kind in _PHASES}
    for path, outcome in outcomes.items():
        if _in_sync(state, path, outcome):
            continue
        conflict = conflicts.get(path)
        copy = conflict.copy if conflict is not None else None
        for action in _path_actions(state, path, outcome, copy):
            phase = ActionKind.COPY if action.kind is ActionKind.SET_ATTRIBUTES else action.kind
            phases[phase].append(action)
    phases[ActionKind.RENAME].sort(key=lambda action: action.path)
    phases[ActionKind.DELETE].sort(key=lambda action: (-action.path.count("/"), action.path))
    phases[ActionKind.COPY].sort(key=lambda action: action.path.split("/"))
    phases[ActionKind.RECORD].sort(key=lambda action: action.path)
    return state.actions + [action for kind in _PHASES for action in phases[kind]]


def _in_sync(state: Replayed, path: str, outcome: Outcome) -> bool:
    """Whether nothing at all is to be done at `path` (most of a large scope): a fast path."""
    if outcome.take_a is not Side.A or outcome.take_b is not Side.B or outcome.kept is not None:
        return False
    a, b, known = state.a.get(path), state.b.get(path), state.ancestor.get(path)
    if a is None or b is None or known is None:
        return a is None and b is None and known is None
    return (
        known.inode_a == a.inode and known.inode_b == b.inode and known.entry.same(a) and a.same(b)
    )


def _path_actions(state: Replayed, path: str, outcome: Outcome, copy: str | None) -> list[Action]:
    """The writes at one path (and at its loser's copy), the last one carrying the records.

    One side at most is written at a path: both end with the same version, which one of them
    already holds (one-way-safe writes B only).
    """
    a, b = state.a.get(path), state.b.get(path)
    final_a = a if outcome.take_a is Side.A else b
    final_b = a if outcome.take_b is Side.A else b
    actions: list[Action] = []
    write: tuple[Side, ActionKind, Entry | None, Entry | None] | None = None
    for side, here, final in ((Side.A, a, final_a), (Side.B, b, final_b)):
        if copy is not None and outcome.kept is side and side in outcome.kept_on:
            actions.append(Action(ActionKind.RENAME, side, copy, None, here, path))
            here = None
        kind = _write_kind(here, final)
        if kind is not None:
            write = (side, kind, here, final)
    written = write[0] if write is not None else None
    records = _records(state.ancestor.get(path), path, final_a, final_b, written)
    if write is not None:
        side, kind, here, final = write
        origin = "" if final is None else path
        actions.append(Action(kind, side, path, here, final, origin, records))
    elif records:
        actions.append(Action(ActionKind.RECORD, Side.A, path, None, records=records))
    return actions + _kept_copies(a if outcome.kept is Side.A else b, path, outcome, copy)


def _write_kind(here: Entry | None, final: Entry | None) -> ActionKind | None:
    """What turns `here` into `final` on a side (None: nothing to do)."""
    if final is None:
        return None if here is None else ActionKind.DELETE
    if here is None:
        return ActionKind.COPY
    if same(here, final):
        return None
    if here.same_bytes(final) or (here.kind is final.kind and final.kind is Kind.DIR):
        return ActionKind.SET_ATTRIBUTES
    if here.kind is final.kind and final.with_mode(here.mode).same(here):
        return ActionKind.SET_ATTRIBUTES  # a chmod alone
    return ActionKind.COPY


def _records(
    known: Ancestor | None, path: str, a: Entry | None, b: Entry | None, written: Side | None
) -> tuple[Record, ...]:
    """What the ancestor keeps for `path` once its writes happened (nothing while sides differ)."""
    if a is None:
        return () if known is None else (Record(path, None),)
    # The side written gets its inode from the applier (`Action.records_after`). Where the sides
    # end different (one-way-safe keeps B's own version), the ancestor is what A last sent: B's
    # version then stays B's own work at the next reconcile, and no inode of B's is recorded.
    inode_a = 0 if written is Side.A else a.inode
    inode_b = 0 if written is Side.B or b is None or not a.same(b) else b.inode
    if (
        known is not None
        and (known.inode_a, known.inode_b) == (inode_a, inode_b)
        and known.entry.same(a)
    ):
        return ()
    return (Record(path, Ancestor(a.with_inode(0), inode_a, inode_b)),)


def _kept_copies(
    entry: Entry | None, path: str, outcome: Outcome, copy: str | None
) -> list[Action]:
    """The loser's copy written on the sides that did not hold it (the last one records it)."""
    kept = outcome.kept
    if copy is None or kept is None:
        return []
    assert entry is not None, "a conflict's loser exists"
    origin = copy if kept in outcome.kept_on else path
    actions = [
        Action(ActionKind.COPY, side, copy, None, entry, origin)
        for side in outcome.kept_on
        if side is not kept
    ]
    if actions and len(outcome.kept_on) == 2:
        settled = Ancestor(entry.with_inode(0), entry.inode, 0)
        if kept is Side.B:
            settled = Ancestor(entry.with_inode(0), 0, entry.inode)
        actions[-1] = replace(actions[-1], records=(Record(copy, settled),))
    return actions
