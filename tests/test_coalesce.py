"""The coalescer, driven by the event sequences real tools produce."""

from __future__ import annotations

import pytest

from pylsyncd.coalesce import Batch, Change, ChangeKind, Move, coalesce, merge
from pylsyncd.events import Event, EventKind

C, M, A, D, MV = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.ATTRIB,
    EventKind.DELETED,
    EventKind.MOVED,
)
SYNC, TREE, DELETE = ChangeKind.SYNC, ChangeKind.SYNC_TREE, ChangeKind.DELETE


def ev(kind: EventKind, path: str, target: str | None = None, *, d: bool = False) -> Event:
    return Event(kind, path, is_dir=d, target=target)


def moved_in(path: str, *, d: bool = False) -> Event:
    return Event(C, path, is_dir=d, tree=True)


CASES: list[tuple[str, list[Event], list[Move], list[tuple[str, ChangeKind]]]] = [
    ("create + modify is one sync", [ev(C, "f"), ev(M, "f"), ev(M, "f")], [], [("f", SYNC)]),
    ("many modifies are one sync", [ev(M, "f")] * 50, [], [("f", SYNC)]),
    # Not nothing: the previous batch may have read the source after the create and copied it.
    ("create + delete is a delete", [ev(C, "f"), ev(M, "f"), ev(D, "f")], [], [("f", DELETE)]),
    ("delete + create is a replacement", [ev(D, "f"), ev(C, "f")], [], [("f", SYNC)]),
    ("modify + delete is a delete", [ev(M, "f"), ev(D, "f")], [], [("f", DELETE)]),
    ("chmod and touch are syncs", [ev(A, "f"), ev(A, "d", d=True)], [], [("d", SYNC), ("f", SYNC)]),
    ("moved out of the tree is a delete", [ev(D, "f")], [], [("f", DELETE)]),
    ("moved into the tree is a tree sync", [moved_in("d", d=True)], [], [("d", TREE)]),
    (
        # VS Code and most IDEs: truncate and write in place.
        "VS Code save",
        [ev(M, "src/app.py"), ev(M, "src/app.py"), ev(A, "src/app.py")],
        [],
        [("src/app.py", SYNC)],
    ),
    (
        # vim with writebackup: rename the original to a backup, write anew, drop the backup.
        "vim save",
        [ev(MV, "f", "f~"), ev(C, "f"), ev(M, "f"), ev(A, "f"), ev(D, "f~")],
        [],
        [("f", SYNC), ("f~", DELETE)],
    ),
    (
        # sed -i and rsync: write a temporary file beside the target, then rename it over.
        "sed -i",
        [ev(C, "sedX1"), ev(M, "sedX1"), ev(A, "sedX1"), ev(MV, "sedX1", "f")],
        [],
        [("f", SYNC), ("sedX1", DELETE)],
    ),
    (
        # JetBrains safe write: temp file, original to a backup, temp to the name, drop backup.
        "JetBrains safe write",
        [
            ev(C, "f___jb_tmp___"),
            ev(M, "f___jb_tmp___"),
            ev(MV, "f", "f___jb_old___"),
            ev(MV, "f___jb_tmp___", "f"),
            ev(D, "f___jb_old___"),
        ],
        [],
        [("f", SYNC), ("f___jb_old___", DELETE), ("f___jb_tmp___", DELETE)],
    ),
    (
        # git checkout: unlink and recreate each file.
        "git checkout",
        [ev(D, "a.py"), ev(C, "a.py"), ev(M, "a.py"), ev(D, "b.py"), ev(C, "c.py"), ev(M, "c.py")],
        [],
        [("a.py", SYNC), ("b.py", DELETE), ("c.py", SYNC)],
    ),
    (
        "mkdir -p and a file inside",
        [ev(C, "a", d=True), ev(C, "a/b", d=True), ev(C, "a/b/f"), ev(M, "a/b/f")],
        [],
        [("a", SYNC), ("a/b", SYNC), ("a/b/f", SYNC)],
    ),
    (
        "rm -r removes the tree once",
        [ev(D, "d/x/1"), ev(D, "d/x/2"), ev(D, "d/x", d=True), ev(D, "d/y"), ev(D, "d", d=True)],
        [],
        [("d", DELETE)],
    ),
    (
        "a renamed file is one move",
        [ev(MV, "a", "b")],
        [Move("a", "b", False)],
        [],
    ),
    (
        "a change before a directory rename follows it",
        [ev(M, "d/x"), ev(MV, "d", "e", d=True), ev(M, "e/y")],
        [Move("d", "e", True)],
        [("e/x", SYNC), ("e/y", SYNC)],
    ),
    (
        "a swap through a temporary name keeps its order",
        [ev(MV, "a", "t"), ev(MV, "b", "a"), ev(MV, "t", "b")],
        [Move("a", "t", False), Move("b", "a", False), Move("t", "b", False)],
        [],
    ),
    (
        "a new file renamed twice is copied once under its last name",
        [ev(C, "a"), ev(M, "a"), ev(MV, "a", "b"), ev(MV, "b", "c")],
        [],
        [("a", DELETE), ("b", DELETE), ("c", SYNC)],
    ),
    (
        "a new directory renamed is a tree sync",
        [ev(C, "n", d=True), ev(C, "n/f"), ev(MV, "n", "m", d=True)],
        [],
        [("m", TREE), ("m/f", SYNC), ("n", DELETE)],
    ),
    (
        "a move into a new directory copies and deletes the old name",
        [ev(C, "n", d=True), ev(MV, "a", "n/a")],
        [],
        [("a", DELETE), ("n", SYNC), ("n/a", SYNC)],
    ),
    (
        "a move into a new directory that is then removed is a delete",
        [ev(C, "n", d=True), ev(MV, "a", "n/a"), ev(D, "n/a"), ev(D, "n", d=True)],
        [],
        [("a", DELETE), ("n", DELETE)],
    ),
    (
        "a rename over a deleted name, then a delete, still deletes",
        [ev(D, "b"), ev(C, "a"), ev(MV, "a", "b"), ev(D, "b")],
        [],
        [("a", DELETE), ("b", DELETE)],
    ),
    (
        "a rename over an existing file, then its removal",
        [ev(MV, "a", "b"), ev(M, "c"), ev(D, "b")],
        [],
        [("a", DELETE), ("b", DELETE), ("c", SYNC)],
    ),
    (
        # The churn test's seed 7: the old name was deleted, a file renamed onto it and then
        # moved out of the tree; the destination still has the old file.
        "delete, rename onto the name, move the new file out",
        [ev(D, "u"), ev(MV, "x", "u"), ev(D, "u")],
        [],
        [("u", DELETE), ("x", DELETE)],
    ),
    (
        "a pending change at the target is replaced by the move",
        [ev(M, "b"), ev(MV, "a", "b")],
        [Move("a", "b", False)],
        [],
    ),
    (
        "a renamed directory that is then deleted",
        [ev(MV, "d", "e", d=True), ev(D, "e/x"), ev(D, "e", d=True)],
        [Move("d", "e", True)],
        [("e", DELETE)],
    ),
    (
        "parents come before children, siblings by name",
        [ev(C, "b"), ev(C, "a b"), ev(C, "a", d=True), ev(C, "a/z"), ev(C, "a/b")],
        [],
        [("a", SYNC), ("a/b", SYNC), ("a/z", SYNC), ("a b", SYNC), ("b", SYNC)],
    ),
]


