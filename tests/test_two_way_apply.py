"""The two-way applier on real directories: a skipped action hands back every path it needed.

Found by the two-sided churn: a file renamed on one side (f5 -> f3) while the other side changed
the new name (f3): the replayed rename is skipped by its compare-and-swap; only f3 went back to
reconcile, so f5, which the plan saw moved and gave no action of its own, stayed on the other
side for good, while the daemon said both sides were in sync.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from helpers import write_file
from pylsyncd.entries import Ancestor, Side
from pylsyncd.pair.plan_apply import PlanApplier
from pylsyncd.pair.side_tree import read_subtree
from pylsyncd.plan import ActionKind, Record
from pylsyncd.reconcile import Policy, Scope, reconcile
from pylsyncd.transfer import Ownership
from pylsyncd.transfer.destination import DestinationTree

WHEN = datetime(2027, 1, 15, 8, 0, 0)
MTIME = 1_700_000_000_000_000_000


@pytest.fixture
def roots(tmp_path: Path) -> dict[Side, Path]:
    made = {side: tmp_path / side.value for side in Side}
    for root in made.values():
        root.mkdir()
    return made


@pytest.fixture
def trees(roots: dict[Side, Path]) -> Iterator[dict[Side, DestinationTree]]:
    made = {
        side: DestinationTree(str(root), lambda _: None, Ownership(), 0)
        for side, root in roots.items()
    }
    yield made
    for tree in made.values():
        tree.close()


def _read(
    trees: dict[Side, DestinationTree], paths: set[str], ancestor: dict[str, Ancestor]
) -> Scope:
    """Both sides and the ancestor for `paths`, as a live batch reads them."""
    sides = {side: {} for side in Side}
    for path in paths:
        for side, tree in trees.items():
            sides[side].update(read_subtree(tree, path, lambda _path, _is_dir: False))
    known = {path: ancestor[path] for path in paths if path in ancestor}
    return Scope(known, sides[Side.A], sides[Side.B], ancestor_count=len(ancestor))


def _apply(
    trees: dict[Side, DestinationTree], scope: Scope, ancestor: dict[str, Ancestor]
) -> set[str]:
    """Reconcile and apply; the ancestor follows the records; the paths handed back."""

    def remember(records: list[Record]) -> None:
        for record in records:
            if record.ancestor is None:
                ancestor.pop(record.path, None)
            else:
                ancestor[record.path] = record.ancestor

    plan = reconcile(scope, Policy(), WHEN)
    return PlanApplier(trees, remember).apply(plan).handed_back


def _files(root: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in root.iterdir()}


def test_a_replayed_rename_skipped_hands_back_its_old_name_too(
    roots: dict[Side, Path], trees: dict[Side, DestinationTree]
) -> None:
    for root in roots.values():  # both sides agree on f3 and f5
        write_file(root / "f3", "three", mtime_ns=MTIME)
        write_file(root / "f5", "five, renamed", mtime_ns=MTIME + 5)
    agreed = _read(trees, {""}, {})
    ancestor = {
        path: Ancestor(entry.with_inode(0), entry.inode, agreed.b[path].inode)
        for path, entry in agreed.a.items()
    }
    os.replace(roots[Side.B] / "f5", roots[Side.B] / "f3")  # B renames f5 over f3
    scope = _read(trees, {"f3", "f5"}, ancestor)
    plan = reconcile(scope, Policy(), WHEN)
    assert [(a.kind, a.side, a.origin, a.path) for a in plan.writes()] == [
        (ActionKind.RENAME, Side.A, "f5", "f3")
    ]
    # Meanwhile A changes f3, which the replayed rename would replace: it is skipped.
    write_file(roots[Side.A] / "f3", "three, edited on A", mtime_ns=MTIME + 1)
    handed_back = _apply(trees, scope, ancestor)
    assert handed_back == {"f3", "f5"}
    # The next reconcile of what came back (A's write of f3 names f3 again) converges.
    assert _apply(trees, _read(trees, handed_back | {"f3"}, ancestor), ancestor) == set()
    assert _files(roots[Side.A]) == _files(roots[Side.B])
    assert "f5" not in _files(roots[Side.A])  # B's rename took it away
    versions = set(_files(roots[Side.A]).values())
    assert versions == {"three, edited on A", "five, renamed"}  # f3 and its conflict copy
