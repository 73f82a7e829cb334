"""Pure two-way reconcile: (ancestor, side A, side B, policy) -> plan. No I/O, no clock.

The data model (see `pylsyncd.entries` and `pylsyncd.plan`):
- `Entry`: one path as one side holds it: kind (file, directory, symlink), size, mtime_ns, mode,
  symlink target, that side's inode, and an optional content digest. Two entries are equal when
  type, size, mtime, mode and target are (and their digests, when both have one); a directory by
  type and mode only. A chmod alone or a touch alone is therefore a change.
- `Ancestor`: the entry both sides last agreed on, with the inode each side held it under.
- `Scope`: what a batch touched. Its three maps cover the same paths: every path either side's
  watcher reported, each with everything below it on both sides and in the ancestor. A path
  missing from a side's map is absent on that side; the caller reads both sides for every path
  (a directory's children are implied this way: a deleted tree is its paths missing).
- `Plan`: actions (each one write on one side, with what it expects to find there) in an order
  that can be applied: replayed renames, then conflict losers renamed aside, then deletions
  (children first), then copies and attribute changes (parents first), then records.

The rules, per path (o the ancestor, a and b what each side holds):
- a equal to b: nothing to write (the ancestor follows, also when only inodes moved).
- one side equal to o: it takes the other side's version (a copy, a deletion, a chmod).
- one side deleted it, the other changed it: the edit wins and is restored where it was deleted.
- both changed differently: a conflict. The winner (CONFLICT: the newer mtime; on a tie the
  larger entry, so the outcome does not depend on which side is A; or always source or
  destination) takes the path on both sides, the loser is kept on both as a conflict copy.
  Two files whose digests are equal hold the same bytes: the winner's times and mode are set on
  the other side, no copy, no conflict reported (at a first start between trees copied without
  their times, the caller hashes same-size files so as not to make a copy of each).
  A directory always wins against a file or symlink, whatever the policy: moving a tree aside
  would break every path inside it, and keeping the single file aside loses nothing. Two
  directories that differ only in mode: the winner's mode, no copy (no content is at stake).
  A path that is itself a conflict copy gets no copy of a copy: the winner replaces it (as
  syncthing does); the conflict is still reported, with `copy` None.
- a directory must exist on a side where anything below it ends up: deleting a tree on one side
  while the other created or edited inside it brings the directory back with those entries
  (the deleted, unchanged ones stay deleted); a tree replaced by a file on one side while the
  other added inside it is a conflict the directory wins.
- renames are replayed by inode (`pylsyncd.rename_replay`).
- halt: a side whose root is empty while the ancestor holds two entries or more is a vanished
  mount, not a mass deletion: the plan is a halt and nothing is propagated.

MODE one-way-safe: A -> B, B's own work is never lost. B's deletions are undone (B mirrors A);
what B created or edited stays where A has nothing new to put there (A unchanged or deleted it);
when A changed it too, A's version takes the path on B and B's is kept beside it on B as a
conflict copy. A is never written. The ancestor then records A's version (what A last sent), so
B's own version stays B's own at the next reconcile instead of conflicting again.
MODE one-way: B takes A's version of everything.

The union merge at first start (no usable ancestor) is reconcile against an empty ancestor: a
path on one side is a creation, a path on both that differs a conflict with a copy. It never
deletes, and never lets a newer mtime silently replace a version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pylsyncd.conflict_names import conflict_copy_name, is_conflict_copy
from pylsyncd.entries import Ancestor, ConflictPolicy, Entry, Kind, Mode, Side, same
from pylsyncd.events import parent_of
from pylsyncd.plan import Conflict, Plan
from pylsyncd.plan_order import Outcome, ordered_plan
from pylsyncd.rename_replay import Replayed, replay_renames

HALT_MINIMUM = 2  # ancestor entries from which an emptied root halts instead of deleting them


@dataclass(frozen=True)
class Policy:
    """How disagreements are settled: the pair's MODE and CONFLICT."""

    mode: Mode = Mode.TWO_WAY
    conflict: ConflictPolicy = ConflictPolicy.NEWER


