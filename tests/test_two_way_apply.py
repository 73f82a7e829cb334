"""The two-way applier on real directories: a skipped action hands back every path it needed.

Found by the two-sided churn: a file renamed on one side (f5 -> f3) while the other side changed
the new name (f3): the replayed rename is skipped by its compare-and-swap; only f3 went back to
reconcile, so f5, which the plan saw moved and gave no action of its own, stayed on the other
side for good, while the daemon said both sides were in sync.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from helpers import write_file
from pylsyncd.entries import Ancestor, Side
from pylsyncd.pair import side_writes
from pylsyncd.pair.plan_apply import PlanApplier
from pylsyncd.pair.side_tree import read_subtree
from pylsyncd.plan import ActionKind, Record
from pylsyncd.reconcile import Policy, Scope, reconcile
from pylsyncd.transfer import Ownership, rename_flags
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


def _agreed(
    roots: dict[Side, Path], trees: dict[Side, DestinationTree], files: dict[str, str] | None = None
) -> dict[str, Ancestor]:
    """Both sides hold `files` (name: content; else f), as last agreed: the ancestor."""
    for root in roots.values():
        for offset, (name, content) in enumerate((files or {"f": "agreed"}).items()):
            write_file(root / name, content, mtime_ns=MTIME + offset)
    agreed = _read(trees, {""}, {})
    return {
        path: Ancestor(entry.with_inode(0), entry.inode, agreed.b[path].inode)
        for path, entry in agreed.a.items()
    }


def _renamed_over_on_b(
    roots: dict[Side, Path], trees: dict[Side, DestinationTree]
) -> tuple[dict[str, Ancestor], Scope]:
    """Both sides agree on f3 and f5, then B renames f5 over f3: the ancestor, the scope."""
    ancestor = _agreed(roots, trees, {"f3": "three", "f5": "five, renamed"})
    os.replace(roots[Side.B] / "f5", roots[Side.B] / "f3")
    return ancestor, _read(trees, {"f3", "f5"}, ancestor)


def test_a_replayed_rename_skipped_hands_back_its_old_name_too(
    roots: dict[Side, Path], trees: dict[Side, DestinationTree]
) -> None:
    ancestor, scope = _renamed_over_on_b(roots, trees)
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


# A write on a side in the microseconds between the applier's check of a path and its write:
# the two-sided churn lost a version there once in CI. The hook runs the racing write exactly
# in that window (inside the exchange, or right before the removal's rename away).


def _race_in(monkeypatch: pytest.MonkeyPatch, name: str, racing_write: Callable[[], None]) -> None:
    """Run `racing_write` once, right before the first call of `side_writes.<name>`."""
    real = getattr(side_writes, name)
    pending = [racing_write]

    def raced(*args: object) -> object:
        while pending:
            pending.pop()()
        return real(*args)

    monkeypatch.setattr(side_writes, name, raced)


def _rewrite_in_place(path: Path, content: str) -> None:
    """A same-inode write, as `echo > f` makes it: the inode a rename-based check trusts stays."""
    with open(path, "r+") as file:
        file.write(content)
    os.utime(path, ns=(MTIME + 7, MTIME + 7))


def _converged(
    roots: dict[Side, Path], trees: dict[Side, DestinationTree], ancestor: dict[str, Ancestor]
) -> set[str]:
    """Reconcile what is there until nothing comes back; both sides' versions, then."""
    for _ in range(3):
        paths = {""} | ancestor.keys() | {p.name for root in roots.values() for p in root.iterdir()}
        if not _apply(trees, _read(trees, paths, ancestor), ancestor):
            break
    assert _files(roots[Side.A]) == _files(roots[Side.B])
    return set(_files(roots[Side.A]).values())


def _rename_new_over_f(root: Path) -> None:
    """Another file renamed over f: a new inode at the name, as a save by rename makes it."""
    write_file(root / "new", "B's!!!", mtime_ns=MTIME + 2)
    os.replace(root / "new", root / "f")


