"""Two-way reconcile by a table of cases (after mutagen's and unison's families), and properties.

Each case gives the ancestor and what each side holds, and the trees both sides must hold once
the plan is applied by the in-memory model (`two_way_model`), which checks every compare-and-swap
expectation and the order of the actions. Every case then reconciles again: nothing may be left
to do (no echo). Cases written for one side are mirrored onto the other (the ids name the sides).

Properties (hypothesis) over random trees edited on both sides: no version that was the last write
of a path on either side is lost, the sides converge, nothing echoes, swapping the sides mirrors
the outcome, one-way-safe never writes the source, the union merge never deletes, and edits made
between planning and applying are never overwritten (the compare-and-swap hands them back).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylsyncd.conflict_names import conflict_copy_name, is_conflict_copy
from pylsyncd.entries import Ancestor, ConflictPolicy, Entry, Kind, Mode, Side
from pylsyncd.events import is_within, parent_of, rebase
from pylsyncd.plan import ActionKind, Plan
from pylsyncd.reconcile import Policy, Scope, reconcile, union_merge
from two_way_model import World, contents, equal_trees

WHEN = datetime(2026, 12, 1, 15, 43, 0)

F1 = Entry(Kind.FILE, size=1, mtime_ns=1_000)
F2 = Entry(Kind.FILE, size=2, mtime_ns=2_000)
F3 = Entry(Kind.FILE, size=3, mtime_ns=3_000)
F1_EXEC = replace(F1, mode=0o755)
F1_GROUP = replace(F1, mode=0o664)
F1_TOUCHED = replace(F1, mtime_ns=5_000)
L1 = Entry(Kind.SYMLINK, size=2, mtime_ns=1_000, mode=0o777, target="t1")
L2 = Entry(Kind.SYMLINK, size=3, mtime_ns=2_000, mode=0o777, target="t22")
D = Entry(Kind.DIR, mode=0o755)
D_PRIVATE = Entry(Kind.DIR, mode=0o700)
TREE = {"d": D, "d/x": F1, "d/e": D, "d/e/y": F2, "d/l": L1}

TWO_WAY = Policy()
SAFE = Policy(Mode.ONE_WAY_SAFE)
MIRROR = Policy(Mode.ONE_WAY)
POLICIES = {
    ConflictPolicy.NEWER: "newer",
    ConflictPolicy.SOURCE: "source",
    ConflictPolicy.DESTINATION: "destination",
}


@dataclass(frozen=True)
class Moved:
    """A side's entry that is the ancestor's `origin`, renamed (same inode)."""

    origin: str


@dataclass(frozen=True)
class Copy:
    """The name a conflict copy of `path` gets when the loser is side `letter` (X or Y)."""

    path: str
    letter: str


Spec = Mapping[str, Entry | Moved]
Expected = Mapping[str | Copy, Entry]


@dataclass(frozen=True)
class Case:
    id: str  # with {X} and {Y} for the sides: X is the source unless mirrored
    ancestor: Mapping[str, Entry]
    x: Spec
    y: Spec
    expect: Expected  # what both sides hold (one-way-safe: what the source holds)
    expect_b: Expected | None = None  # one-way-safe: what the destination holds
    policy: Policy = TWO_WAY
    conflicts: int = 0
    renames: int = 0  # replayed renames (no copy of the renamed content)
    writes: int | None = None  # how many actions touch a side, when the case is about that
    halt: bool = False
    ancestor_count: int | None = None
    root_empty: bool = False  # the sides' maps are their whole trees (else other entries exist)
    mirrored: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def mirror(case: Case) -> Case:
    """The same case with the sides' roles swapped (and the policy that names a side)."""
    swapped = {ConflictPolicy.SOURCE: ConflictPolicy.DESTINATION}
    swapped[ConflictPolicy.DESTINATION] = ConflictPolicy.SOURCE
    conflict = swapped.get(case.policy.conflict, case.policy.conflict)
    return replace(case, policy=replace(case.policy, conflict=conflict), mirrored=True)


def side_names(case: Case) -> dict[str, Side]:
    x, y = (Side.B, Side.A) if case.mirrored else (Side.A, Side.B)
    return {"X": x, "Y": y}


def resolve(case: Case, expected: Expected) -> dict[str, Entry]:
    names = side_names(case)
    return {
        conflict_copy_name(key.path, WHEN, names[key.letter]) if isinstance(key, Copy) else key: e
        for key, e in expected.items()
    }


def case_id(case: Case) -> str:
    names = side_names(case)
    return case.id.format(X=names["X"].value, Y=names["Y"].value)