@dataclass(frozen=True)
class Scope:
    """What reconcile sees: the touched paths and all below them, on both sides and the ancestor."""

    ancestor: Mapping[str, Ancestor]
    a: Mapping[str, Entry]
    b: Mapping[str, Entry]
    ancestor_count: int = 0  # entries in the whole ancestor state, for the halt rule
    a_root_empty: bool = False
    b_root_empty: bool = False


@dataclass
class Decisions:
    """The entries as they stand after replayed renames, with each path's outcome."""

    state: Replayed
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def entry(self, side: Side, path: str) -> Entry | None:
        """What `side` holds at `path` before the per-path actions."""
        return self.state.side(side).get(path)

    def final(self, side: Side, path: str) -> Entry | None:
        """What `side` holds at `path` once the plan is applied."""
        outcome = self.outcomes[path]
        return self.entry(outcome.take_a if side is Side.A else outcome.take_b, path)


def halt_reason(scope: Scope) -> str | None:
    """Why the plan must not be applied: a root that became empty is a lost mount, not an edit."""
    if scope.ancestor_count < HALT_MINIMUM:
        return None
    for side, empty in ((Side.A, scope.a_root_empty), (Side.B, scope.b_root_empty)):
        if empty:
            return (
                f"the {side.value} root is empty while {scope.ancestor_count} entries were in "
                f"sync: a vanished or unmounted volume is not propagated as a deletion"
            )
    return None


def reconcile(scope: Scope, policy: Policy, when: datetime) -> Plan:
    """The plan that makes both sides agree on the scope's paths; `when` names conflict copies."""
    reason = halt_reason(scope)
    if reason is not None:
        return Plan(halt=reason)
    moved = (Side.A, Side.B) if policy.mode is Mode.TWO_WAY else (Side.A,)
    decisions = Decisions(replay_renames(scope.ancestor, scope.a, scope.b, moved))
    paths = set(decisions.state.ancestor)
    paths.update(decisions.state.a, decisions.state.b)
    state, outcomes = decisions.state, decisions.outcomes
    for path in paths:
        known = state.ancestor.get(path)
        outcomes[path] = _decide(
            known.entry if known is not None else None, state.a.get(path), state.b.get(path), policy
        )
    for path in sorted(paths, key=lambda key: key.count("/"), reverse=True):
        _keep_parents(decisions, path, policy)
    conflicts = _conflicts(decisions, when)
    actions = ordered_plan(decisions.state, decisions.outcomes, conflicts)
    return Plan(tuple(actions), tuple(conflict for _, conflict in sorted(conflicts.items())))


def union_merge(
    a: Mapping[str, Entry], b: Mapping[str, Entry], policy: Policy, when: datetime
) -> Plan:
    """The first start without a usable ancestor: everything either side has ends on both.

    Reconcile against an empty ancestor, which never deletes: a path on one side is a creation;
    on both and different, a conflict whose loser is kept as a copy (never "newer wins" silently:
    at first start nobody knows which side was edited last, and mtimes copied by tools lie).
    MODE one-way is merged as one-way-safe: without an ancestor, nothing says that what only the
    destination holds was ever the source's, so nothing may be deleted.
    """
    if policy.mode is Mode.ONE_WAY:
        policy = Policy(Mode.ONE_WAY_SAFE, policy.conflict)
    return reconcile(Scope({}, a, b), policy, when)