@pytest.mark.parametrize(
    ("events", "moves", "changes"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_coalesce(
    events: list[Event], moves: list[Move], changes: list[tuple[str, ChangeKind]]
) -> None:
    batch = coalesce(events)
    assert list(batch.moves) == moves
    assert [(c.path, c.kind) for c in batch.changes] == changes
    assert not batch.full_resync


def test_overflow_asks_for_a_full_resync_and_keeps_other_changes() -> None:
    batch = coalesce([ev(C, "f"), Event(EventKind.OVERFLOW, "")])
    assert batch.full_resync
    assert batch.changes == (Change("f", SYNC),)


def test_empty_batch_is_false() -> None:
    assert not coalesce([])
    assert coalesce([Event(EventKind.OVERFLOW, "")])


def test_without_moves_syncs_both_ends_as_trees() -> None:
    batch = coalesce([ev(MV, "d", "e", d=True), ev(M, "e/x"), ev(D, "f")])
    assert batch.without_moves() == Batch(
        (), (Change("d", TREE), Change("e", TREE), Change("e/x", SYNC), Change("f", DELETE))
    )


def test_merge_keeps_the_failed_batch_and_adds_newer_changes_without_moves() -> None:
    failed = coalesce([ev(M, "a"), ev(MV, "x", "y")])
    newer = coalesce([ev(D, "a"), ev(MV, "b", "c"), ev(C, "n")])
    merged = merge(failed, newer)
    assert merged.moves == ()
    assert [(c.path, c.kind) for c in merged.changes] == [
        ("a", DELETE),
        ("b", TREE),
        ("c", TREE),
        ("n", SYNC),
        ("x", TREE),
        ("y", TREE),
    ]


def test_merge_keeps_a_tree_sync_deep_and_carries_a_full_resync() -> None:
    older = Batch((), (Change("d", TREE),), full_resync=True)
    merged = merge(older, coalesce([ev(A, "d", d=True)]))
    assert merged.changes == (Change("d", TREE),)
    assert merged.full_resync


def test_a_storm_of_ten_thousand_files_coalesces_to_one_change_each() -> None:
    events = []
    for d in range(200):
        events.append(ev(C, f"d{d}", d=True))
        for f in range(50):
            path = f"d{d}/f{f}"
            events += [ev(C, path), ev(M, path), ev(M, path)]
    batch = coalesce(events)
    assert len(batch.changes) == 200 + 10_000
    assert batch.changes[0] == Change("d0", SYNC)