def build_world(case: Case) -> World:
    """The ancestor and both sides, with inodes: an unchanged entry keeps the ancestor's inode."""
    fresh = itertools.count(1_000)
    ancestor = {
        path: Ancestor(entry, 100 + index, 200 + index)
        for index, (path, entry) in enumerate(sorted(case.ancestor.items()))
    }
    a_spec, b_spec = (case.y, case.x) if case.mirrored else (case.x, case.y)
    trees = []
    for side, spec in ((Side.A, a_spec), (Side.B, b_spec)):
        tree = {}
        for path, entry in spec.items():
            if isinstance(entry, Moved):
                known = ancestor[entry.origin]
                tree[path] = known.entry.with_inode(known.inode(side))
            elif path in ancestor and ancestor[path].entry.same(entry):
                tree[path] = entry.with_inode(ancestor[path].inode(side))
            else:
                tree[path] = entry.with_inode(next(fresh))
        trees.append(tree)
    return World(trees[0], trees[1], ancestor)


def run(case: Case) -> tuple[World, Plan]:
    world = build_world(case)
    count = case.ancestor_count if case.ancestor_count is not None else len(world.ancestor)
    empty = (case.root_empty and not world.a, case.root_empty and not world.b)
    scope = Scope(dict(world.ancestor), dict(world.a), dict(world.b), count, *empty)
    plan = reconcile(scope, case.policy, WHEN)
    if not plan.halt:
        world.apply(plan)
    return world, plan


def cases() -> Iterator[Case]:
    yield from _unchanged()
    yield from _one_side()
    yield from _both_sides()
    yield from _directories()
    yield from _renames()
    yield from _attributes()
    yield from _conflicts()
    yield from _halts()
    yield from _one_way_safe()
    yield from _one_way()


def _unchanged() -> Iterator[Case]:
    for name, tree in (("a file", {"x": F1}), ("a symlink", {"x": L1}), ("a tree", TREE)):
        yield Case(f"both unchanged, {name}: nothing to do", tree, tree, tree, tree, writes=0)
    yield Case("nothing at all: nothing to do", {}, {}, {}, {}, writes=0)


def _one_side() -> Iterator[Case]:
    created = {"a file": {"x": F1}, "a symlink": {"x": L1}, "an empty directory": {"x": D}}
    created["a tree"] = TREE
    for name, tree in created.items():
        yield Case(f"{{X}} creates {name}: {{Y}} gets it", {}, tree, {}, tree, writes=len(tree))
    edits = {
        "rewrites a file": ({"x": F1}, {"x": F2}),
        "retargets a symlink": ({"x": L1}, {"x": L2}),
    }
    edits["writes a file in a tree"] = (TREE, {**TREE, "d/e/y": F3})
    for name, (before, after) in edits.items():
        yield Case(f"{{X}} {name}: {{Y}} takes the edit", before, after, before, after, writes=1)
    for name, tree in created.items():
        yield Case(f"{{X}} deletes {name}: {{Y}} deletes it", tree, {}, tree, {}, writes=len(tree))
    types = {"file": F1, "symlink": L1, "directory": D}
    for (old, before), (new, after) in itertools.permutations(types.items(), 2):
        yield Case(
            f"{{X}} turns a {old} into a {new}: {{Y}} follows",
            {"x": before},
            {"x": after},
            {"x": before},
            {"x": after},
            writes=1,
        )
    yield Case(
        "{X} replaces a tree with a file: {Y} deletes the tree's entries, then writes the file",
        TREE,
        {"d": F2},
        TREE,
        {"d": F2},
    )
    yield Case(
        "{X} replaces a file with a tree: {Y} gets the tree",
        {"d": F2},
        TREE,
        {"d": F2},
        TREE,
    )


def _both_sides() -> Iterator[Case]:
    for name, tree in (("file", {"x": F1}), ("symlink", {"x": L1}), ("tree", TREE)):
        yield Case(
            f"both create the same {name}: only the ancestor", {}, tree, tree, tree, writes=0
        )
        yield Case(f"both delete a {name}: only the ancestor", tree, {}, {}, {}, writes=0)
    yield Case(
        "both make the same edit: only the ancestor",
        {"x": F1},
        {"x": F2},
        {"x": F2},
        {"x": F2},
        writes=0,
    )
    yield Case(
        "both chmod alike: only the ancestor",
        {"x": F1},
        {"x": F1_EXEC},
        {"x": F1_EXEC},
        {"x": F1_EXEC},
        writes=0,
    )
    for name, edit in (
        ("rewrites", F2),
        ("chmods", F1_EXEC),
        ("touches", F1_TOUCHED),
        ("symlinks", L1),
    ):
        yield Case(
            f"{{X}} {name} a file {{Y}} deleted: the edit is restored on {{Y}}",
            {"x": F1},
            {"x": edit},
            {},
            {"x": edit},
            writes=1,
        )
    yield Case(
        "{X} chmods a directory {Y} deleted with its file: the directory comes back, not the file",
        {"d": D, "d/x": F1},
        {"d": D_PRIVATE, "d/x": F1},
        {},
        {"d": D_PRIVATE},
    )


