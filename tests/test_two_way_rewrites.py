"""Same-size rewrites within one timestamp tick, found by content on real files.

Size and mtime cannot tell such a rewrite from the version before it; the files a watcher
reported written are read whole (`side_tree.unseen_rewrites`), and reconcile then sees what
changed. Found by the two-sided churn: both sides rewritten at the same size within one tick
were taken as in sync, and stayed different.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from helpers import write_file
from pylsyncd.entries import Ancestor, Entry, Side
from pylsyncd.pair.side_tree import entry_of, unseen_rewrites
from pylsyncd.plan import ActionKind
from pylsyncd.reconcile import Policy, Scope, reconcile
from pylsyncd.transfer import Ownership
from pylsyncd.transfer.destination import DestinationTree

NOW = 1_800_000_000_000_000_000  # the files' mtime: written "now", within the suspect window
OLDER = NOW - 10_000_000_000  # when both sides last agreed, in the other tests


@pytest.fixture
def trees(tmp_path: Path) -> Iterator[dict[Side, DestinationTree]]:
    made = {}
    for side in Side:
        root = tmp_path / side.value
        root.mkdir()
        made[side] = DestinationTree(str(root), lambda _: None, Ownership(), 0)
    yield made
    for tree in made.values():
        tree.close()


def _write(tree: DestinationTree, content: str, mtime_ns: int = NOW) -> Entry:
    path = write_file(Path(tree.root) / "f", content, mtime_ns=mtime_ns)
    entry = entry_of(os.lstat(path))
    assert entry is not None
    return entry


def _ancestor(a: Entry, b: Entry, mtime_ns: int) -> dict[str, Ancestor]:
    agreed = Entry(a.kind, a.size, mtime_ns, a.mode)
    return {"f": Ancestor(agreed, a.inode, b.inode)}


def _plan_after(
    trees: dict[Side, DestinationTree],
    contents: tuple[str, str],
    agreed_ns: int,
    written: tuple[Side, ...],
) -> tuple[dict[Side, dict[str, Entry]], Scope]:
    a, b = _write(trees[Side.A], contents[0]), _write(trees[Side.B], contents[1])
    sides = {Side.A: {"f": a}, Side.B: {"f": b}}
    ancestor = _ancestor(a, b, agreed_ns)
    reported = {side: {"f"} if side in written else set() for side in Side}
    unseen_rewrites(reported, sides, ancestor, trees, NOW)
    return sides, Scope(ancestor, sides[Side.A], sides[Side.B], ancestor_count=1)


@pytest.mark.parametrize("agreed_ns", [OLDER, NOW], ids=["after-the-sync", "same-tick-as-it"])
def test_both_sides_rewritten_alike_in_size_and_mtime_are_a_conflict(
    trees: dict[Side, DestinationTree], agreed_ns: int
) -> None:
    """Both watchers reported a write; same size, same mtime, different bytes: both versions
    are kept. When the ancestor looks alike too, nothing says which side still holds it, and
    the conflict keeps both rather than let either replace the other unseen."""
    sides, scope = _plan_after(trees, ("from a!", "from b!"), agreed_ns, (Side.A, Side.B))
    assert sides[Side.A]["f"].digest != sides[Side.B]["f"].digest
    plan = reconcile(scope, Policy(), datetime(2027, 1, 15, 8, 0, 0))
    (conflict,) = plan.conflicts
    assert conflict.path == "f" and conflict.copy is not None
    copies = [a for a in plan.actions if a.path == conflict.copy]
    assert {a.side for a in copies} == {Side.A, Side.B}  # the loser kept on both sides


def test_both_sides_written_with_the_same_bytes_are_in_sync(
    trees: dict[Side, DestinationTree],
) -> None:
    sides, scope = _plan_after(trees, ("same!", "same!"), OLDER, (Side.A, Side.B))
    assert sides[Side.A]["f"].digest is None  # equal: nothing to tell apart
    plan = reconcile(scope, Policy(), datetime(2027, 1, 15, 8, 0, 0))
    assert not plan.conflicts
    assert plan.writes() == ()


def test_one_side_rewritten_within_the_tick_of_the_sync_is_copied(
    trees: dict[Side, DestinationTree],
) -> None:
    """Only A's watcher reported a write; B holds the ancestor's version: A's goes to B."""
    _, scope = _plan_after(trees, ("new in a", "the old!"), NOW, (Side.A,))
    plan = reconcile(scope, Policy(), datetime(2027, 1, 15, 8, 0, 0))
    assert not plan.conflicts
    ((side, kind),) = [(action.side, action.kind) for action in plan.writes()]
    assert (side, kind) == (Side.B, ActionKind.COPY)


