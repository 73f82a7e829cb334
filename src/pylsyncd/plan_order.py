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


def _path_actions(state: Replayed, path: str, outcome: Outcome, copy: str | None) -> list[Action]:
    """The writes at one path (and at its loser's copy), the last one carrying the records."""
    current = {side: state.sides[side].get(path) for side in Side}
    final = {Side.A: current[outcome.take_a], Side.B: current[outcome.take_b]}
    actions: list[Action] = []
    written: set[Side] = set()
    for side in Side:
        here = current[side]
        if copy is not None and outcome.kept is side and side in outcome.kept_on:
            actions.append(Action(ActionKind.RENAME, side, copy, None, here, path))
            here = None
        action = _write(side, path, here, final[side])
        if action is not None:
            actions.append(action)
            written.add(side)
    records = _records(state.ancestor.get(path), path, final, written)
    copies = _kept_copies(current, path, outcome, copy)
    if records and actions and actions[-1].kind is not ActionKind.RENAME:
        actions[-1] = replace(actions[-1], records=records)
    elif records:
        actions.append(Action(ActionKind.RECORD, Side.A, path, None, records=records))
    return actions + copies


def _write(side: Side, path: str, here: Entry | None, final: Entry | None) -> Action | None:
    """What turns `here` into `final` on `side` (None: nothing to do)."""
    if final is None:
        return None if here is None else Action(ActionKind.DELETE, side, path, here)
    if here is None:
        return Action(ActionKind.COPY, side, path, None, final, path)
    if same(here, final):
        return None
    if here.same_bytes(final) or (
        here.kind is final.kind
        and (final.kind is Kind.DIR or same(here, replace(final, mode=here.mode)))
    ):
        return Action(ActionKind.SET_ATTRIBUTES, side, path, here, final, path)
    return Action(ActionKind.COPY, side, path, here, final, path)


def _records(
    known: Ancestor | None, path: str, final: Mapping[Side, Entry | None], written: set[Side]
) -> tuple[Record, ...]:
    """What the ancestor keeps for `path` once its writes happened (nothing while sides differ)."""
    a, b = final[Side.A], final[Side.B]
    if a is None:
        return () if known is None else (Record(path, None),)
    # The side written gets its inode from the applier (`Action.records_after`). Where the sides
    # end different (one-way-safe keeps B's own version), the ancestor is what A last sent: B's
    # version then stays B's own work at the next reconcile, and no inode of B's is recorded.
    inode_a = 0 if Side.A in written else a.inode
    inode_b = 0 if Side.B in written or not same(a, b) else b.inode if b is not None else 0
    settled = Ancestor(a.with_inode(0), inode_a, inode_b)
    if (
        known is not None
        and known.entry.same(a)
        and settled == replace(known, entry=a.with_inode(0))
    ):
        return ()
    return (Record(path, settled),)


def _kept_copies(
    current: Mapping[Side, Entry | None], path: str, outcome: Outcome, copy: str | None
) -> list[Action]:
    """The loser's copy written on the sides that did not hold it (the last one records it)."""
    kept = outcome.kept
    if copy is None or kept is None:
        return []
    entry = current[kept]
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