def _directories() -> Iterator[Case]:
    base = {"d": D, "d/x": F1}
    yield Case(
        "{X} deletes a directory {Y} created a file in: it comes back with the new file only",
        base,
        {},
        {**base, "d/n": F2},
        {"d": D, "d/n": F2},
    )
    yield Case(
        "{X} deletes a directory {Y} edited a file in: the directory comes back with the edit",
        base,
        {},
        {"d": D, "d/x": F2},
        {"d": D, "d/x": F2},
    )
    deep = {"d": D, "d/e": D, "d/e/x": F1}
    yield Case(
        "{X} deletes a deep tree {Y} created a file deep inside: the directories come back",
        deep,
        {},
        {**deep, "d/e/n": F2},
        {"d": D, "d/e": D, "d/e/n": F2},
    )
    yield Case(
        "{X} deletes a directory {Y} created a directory in: both directories stay",
        base,
        {},
        {**base, "d/new": D},
        {"d": D, "d/new": D},
    )
    yield Case(
        "{X} replaces a directory by a file while {Y} created in it: the directory wins, a copy",
        base,
        {"d": F2},
        {**base, "d/n": F3},
        {"d": D, "d/n": F3, Copy("d", "X"): F2},
        conflicts=1,
    )
    yield Case(
        "{X} replaces a directory by a symlink while {Y} edited in it: the directory wins",
        base,
        {"d": L1},
        {"d": D, "d/x": F2},
        {"d": D, "d/x": F2, Copy("d", "X"): L1},
        conflicts=1,
    )
    yield Case(
        "{X} creates a directory where {Y} creates a file: the directory wins whatever the times",
        {},
        {"p": D, "p/x": F1},
        {"p": F3},
        {"p": D, "p/x": F1, Copy("p", "Y"): F3},
        conflicts=1,
    )
    yield Case(
        "both create a directory with different files: the union",
        {},
        {"p": D, "p/x": F1},
        {"p": D, "p/y": F2},
        {"p": D, "p/x": F1, "p/y": F2},
    )


def _renames() -> Iterator[Case]:
    yield Case(
        "{X} renames a file: {Y} renames it too",
        {"x": F1},
        {"y": Moved("x")},
        {"x": F1},
        {"y": F1},
        renames=1,
        writes=1,
    )
    yield Case(
        "{X} renames a tree: {Y} renames it as one",
        TREE,
        {key.replace("d", "m", 1): Moved(key) for key in TREE},
        TREE,
        {key.replace("d", "m", 1): entry for key, entry in TREE.items()},
        renames=1,
        writes=1,
    )
    yield Case(
        "{X} renames a file into a directory: {Y} renames it too",
        {"x": F1, "d": D},
        {"d": D, "d/x": Moved("x")},
        {"x": F1, "d": D},
        {"d": D, "d/x": F1},
        renames=1,
        writes=1,
    )
    yield Case(
        "{X} renames a file over another: {Y} renames it over too",
        {"x": F1, "y": F2},
        {"y": Moved("x")},
        {"x": F1, "y": F2},
        {"y": F1},
        renames=1,
        writes=1,
    )
    yield Case(
        "{X} renames a file {Y} edited: both names stay, each with its version",
        {"x": F1},
        {"y": Moved("x")},
        {"x": F2},
        {"x": F2, "y": F1},
        renames=0,
    )
    yield Case(
        "{X} renames a file and edits it: a deletion and a creation",
        {"x": F1},
        {"y": F2},
        {"x": F1},
        {"y": F2},
        renames=0,
    )
    yield Case(
        "{X} renames a file into a new directory: copied there, deleted here",
        {"x": F1},
        {"n": D, "n/x": Moved("x")},
        {"x": F1},
        {"n": D, "n/x": F1},
        renames=0,
    )
    yield Case(
        "{X} renames a directory {Y} created a file in: the file moves along",
        {"d": D, "d/x": F1},
        {"e": Moved("d"), "e/x": Moved("d/x")},
        {"d": D, "d/x": F1, "d/n": F2},
        {"e": D, "e/x": F1, "e/n": F2},
        renames=1,
    )
    yield Case(
        "{X} renames a directory {Y} edited a file in: the edit moves along",
        {"d": D, "d/x": F1},
        {"e": Moved("d"), "e/x": Moved("d/x")},
        {"d": D, "d/x": F2},
        {"e": D, "e/x": F2},
        renames=1,
    )
    yield Case(
        "{X} renames a file where {Y} created one: both kept, the target a conflict",
        {"x": F1},
        {"y": Moved("x")},
        {"x": F1, "y": F3},
        {"y": F3, Copy("y", "X"): F1},
        conflicts=1,
    )
    yield Case(
        "both rename a file to the same name: nothing to write",
        {"x": F1},
        {"y": Moved("x")},
        {"y": Moved("x")},
        {"y": F1},
        writes=0,
    )
    yield Case(
        "both rename a file to different names: both names stay",
        {"x": F1},
        {"y": Moved("x")},
        {"z": Moved("x")},
        {"y": F1, "z": F1},
    )
    yield Case(
        "both rename different files: each side replays the other's",
        {"x": F1, "y": F2},
        {"x2": Moved("x"), "y": F2},
        {"x": F1, "y2": Moved("y")},
        {"x2": F1, "y2": F2},
        renames=2,
        writes=2,
    )
    yield Case(
        "{X} swaps two files: both are copied",
        {"x": F1, "y": F2},
        {"x": Moved("y"), "y": Moved("x")},
        {"x": F1, "y": F2},
        {"x": F2, "y": F1},
    )


