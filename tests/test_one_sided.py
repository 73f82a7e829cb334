"""A union merge's one-sided subtrees (`pair.one_sided`): which directories are copied whole,
and the create-only copier that never replaces what the other side holds."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from helpers import write_file
from pylsyncd.entries import Entry, Kind, Mode, Side
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.one_sided import agreed_records, copy_one_sided, one_sided_roots, split_off
from pylsyncd.pair.side_tree import read_subtree
from pylsyncd.transfer import Outcome, Ownership
from pylsyncd.transfer.destination import DestinationTree
from pylsyncd.transfer.file_writer import link_into_place, open_temp

DIR = Entry(Kind.DIR, mode=0o755)
FILE = Entry(Kind.FILE, 1, 1)


def _nothing_excluded(path: str, is_dir: bool) -> bool:
    return False


def _copy_from_a(a: Path, b: Path, paths: list[str]) -> Outcome:
    """A's subtrees at `paths` copied into B, create-only, nothing excluded."""
    roots = {Side.A: str(a), Side.B: str(b)}
    ownership = Ownership(None, None, preserve=False)
    return copy_one_sided(roots, Side.A, paths, ExcludeRules([]), ownership, threading.Event())


def _sides() -> dict[Side, dict[str, Entry]]:
    a = {"x": DIR, "x/f": FILE, "c": DIR, "c/y": DIR, "c/y/z": DIR, "c/y/z/f": FILE, "c/g": FILE}
    b = {"c": DIR, "b": DIR, "b/f": FILE, "c/g": FILE, "t": FILE}
    a["t"] = DIR  # a directory where the other side has a file: the plan's (a conflict)
    a["t/f"] = FILE
    return {Side.A: a, Side.B: b}


@pytest.mark.parametrize(
    "mode, expected",
    [
        (Mode.TWO_WAY, {Side.A: ["x", "c/y"], Side.B: ["b"]}),
        (Mode.ONE_WAY_SAFE, {Side.A: ["x", "c/y"]}),
    ],
)
def test_the_tops_of_what_only_one_side_holds_are_its_roots(
    mode: Mode, expected: dict[Side, list[str]]
) -> None:
    roots = one_sided_roots(_sides(), mode)
    assert {side: sorted(paths) for side, paths in roots.items()} == {
        side: sorted(paths) for side, paths in expected.items()
    }


def test_split_off_takes_the_roots_and_all_below_them() -> None:
    a = _sides()[Side.A]
    taken = split_off(a, ["x", "c/y"])
    assert sorted(taken) == ["c/y", "c/y/z", "c/y/z/f", "x", "x/f"]
    assert sorted(a) == ["c", "c/g", "t", "t/f"]


def test_the_create_only_copy_never_replaces_what_the_other_side_holds(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_file(a / "d/new", "new")
    write_file(a / "d/taken", "from a")
    write_file(a / "d/sub/deep", "deep")
    (a / "d/link").symlink_to("new")
    write_file(b / "d/taken", "b's own")  # created on B while the merge ran
    write_file(b / "d/link", "b's file")
    outcome = _copy_from_a(a, b, ["d"])
    assert outcome.error is None
    assert (b / "d/new").read_text() == "new"
    assert (b / "d/sub/deep").read_text() == "deep"
    assert (b / "d/taken").read_text() == "b's own"
    assert (b / "d/link").read_text() == "b's file"
    assert sorted(os.listdir(b / "d")) == ["link", "new", "sub", "taken"]  # no temporary left


def test_the_create_only_copy_changes_no_directory_it_did_not_make(tmp_path: Path) -> None:
    """The parent both sides hold, and the subtree's root made on B while the merge ran, keep
    B's mode and times; what the copy made has A's. A merge's copies only add names (each
    subtree copied into a parent would otherwise set the parent's times again: one more event
    there, and one more reconcile of all below it)."""
    a, b = tmp_path / "a", tmp_path / "b"
    write_file(a / "common/only-a/f", "a")
    write_file(a / "common/only-a/sub/g", "a")
    (b / "common/only-a").mkdir(parents=True)  # made on B after the merge read it
    for directory, mode in ((a / "common", 0o755), (b / "common", 0o750)):
        os.chmod(directory, mode)
    os.chmod(a / "common/only-a", 0o751)
    os.chmod(b / "common/only-a", 0o700)
    os.chmod(a / "common/only-a/sub", 0o705)
    a_time = 1_000_000_000 * 10**9
    for directory in (a / "common", a / "common/only-a", a / "common/only-a/sub"):
        os.utime(directory, ns=(a_time, a_time))
    outcome = _copy_from_a(a, b, ["common/only-a"])
    assert outcome.error is None
    assert (b / "common/only-a/sub/g").read_text() == "a"
    for kept, mode in (("common", 0o750), ("common/only-a", 0o700)):
        found = os.stat(b / kept)
        assert (found.st_mode & 0o777, found.st_mtime_ns != a_time) == (mode, True), kept
    made = os.stat(b / "common/only-a/sub")
    assert (made.st_mode & 0o777, made.st_mtime_ns) == (0o705, a_time)


def test_only_paths_both_sides_hold_alike_are_recorded(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_file(a / "d/same", "same")
    write_file(a / "d/edited", "before")
    write_file(a / "d/missing", "not copied")
    b.mkdir()
    tree_a = DestinationTree(str(a), lambda _: None, Ownership(None, None, False), 0)
    tree_b = DestinationTree(str(b), lambda _: None, Ownership(None, None, False), 0)
    originals = read_subtree(tree_a, "d", _nothing_excluded)
    copy_one_sided(
        {Side.A: str(a), Side.B: str(b)}, Side.A, ["d"], ExcludeRules([]),
        Ownership(None, None, preserve=False), threading.Event(),
    )  # fmt: skip
    write_file(b / "d/edited", "edited on b after the copy")
    (b / "d/missing").unlink()
    write_file(b / "d/theirs", "made on b meanwhile")
    records, disagree = agreed_records(tree_b, Side.A, originals, ["d"], _nothing_excluded)
    recorded = {record.path: record.ancestor for record in records}
    assert sorted(recorded) == ["d", "d/same"]
    assert disagree == {"d/edited", "d/missing", "d/theirs"}
    same = recorded["d/same"]
    assert same is not None
    assert (same.inode_a, same.inode_b) == (
        os.lstat(a / "d/same").st_ino,
        os.lstat(b / "d/same").st_ino,
    )
    tree_a.close()
    tree_b.close()


def test_a_link_into_place_refuses_a_taken_name_and_leaves_no_temporary(tmp_path: Path) -> None:
    write_file(tmp_path / "taken", "theirs")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        tmp, tmp_fd = open_temp(fd)
        os.write(tmp_fd, b"ours")
        os.close(tmp_fd)
        with pytest.raises(FileExistsError):
            link_into_place(fd, tmp, "taken")
        tmp, tmp_fd = open_temp(fd)
        os.close(tmp_fd)
        link_into_place(fd, tmp, "free")
    finally:
        os.close(fd)
    assert (tmp_path / "taken").read_text() == "theirs"
    assert sorted(os.listdir(tmp_path)) == ["free", "taken"]