@pytest.mark.parametrize(
    "racing_write",
    [lambda root: _rewrite_in_place(root / "f", "B's!!!"), _rename_new_over_f],
    ids=["rewritten in place", "renamed over"],
)
def test_a_version_made_while_a_file_is_replaced_is_never_lost(
    roots: dict[Side, Path],
    trees: dict[Side, DestinationTree],
    monkeypatch: pytest.MonkeyPatch,
    racing_write: Callable[[Path], None],
) -> None:
    ancestor = _agreed(roots, trees)
    write_file(roots[Side.A] / "f", "edited on A", mtime_ns=MTIME + 1)
    scope = _read(trees, {"f"}, ancestor)
    _race_in(monkeypatch, "exchange", lambda: racing_write(roots[Side.B]))
    assert _apply(trees, scope, ancestor) == {"f"}
    assert _files(roots[Side.B]) == {"f": "B's!!!"}  # exchanged back: no temporary file left
    monkeypatch.undo()
    assert _converged(roots, trees, ancestor) == {"edited on A", "B's!!!"}  # a conflict copy


def _deleted_on_a_and_rewritten_on_b_as_removed(
    roots: dict[Side, Path], trees: dict[Side, DestinationTree], monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Ancestor], Scope]:
    """A deletes f; B rewrites it right before the applier renames it aside."""
    ancestor = _agreed(roots, trees)
    (roots[Side.A] / "f").unlink()
    scope = _read(trees, {"f"}, ancestor)
    _race_in(monkeypatch, "temp_name", lambda: _rewrite_in_place(roots[Side.B] / "f", "B's!!!"))
    return ancestor, scope


def test_a_write_made_while_a_file_is_removed_is_restored(
    roots: dict[Side, Path], trees: dict[Side, DestinationTree], monkeypatch: pytest.MonkeyPatch
) -> None:
    ancestor, scope = _deleted_on_a_and_rewritten_on_b_as_removed(roots, trees, monkeypatch)
    assert _apply(trees, scope, ancestor) == {"f"}
    assert _files(roots[Side.B]) == {"f": "B's!!!"}  # put back
    monkeypatch.undo()
    assert _converged(roots, trees, ancestor) == {"B's!!!"}  # an edit beats a delete


def test_a_removed_version_whose_name_was_taken_again_is_kept_as_a_conflict_copy(
    roots: dict[Side, Path], trees: dict[Side, DestinationTree], monkeypatch: pytest.MonkeyPatch
) -> None:
    ancestor, scope = _deleted_on_a_and_rewritten_on_b_as_removed(roots, trees, monkeypatch)
    _race_in(monkeypatch, "rename_noreplace", lambda: (roots[Side.B] / "f").write_text("newest"))
    assert _apply(trees, scope, ancestor) == {"f"}
    kept = _files(roots[Side.B])
    assert kept.pop("f") == "newest"
    assert [(name.startswith("f.sync-conflict-"), text) for name, text in kept.items()] == [
        (True, "B's!!!")
    ]


def test_a_write_made_while_a_rename_is_replayed_over_it_is_never_lost(
    roots: dict[Side, Path], trees: dict[Side, DestinationTree], monkeypatch: pytest.MonkeyPatch
) -> None:
    ancestor, scope = _renamed_over_on_b(roots, trees)
    _race_in(monkeypatch, "exchange", lambda: _rewrite_in_place(roots[Side.A] / "f3", "A's"))
    assert _apply(trees, scope, ancestor) == {"f3", "f5"}
    assert _files(roots[Side.A]) == {"f3": "A'see", "f5": "five, renamed"}  # "three", rewritten
    monkeypatch.undo()
    assert _converged(roots, trees, ancestor) == {"A'see", "five, renamed"}


def test_without_renameat2_a_file_is_still_replaced(
    roots: dict[Side, Path], trees: dict[Side, DestinationTree], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the filesystem cannot exchange (some FUSE ones), a plain rename after the check."""
    monkeypatch.setattr(rename_flags, "_renameat2", None)
    ancestor = _agreed(roots, trees)
    write_file(roots[Side.A] / "f", "edited on A", mtime_ns=MTIME + 1)
    (roots[Side.B] / "h").write_text("new on B")
    assert _converged(roots, trees, ancestor) == {"edited on A", "new on B"}
    assert sorted(_files(roots[Side.B])) == ["f", "h"]
    (roots[Side.B] / "h").unlink()
    assert _converged(roots, trees, ancestor) == {"edited on A"}