def _attributes() -> Iterator[Case]:
    yield Case(
        "{X} chmods a file: {Y} only sets the mode",
        {"x": F1},
        {"x": F1_EXEC},
        {"x": F1},
        {"x": F1_EXEC},
        writes=1,
        extra={"kind": ActionKind.SET_ATTRIBUTES},
    )
    yield Case(
        "{X} chmods a directory: {Y} only sets the mode",
        {"d": D, "d/x": F1},
        {"d": D_PRIVATE, "d/x": F1},
        {"d": D, "d/x": F1},
        {"d": D_PRIVATE, "d/x": F1},
        writes=1,
        extra={"kind": ActionKind.SET_ATTRIBUTES},
    )
    yield Case(
        "{X} touches a file (mtime only): {Y} copies it",
        {"x": F1},
        {"x": F1_TOUCHED},
        {"x": F1},
        {"x": F1_TOUCHED},
        writes=1,
        extra={"kind": ActionKind.COPY},
    )
    yield Case(
        "both chmod a directory differently: the winner's mode, no copy",
        {"d": D},
        {"d": D_PRIVATE},
        {"d": replace(D, mode=0o750)},
        {"d": replace(D, mode=0o750)},
        conflicts=1,
    )


def _conflicts() -> Iterator[Case]:
    families = {
        "both rewrite a file": ({"x.txt": F1}, F3, F2),
        "both create a file": ({}, F3, F2),
        "both create a symlink": ({}, L2, L1),
        "one writes a file where the other makes a symlink": ({}, F3, L2),
        "both chmod a file differently": ({"x.txt": F1}, F1_EXEC, F1_GROUP),
    }
    for name, (before, newer, older) in families.items():
        for policy, label in POLICIES.items():
            x_wins = policy is not ConflictPolicy.DESTINATION
            winner, loser = (newer, older) if x_wins else (older, newer)
            yield Case(
                f"{name}, {{X}}'s the newer, CONFLICT={label}: winner on both, loser as a copy",
                before,
                {"x.txt": newer},
                {"x.txt": older},
                {"x.txt": winner, Copy("x.txt", "Y" if x_wins else "X"): loser},
                policy=Policy(conflict=policy),
                conflicts=1,
            )
    tie = replace(F2, mtime_ns=F3.mtime_ns)
    yield Case(
        "both write at the same mtime, {X}'s larger: the larger file wins",
        {},
        {"x": F3},
        {"x": tie},
        {"x": F3, Copy("x", "Y"): tie},
        conflicts=1,
    )
    hashed, rehashed = replace(F2, digest=b"2"), replace(F2, mtime_ns=9_000, digest=b"2")
    yield Case(
        "both write the same bytes at different times ({X}'s later): its times, no copy",
        {"x": F1},
        {"x": rehashed},
        {"x": hashed},
        {"x": rehashed},
        writes=1,
        extra={"kind": ActionKind.SET_ATTRIBUTES},
    )
    yield Case(
        "both create the same bytes at different times ({X}'s later): its times, no copy",
        {},
        {"x": rehashed},
        {"x": hashed},
        {"x": rehashed},
        writes=1,
        extra={"kind": ActionKind.SET_ATTRIBUTES},
    )
    yield Case(
        "both write different bytes of one size and mtime: the digests tell, a conflict",
        {"x": F1},
        {"x": replace(F2, digest=b"a")},
        {"x": replace(F2, digest=b"b")},
        {"x": replace(F2, digest=b"b"), Copy("x", "X"): replace(F2, digest=b"a")},
        conflicts=1,
    )
    stale = conflict_copy_name("x.txt", datetime(2026, 1, 1), Side.B)
    yield Case(
        "both edit a conflict copy: the newer replaces it, no copy of a copy",
        {stale: F1},
        {stale: F3},
        {stale: F2},
        {stale: F3},
        conflicts=1,
    )
    yield Case(
        "a conflict copy is created on one side: it is copied like any file",
        {},
        {stale: F2},
        {},
        {stale: F2},
        conflicts=0,
    )