def _decide(o: Entry | None, a: Entry | None, b: Entry | None, policy: Policy) -> Outcome:
    """The outcome of one path on its own (o: the ancestor's entry), before directories are kept
    for their contents."""
    if same(a, b):
        return Outcome(Side.A, Side.B)
    if policy.mode is Mode.ONE_WAY or same(o, b):
        return Outcome(Side.A, Side.A)
    if policy.mode is Mode.ONE_WAY_SAFE:
        if b is None:
            return Outcome(Side.A, Side.A)  # B deleted it: B mirrors A
        if a is None or same(o, a):
            return Outcome(Side.A, Side.B)  # B's own work stays where A has nothing new
        if b.kind is Kind.DIR and a.kind is not Kind.DIR:
            return Outcome(Side.A, Side.B, Side.A, (Side.B,), winner=Side.B)
        if a.kind is Kind.DIR and b.kind is Kind.DIR:
            return Outcome(Side.A, Side.A, winner=Side.A)
        return Outcome(Side.A, Side.A, Side.B, (Side.B,), winner=Side.A)
    if same(o, a) or a is None:
        return Outcome(Side.B, Side.B)
    if b is None:
        return Outcome(Side.A, Side.A)
    winner = _winner(a, b, policy.conflict)
    if a.same_bytes(b):
        return Outcome(winner, winner)  # the same bytes: only times or mode differ, no copy
    kept_on = () if Kind.DIR is a.kind is b.kind else (Side.A, Side.B)
    return Outcome(winner, winner, winner.other if kept_on else None, kept_on, winner)


def _winner(a: Entry, b: Entry, policy: ConflictPolicy) -> Side:
    """Who takes a path both sides changed differently."""
    if (a.kind is Kind.DIR) != (b.kind is Kind.DIR):
        return Side.A if a.kind is Kind.DIR else Side.B
    if policy is ConflictPolicy.SOURCE:
        return Side.A
    if policy is ConflictPolicy.DESTINATION:
        return Side.B
    return Side.A if _age_key(a) >= _age_key(b) else Side.B


def _age_key(entry: Entry) -> tuple[int, int, str, int, str, bytes]:
    """Newer first; ties broken by content so that swapping the sides swaps the winner."""
    return (
        entry.mtime_ns,
        entry.size,
        entry.kind.value,
        entry.mode,
        entry.target,
        entry.digest or b"",
    )


def _keep_parents(decisions: Decisions, path: str, policy: Policy) -> None:
    """A directory stays (or comes back) on each side where something below it ends up.

    Paths are visited deepest first, so every descendant's outcome is final when its directory's
    is looked at.
    """
    parent = parent_of(path)
    if not parent or parent not in decisions.outcomes:
        return
    # One-way-safe and one-way never write A, whose own tree is whole.
    for side in (Side.A, Side.B) if policy.mode is Mode.TWO_WAY else (Side.B,):
        if decisions.final(side, path) is None:
            continue
        final = decisions.final(side, parent)
        if final is not None and final.kind is Kind.DIR:
            continue
        holder = _directory_holder(decisions, parent)
        outcome = decisions.outcomes[parent]
        outcome.take_b = holder
        if policy.mode is Mode.TWO_WAY:
            outcome.take_a = holder
        loser = decisions.entry(holder.other, parent)
        if loser is not None and loser.kind is not Kind.DIR:
            outcome.kept = holder.other
            outcome.kept_on = (Side.A, Side.B) if policy.mode is Mode.TWO_WAY else (Side.B,)
            outcome.winner = holder


def _directory_holder(decisions: Decisions, path: str) -> Side:
    """The side holding a directory at `path` (one does: something below it ends up somewhere)."""
    entry = decisions.entry(Side.B, path)
    return Side.B if entry is not None and entry.kind is Kind.DIR else Side.A


def _conflicts(decisions: Decisions, when: datetime) -> dict[str, Conflict]:
    """Each conflicted path's report, with the name its loser is kept under."""
    taken = set(decisions.outcomes)
    found: dict[str, Conflict] = {}
    for path, outcome in decisions.outcomes.items():
        if outcome.winner is None:
            continue
        if outcome.kept is None or is_conflict_copy(path):
            outcome.kept, outcome.kept_on = None, ()
            loser = outcome.winner.other
            found[path] = Conflict(path, outcome.winner, None, loser)
            continue
        attempt = 1
        while (name := conflict_copy_name(path, when, outcome.kept, attempt)) in taken:
            attempt += 1
        taken.add(name)
        found[path] = Conflict(path, outcome.winner, name, outcome.kept)
    return found