def test_a_file_renamed_over_one_that_looked_alike_is_a_change_of_its_side(
    trees: dict[Side, DestinationTree],
) -> None:
    """A renames another file over `f`, old and of the same size, mtime and mode: only its inode
    tells. Its content reaches B; before, B's version silently won back."""
    a, b = _write(trees[Side.A], "the old!", OLDER), _write(trees[Side.B], "the old!", OLDER)
    ancestor = _ancestor(a, b, OLDER)
    renamed = write_file(Path(trees[Side.A].root) / "g", "other ok", mtime_ns=OLDER)
    os.chmod(renamed, a.mode)
    os.replace(renamed, Path(trees[Side.A].root) / "f")
    replaced = entry_of(os.lstat(Path(trees[Side.A].root) / "f"))
    assert replaced is not None and replaced.same(a) and replaced.inode != a.inode
    sides = {Side.A: {"f": replaced}, Side.B: {"f": b}}
    unseen_rewrites({Side.A: set(), Side.B: set()}, sides, ancestor, trees, NOW)
    scope = Scope(ancestor, sides[Side.A], sides[Side.B], ancestor_count=1)
    plan = reconcile(scope, Policy(), datetime(2027, 1, 15, 8, 0, 0))
    assert not plan.conflicts
    ((side, kind),) = [(action.side, action.kind) for action in plan.writes()]
    assert (side, kind) == (Side.B, ActionKind.COPY)


@pytest.mark.parametrize("written", [(Side.A,), (Side.B,), ()], ids=["a", "b", "carried"])
@pytest.mark.parametrize("agreed", [True, False], ids=["ancestor-older", "both-new"])
def test_both_changed_alike_with_one_report_or_none_are_a_conflict(
    trees: dict[Side, DestinationTree], written: tuple[Side, ...], agreed: bool
) -> None:
    """Both sides rewritten at the same size within one tick, long after they last agreed, or
    both new: whichever watcher's report comes in this batch (a path handed back by a raced
    copy comes with none), the two different versions are a conflict that keeps both. Found by
    the two-sided churn (seed 49 of 100): they were taken as the same change, and stayed
    different."""
    a, b = _write(trees[Side.A], "from a!"), _write(trees[Side.B], "from b!")
    assert a.same(b)  # only the bytes tell them apart
    sides = {Side.A: {"f": a}, Side.B: {"f": b}}
    ancestor = _ancestor(a, b, OLDER) if agreed else {}
    reported = {side: {"f"} if side in written else set() for side in Side}
    unseen_rewrites(reported, sides, ancestor, trees, NOW)
    scope = Scope(ancestor, sides[Side.A], sides[Side.B], ancestor_count=len(ancestor))
    plan = reconcile(scope, Policy(), datetime(2027, 1, 15, 8, 0, 0))
    (conflict,) = plan.conflicts
    assert conflict.path == "f" and conflict.copy is not None
    copies = [action for action in plan.actions if action.path == conflict.copy]
    assert {action.side for action in copies} == {Side.A, Side.B}


def test_both_changed_alike_with_the_same_bytes_are_in_sync(
    trees: dict[Side, DestinationTree],
) -> None:
    a, b = _write(trees[Side.A], "same!"), _write(trees[Side.B], "same!")
    sides = {Side.A: {"f": a}, Side.B: {"f": b}}
    ancestor = _ancestor(a, b, OLDER)
    unseen_rewrites({Side.A: {"f"}, Side.B: set()}, sides, ancestor, trees, NOW)
    assert sides[Side.A]["f"].digest is None  # read, found equal: nothing to tell apart
    scope = Scope(ancestor, sides[Side.A], sides[Side.B], ancestor_count=1)
    plan = reconcile(scope, Policy(), datetime(2027, 1, 15, 8, 0, 0))
    assert not plan.conflicts and plan.writes() == ()