def _halts() -> Iterator[Case]:
    yield Case(
        "{X}'s root emptied while two entries were in sync: halt, nothing deleted",
        {"x": F1, "y": F2},
        {},
        {"x": F1, "y": F2},
        {},
        halt=True,
        root_empty=True,
    )
    yield Case(
        "{X}'s root emptied while 1,000 entries were in sync (the batch saw two): halt",
        {"x": F1, "y": F2},
        {},
        {"x": F1, "y": F2},
        {},
        halt=True,
        root_empty=True,
        ancestor_count=1_000,
    )
    yield Case(
        "{X}'s root emptied of its only entry: a deletion, no halt",
        {"x": F1},
        {},
        {"x": F1},
        {},
        root_empty=True,
    )


def _safe(name: str, before: Spec, a: Spec, b: Spec, expect_b: Expected, **kw: object) -> Case:
    """A one-way-safe case: the source never changes, `expect_b` is the destination's tree."""
    kept = {key: before[v.origin] if isinstance(v, Moved) else v for key, v in a.items()}
    return Case(name, dict(before), a, b, kept, expect_b, policy=SAFE, **kw)  # type: ignore[arg-type]


def _one_way_safe() -> Iterator[Case]:
    yield _safe(
        "one-way-safe, the source creates: the destination gets it", {}, {"x": F1}, {}, {"x": F1}
    )
    yield _safe(
        "one-way-safe, the source edits: the destination takes it",
        {"x": F1},
        {"x": F2},
        {"x": F1},
        {"x": F2},
    )
    yield _safe(
        "one-way-safe, the source deletes: the destination deletes", {"x": F1}, {}, {"x": F1}, {}
    )
    yield _safe(
        "one-way-safe, the destination creates: kept there only",
        {},
        {},
        {"n": F1},
        {"n": F1},
        writes=0,
    )
    yield _safe(
        "one-way-safe, the destination edits: kept",
        {"x": F1},
        {"x": F1},
        {"x": F2},
        {"x": F2},
        writes=0,
    )
    yield _safe(
        "one-way-safe, the destination deletes: restored", {"x": F1}, {"x": F1}, {}, {"x": F1}
    )
    yield _safe(
        "one-way-safe, the source deletes what the destination edited: kept",
        {"x": F1},
        {},
        {"x": F2},
        {"x": F2},
        writes=0,
    )
    yield _safe(
        "one-way-safe, both edit: the source's version, the destination's kept as a copy on it",
        {"x": F1},
        {"x": F3},
        {"x": F2},
        {"x": F3, conflict_copy_name("x", WHEN, Side.B): F2},
        conflicts=1,
    )
    yield _safe(
        "one-way-safe, both create, the destination's newer: still the source's at the path",
        {},
        {"x": F2},
        {"x": F3},
        {"x": F2, conflict_copy_name("x", WHEN, Side.B): F3},
        conflicts=1,
    )
    yield _safe(
        "one-way-safe, the source deletes a directory the destination created in: new file kept",
        {"d": D, "d/x": F1},
        {},
        {"d": D, "d/x": F1, "d/n": F2},
        {"d": D, "d/n": F2},
    )
    yield _safe(
        "one-way-safe, the source renames: the destination renames",
        {"x": F1},
        {"y": Moved("x")},
        {"x": F1},
        {"y": F1},
        renames=1,
    )
    yield _safe(
        "one-way-safe, the destination renames: the old name restored, the new one kept",
        {"x": F1},
        {"x": F1},
        {"y": Moved("x")},
        {"x": F1, "y": F1},
    )
    yield _safe(
        "one-way-safe, the source makes a file where the destination made a directory: both kept",
        {},
        {"p": F1},
        {"p": D, "p/n": F2},
        {"p": D, "p/n": F2, conflict_copy_name("p", WHEN, Side.A): F1},
        conflicts=1,
    )


def _one_way() -> Iterator[Case]:
    yield Case(
        "one-way, the destination edits: overwritten",
        {"x": F1},
        {"x": F1},
        {"x": F2},
        {"x": F1},
        policy=MIRROR,
    )
    yield Case("one-way, the destination creates: deleted", {}, {}, {"n": F1}, {}, policy=MIRROR)
    yield Case(
        "one-way, both edit: the source's, no copy",
        {"x": F1},
        {"x": F2},
        {"x": F3},
        {"x": F2},
        policy=MIRROR,
    )


def all_cases() -> list[Case]:
    found = []
    for case in cases():
        found.append(case)
        if case.policy.mode is Mode.TWO_WAY and "{X}" in case.id:
            found.append(mirror(case))
    return found


CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[case_id(case) for case in CASES])
def test_reconcile_case(case: Case) -> None:
    world, plan = run(case)
    if case.halt:
        assert plan.halt and not plan.actions
        return
    assert plan.halt is None
    expect_a = resolve(case, case.expect)
    expect_b = resolve(case, case.expect_b) if case.expect_b is not None else expect_a
    assert equal_trees(world.a, expect_a), contents(world.a)
    assert equal_trees(world.b, expect_b), contents(world.b)
    assert len(plan.conflicts) == case.conflicts, plan.conflicts
    renames = [action for action in plan.actions if action.kind is ActionKind.RENAME]
    assert len([r for r in renames if not is_conflict_copy(r.path)]) == case.renames, renames
    if case.writes is not None:
        assert len(plan.writes()) == case.writes, plan.writes()
    if "kind" in case.extra:
        assert [action.kind for action in plan.writes()] == [case.extra["kind"]]
    if case.policy.mode is not Mode.ONE_WAY_SAFE:
        assert equal_trees({k: a.entry for k, a in world.ancestor.items()}, expect_a)
    again = reconcile(Scope(dict(world.ancestor), world.a, world.b), case.policy, WHEN)
    assert not again.writes() and not again.conflicts, again


def test_the_table_is_about_150_cases() -> None:
    assert len(CASES) >= 140, len(CASES)


def test_one_way_safe_never_writes_the_source() -> None:
    for case in CASES:
        if case.policy.mode is Mode.ONE_WAY_SAFE:
            _, plan = run(case)
            assert all(action.side is Side.B for action in plan.writes()), case.id


def test_union_merge_deletes_nothing_and_keeps_both_versions() -> None:
    a = {
        "x": F1.with_inode(1),
        "both": F2.with_inode(2),
        "d": D.with_inode(3),
        "d/a": F1.with_inode(4),
    }
    b = {
        "y": F1.with_inode(11),
        "both": F3.with_inode(12),
        "d": D.with_inode(13),
        "d/b": F2.with_inode(14),
    }
    plan = union_merge(a, b, TWO_WAY, WHEN)
    assert not [action for action in plan.actions if action.kind is ActionKind.DELETE]
    world = World(dict(a), dict(b))
    world.apply(plan)
    copy = conflict_copy_name("both", WHEN, Side.A)
    expected = {"x": F1, "y": F1, "both": F3, copy: F2, "d": D, "d/a": F1, "d/b": F2}
    assert equal_trees(world.a, expected) and equal_trees(world.b, expected)


# Properties: random trees and random edits on both sides, reconciled, applied, compared.

NAMES = ("a", "b", "c.txt")
PATHS = [*NAMES, *(f"{d}/{n}" for d in NAMES for n in NAMES), "a/a/a", "a/a/b"]
B_INODES = 500_000  # the destination's inodes: never equal to the source's

operations = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(("write", "mkdir", "symlink", "delete", "chmod", "touch")),
            st.sampled_from(PATHS),
            st.just(""),
        ),
        st.tuples(st.just("rename"), st.sampled_from(PATHS), st.sampled_from(PATHS)),
    ),
    max_size=12,
)


@dataclass
class Editor:
    """Applies operations to a tree as a person would (each write a new version)."""

    versions: itertools.count[int]
    inodes: itertools.count[int]

    def edit(self, tree: dict[str, Entry], operation: tuple[str, str, str]) -> None:
        verb, path, target = operation
        here = tree.get(path)
        parent = parent_of(path)
        parent_ok = not parent or (parent in tree and tree[parent].kind is Kind.DIR)
        version = next(self.versions)
        if verb == "write" and parent_ok and (here is None or here.kind is Kind.FILE):
            inode = here.inode if here is not None else next(self.inodes)
            tree[path] = Entry(Kind.FILE, version, version * 1_000, inode=inode)
        elif verb in ("mkdir", "symlink") and parent_ok and here is None:
            new = D if verb == "mkdir" else replace(L1, size=version, target=f"t{version}")
            tree[path] = new.with_inode(next(self.inodes))
        elif verb == "delete":
            for key in [key for key in tree if is_within(key, path)]:
                del tree[key]
        elif verb == "chmod" and here is not None and here.kind is not Kind.SYMLINK:
            tree[path] = replace(here, mode=here.mode ^ 0o055)
        elif verb == "touch" and here is not None and here.kind is Kind.FILE:
            tree[path] = replace(here, mtime_ns=version * 1_000)
        elif verb == "rename" and here is not None:
            self._rename(tree, path, target)

    @staticmethod
    def _rename(tree: dict[str, Entry], path: str, target: str) -> None:
        parent = parent_of(target)
        there = tree.get(target)
        if is_within(target, path) or is_within(path, target):
            return
        if parent and (parent not in tree or tree[parent].kind is not Kind.DIR):
            return
        if there is not None and (there.kind is Kind.DIR or tree[path].kind is Kind.DIR):
            return
        tree.pop(target, None)
        for key in [key for key in tree if is_within(key, path)]:
            tree[rebase(key, path, target)] = tree.pop(key)


def random_world(
    base: list[tuple[str, str, str]],
    on_a: list[tuple[str, str, str]],
    on_b: list[tuple[str, str, str]],
) -> World:
    editor = Editor(itertools.count(1), itertools.count(1))
    tree: dict[str, Entry] = {}
    # A populated start, so that edits inside directories deleted on the other side are common.
    start = [("mkdir", "a", ""), ("mkdir", "a/a", ""), ("write", "a/a/a", ""), ("write", "a/b", "")]
    start += [("mkdir", "b", ""), ("write", "b/c.txt", ""), ("write", "c.txt", "")]
    for operation in start + base:
        editor.edit(tree, operation)
    ancestor = {p: Ancestor(e.with_inode(0), e.inode, e.inode + B_INODES) for p, e in tree.items()}
    a = dict(tree)
    b = {path: entry.with_inode(entry.inode + B_INODES) for path, entry in tree.items()}
    for operation in on_a:
        editor.edit(a, operation)
    editor.inodes = itertools.count(B_INODES * 2)
    for operation in on_b:
        editor.edit(b, operation)
    return World(a, b, ancestor)


def last_writes(world: World) -> list[Entry]:
    """Every version a side holds that the ancestor holds nowhere (a moved version is not new)."""
    known = [known.entry for known in world.ancestor.values()]
    return [
        entry
        for tree in (world.a, world.b)
        for entry in tree.values()
        if entry.kind is not Kind.DIR and not any(entry.same(old) for old in known)
    ]


def swapped_names(tree: Mapping[str, Entry]) -> dict[str, Entry]:
    """The tree with the side in conflict copies' names swapped."""
    swap = {"-source": "-destination", "-destination": "-source"}
    return {
        re.sub(r"-(source|destination)(?=\.|$|-)", lambda m: swap[m.group(0)], path): entry
        for path, entry in tree.items()
    }


def reconcile_all(world: World, policy: Policy) -> Plan:
    return reconcile(Scope(dict(world.ancestor), dict(world.a), dict(world.b)), policy, WHEN)


@settings(max_examples=300, deadline=None)
@given(operations, operations, operations, st.sampled_from(list(ConflictPolicy)))
def test_two_way_loses_nothing_converges_and_does_not_echo(
    base: list[tuple[str, str, str]],
    on_a: list[tuple[str, str, str]],
    on_b: list[tuple[str, str, str]],
    conflict: ConflictPolicy,
) -> None:
    world = random_world(base, on_a, on_b)
    versions = last_writes(world)
    policy = Policy(conflict=conflict)
    world.apply(reconcile_all(world, policy))
    assert equal_trees(world.a, world.b), (contents(world.a), contents(world.b))
    for version in versions:
        assert any(version.same(entry) for entry in world.a.values()), f"lost {version}"
    assert equal_trees({path: known.entry for path, known in world.ancestor.items()}, world.a)
    again = reconcile_all(world, policy)
    assert not again.writes() and not again.conflicts, again


@settings(max_examples=200, deadline=None)
@given(operations, operations, operations, st.sampled_from(list(ConflictPolicy)))
def test_two_way_is_symmetric(
    base: list[tuple[str, str, str]],
    on_a: list[tuple[str, str, str]],
    on_b: list[tuple[str, str, str]],
    conflict: ConflictPolicy,
) -> None:
    world = random_world(base, on_a, on_b)
    swapped = World(
        dict(world.b),
        dict(world.a),
        {
            path: Ancestor(known.entry, known.inode_b, known.inode_a)
            for path, known in world.ancestor.items()
        },
    )
    mirrored = {
        ConflictPolicy.SOURCE: ConflictPolicy.DESTINATION,
        ConflictPolicy.DESTINATION: ConflictPolicy.SOURCE,
    }
    world.apply(reconcile_all(world, Policy(conflict=conflict)))
    swapped.apply(reconcile_all(swapped, Policy(conflict=mirrored.get(conflict, conflict))))
    assert equal_trees(world.a, swapped_names(swapped.b)), (contents(world.a), contents(swapped.b))


@settings(max_examples=200, deadline=None)
@given(operations, operations, operations)
def test_one_way_safe_keeps_the_destinations_work_and_leaves_the_source_alone(
    base: list[tuple[str, str, str]],
    on_a: list[tuple[str, str, str]],
    on_b: list[tuple[str, str, str]],
) -> None:
    world = random_world(base, on_a, on_b)
    source = dict(world.a)
    own = [entry for entry in last_writes(World(world.b, world.b, world.ancestor))]
    world.apply(reconcile_all(world, SAFE))
    assert world.a == source
    for version in own:
        assert any(version.same(entry) for entry in world.b.values()), f"lost {version}"
    for path in source:
        assert path in world.b, f"{path} missing on the destination"
    again = reconcile_all(world, SAFE)
    assert not again.writes() and not again.conflicts, again


@settings(max_examples=200, deadline=None)
@given(operations, operations, st.sampled_from(list(ConflictPolicy)), st.sampled_from(list(Mode)))
def test_the_union_merge_deletes_nothing_and_converges(
    on_a: list[tuple[str, str, str]],
    on_b: list[tuple[str, str, str]],
    conflict: ConflictPolicy,
    mode: Mode,
) -> None:
    world = random_world([], on_a, on_b)
    world.ancestor = {}  # first start: no state
    versions = last_writes(world)
    policy = Policy(mode, conflict)
    plan = union_merge(world.a, world.b, policy, WHEN)
    assert not [action for action in plan.actions if action.kind is ActionKind.DELETE]
    world.apply(plan)
    if mode is Mode.TWO_WAY:
        assert equal_trees(world.a, world.b)
    for version in versions:
        assert any(version.same(entry) for entry in [*world.a.values(), *world.b.values()])
    merged = SAFE if mode is Mode.ONE_WAY else policy  # how one-way is merged
    again = reconcile_all(world, merged)
    assert not again.writes() and not again.conflicts, again


@settings(max_examples=100, deadline=None)
@given(operations, operations, operations)
def test_one_way_makes_the_destination_a_mirror(
    base: list[tuple[str, str, str]],
    on_a: list[tuple[str, str, str]],
    on_b: list[tuple[str, str, str]],
) -> None:
    world = random_world(base, on_a, on_b)
    source = dict(world.a)
    world.apply(reconcile_all(world, MIRROR))
    assert world.a == source and equal_trees(world.b, source)
    again = reconcile_all(world, MIRROR)
    assert not again.writes() and not again.conflicts, again


@settings(max_examples=200, deadline=None)
@given(operations, operations, operations, operations, operations)
def test_a_change_made_while_a_plan_is_applied_is_never_overwritten(
    base: list[tuple[str, str, str]],
    on_a: list[tuple[str, str, str]],
    on_b: list[tuple[str, str, str]],
    meanwhile_a: list[tuple[str, str, str]],
    meanwhile_b: list[tuple[str, str, str]],
) -> None:
    world = random_world(base, on_a, on_b)
    plan = reconcile_all(world, TWO_WAY)
    # A version both sides held when the plan was made (the same change made on both) is
    # agreed: a side that then writes over it supersedes it, as any later edit would.
    agreed = [e for e in world.a.values() if any(e.same(other) for other in world.b.values())]
    editor = Editor(itertools.count(1_000), itertools.count(10**7))
    for operation in meanwhile_a:
        editor.edit(world.a, operation)
    for operation in meanwhile_b:
        editor.edit(world.b, operation)
    versions = [  # the sides as they are when the plan is applied
        version for version in last_writes(world) if not any(version.same(a) for a in agreed)
    ]
    world.apply(plan, skip_mismatches=True)  # the paths that changed go back to reconcile
    world.apply(reconcile_all(world, TWO_WAY))
    assert equal_trees(world.a, world.b), (contents(world.a), contents(world.b))
    for version in versions:
        assert any(version.same(entry) for entry in world.a.values()), f"lost {version}"
    again = reconcile_all(world, TWO_WAY)
    assert not again.writes() and not again.conflicts, again
