"""Both transfers applied to real directories, without the watcher: batches in, trees out."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import assert_trees_equal
from pylsyncd.coalesce import Batch, Change, ChangeKind, Move
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Transfer
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.rsync import RsyncTransfer, escape_pattern
from pylsyncd.transfer.source import SourceEntry, SourceTree

SYNC, TREE, DELETE = ChangeKind.SYNC, ChangeKind.SYNC_TREE, ChangeKind.DELETE
OLD_NS = 1_500_000_000_123_456_789  # a fixed time far from now, with nanoseconds


def make(backend: str, src: Path, dst: Path, *excludes: str, delete: bool = True) -> Transfer:
    rules = ExcludeRules(excludes)
    if backend == "rsync":
        return RsyncTransfer(str(src), str(dst), rules, delete=delete)
    return DirectTransfer(str(src), str(dst), rules, delete=delete)


@pytest.fixture(params=["direct", "rsync"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def batch(*changes: tuple[str, ChangeKind], moves: tuple[Move, ...] = ()) -> Batch:
    return Batch(moves, tuple(Change(path, kind) for path, kind in changes))


def test_an_event_copies_a_same_size_rewrite_with_the_same_mtime(
    backend: str, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    (src / "f").write_bytes(b"old!")
    transfer = make(backend, src, dst)
    assert transfer.full_sync(delete=True).ok
    stamp = os.stat(src / "f").st_mtime_ns
    (src / "f").write_bytes(b"new!")
    os.utime(src / "f", ns=(stamp, stamp))
    assert transfer.apply(batch(("f", SYNC))).ok
    assert (dst / "f").read_bytes() == b"new!"


def test_a_delete_whose_source_exists_again_copies_instead(
    backend: str, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    (src / "f").write_text("back")
    assert make(backend, src, dst).apply(batch(("f", DELETE))).ok
    assert (dst / "f").read_text() == "back"


@pytest.mark.parametrize("name", ["a*b", "[x]", "back\\slash", "new\nline", "-leading", "sp ace"])
def test_names_that_look_like_patterns_or_options(
    backend: str, dirs: tuple[Path, Path], name: str
) -> None:
    src, dst = dirs
    decoy = name.replace("*", "").replace("[", "").replace("]", "") + "-decoy"
    (dst / decoy).write_text("must stay: a pattern must match only its own name")
    (dst / name).write_text("stale")
    (src / decoy).write_text("must stay: a pattern must match only its own name")
    (src / "d").mkdir()
    (src / "d" / name).write_text("nested")
    transfer = make(backend, src, dst)
    assert transfer.apply(batch((name, DELETE), ("d", SYNC), (f"d/{name}", SYNC))).ok
    assert not (dst / name).exists()
    assert (dst / decoy).exists()
    assert (dst / "d" / name).read_text() == "nested"


def test_escape_pattern_only_escapes_when_rsync_would_unescape() -> None:
    assert escape_pattern("plain\\name") == "plain\\name"
    assert escape_pattern("a*b\\c") == "a\\*b\\\\c"


def test_deleting_a_tree_leaves_excluded_entries(backend: str, dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    (dst / "d" / "sub").mkdir(parents=True)
    (dst / "d" / "sub" / "f").write_text("x")
    (dst / "d" / "keep.log").write_text("excluded")
    (dst / "other").write_text("y")
    assert make(backend, src, dst, "*.log").apply(batch(("d", DELETE), ("other", DELETE))).ok
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*")) == ["d", "d/keep.log"]


def test_full_sync_deletes_extras_but_not_excluded_ones(
    backend: str, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    (src / "a").write_text("a")
    (dst / "extra").write_text("gone")
    (dst / ".git").mkdir()
    (dst / ".git" / "HEAD").write_text("kept")
    assert make(backend, src, dst, ".git").full_sync(delete=True).ok
    assert sorted(p.name for p in dst.iterdir()) == [".git", "a"]
    assert (dst / ".git" / "HEAD").read_text() == "kept"


def test_full_sync_without_delete_keeps_extras(backend: str, dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    (dst / "extra").write_text("stays")
    assert make(backend, src, dst).full_sync(delete=False).ok
    assert (dst / "extra").read_text() == "stays"


def test_direct_replays_a_directory_rename_as_one_rename(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    (src / "d").mkdir()
    for i in range(100):
        (src / "d" / str(i)).write_text(str(i))
    transfer = make("direct", src, dst)
    assert transfer.full_sync(delete=True).ok
    inode = os.stat(dst / "d").st_ino
    (src / "d").rename(src / "e")
    outcome = transfer.apply(batch(moves=(Move("d", "e", True),)))
    assert outcome.ok and outcome.moved == 1 and outcome.copied == 0
    assert os.stat(dst / "e").st_ino == inode
    assert not (dst / "d").exists()


def test_direct_move_missing_in_destination_copies_instead(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    (src / "b").write_text("content")
    outcome = make("direct", src, dst).apply(batch(moves=(Move("a", "b", False),)))
    assert outcome.ok and outcome.moved == 0
    assert (dst / "b").read_text() == "content"


def test_direct_a_rename_whose_source_came_back_keeps_both(dirs: tuple[Path, Path]) -> None:
    # A rename reported late (a rescan beside inotify): the old name was written again since,
    # and its own event went with an earlier batch. Replaying the rename must not lose it.
    src, dst = dirs
    (src / "a").write_text("first")
    transfer = make("direct", src, dst)
    assert transfer.full_sync(delete=True).ok
    (src / "a").rename(src / "b")
    (src / "a").write_text("second")
    outcome = transfer.apply(batch(moves=(Move("a", "b", False),)))
    assert outcome.ok and outcome.moved == 1
    assert (dst / "b").read_text() == "first" and (dst / "a").read_text() == "second"
    # The same rename once more, late: what it renames here is the new "a" by now.
    assert transfer.apply(batch(moves=(Move("a", "b", False),))).ok
    assert (dst / "b").read_text() == "first" and (dst / "a").read_text() == "second"


def test_direct_a_late_rename_over_what_inotify_brought_is_repaired(
    dirs: tuple[Path, Path],
) -> None:
    # The old name was used again and is gone again by the time a rescan reports the rename:
    # the destination's entry at the old name is not what the source holds at the new one.
    src, dst = dirs
    (src / "a").mkdir()
    (src / "a" / "f").write_text("one")
    transfer = make("direct", src, dst)
    assert transfer.full_sync(delete=True).ok
    (src / "a").rename(src / "b")
    (src / "a").mkdir()
    (src / "a" / "g").write_text("two")
    os.utime(src / "a", ns=(10**18, 10**18))  # another directory, other times
    assert transfer.full_sync(delete=True).ok  # what inotify brought: b, and the new a
    (src / "a" / "g").unlink()
    (src / "a").rmdir()
    assert transfer.apply(batch(moves=(Move("a", "b", True),))).ok
    assert sorted(p.name for p in (dst / "b").iterdir()) == ["f"]
    assert not (dst / "a").exists()


def test_direct_a_rename_carried_on_by_the_next_one_keeps_its_tree(
    dirs: tuple[Path, Path],
) -> None:
    # `inside/deep` was renamed into `x/in`, then `x/in` to `y`: when the first rename is
    # replayed, the source no longer has its new name. It is neither late nor gone: the next
    # rename carries it, and nothing may be deleted or copied on the way.
    src, dst = dirs
    (src / "inside" / "deep").mkdir(parents=True)
    (src / "inside" / "deep" / "f").write_text("carried twice")
    (src / "x" / "in").mkdir(parents=True)
    transfer = make("direct", src, dst)
    assert transfer.full_sync(delete=True).ok
    (src / "inside" / "deep").rename(src / "x" / "in" / "deep")
    (src / "x" / "in").rename(src / "y")
    moves = (Move("inside/deep", "x/in/deep", True), Move("x/in", "y", True))
    outcome = transfer.apply(batch(moves=moves))
    assert outcome.ok and (outcome.moved, outcome.copied, outcome.deleted) == (2, 0, 0)
    assert_trees_equal(src, dst)


def test_direct_a_directory_a_rename_left_then_renamed_itself_gets_its_times(
    dirs: tuple[Path, Path],
) -> None:
    # One batch: `top/mid/leaf/inner` renamed out, then `top` renamed. Taking `inner` out of
    # the destination's `leaf` changed its mtime; by the end of the batch `leaf` is at
    # `moved/mid/leaf`, and that is where its times must be copied.
    src, dst = dirs
    (src / "top" / "mid" / "leaf" / "inner").mkdir(parents=True)
    (src / "other").mkdir()
    transfer = make("direct", src, dst)
    assert transfer.full_sync(delete=True).ok
    (src / "top" / "mid" / "leaf" / "inner").rename(src / "other" / "inner")
    (src / "top").rename(src / "moved")
    os.utime(src / "moved" / "mid" / "leaf", ns=(OLD_NS, OLD_NS))
    moves = (Move("top/mid/leaf/inner", "other/inner", True), Move("top", "moved", True))
    outcome = transfer.apply(batch(moves=moves))
    assert outcome.ok and outcome.moved == 2
    assert_trees_equal(src, dst)


def test_direct_never_writes_through_a_symlinked_directory(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    outside = tmp_path / "outside"
    outside.mkdir()
    (dst / "a").symlink_to(outside)
    (src / "a").mkdir()
    (src / "a" / "f").write_text("inside")
    assert make("direct", src, dst).apply(batch(("a/f", SYNC))).ok
    assert list(outside.iterdir()) == []
    assert not (dst / "a").is_symlink()
    assert (dst / "a" / "f").read_text() == "inside"


def test_direct_replaces_a_symlinked_file_instead_of_writing_through_it(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (dst / "f").symlink_to(victim)
    (src / "f").write_text("new")
    assert make("direct", src, dst).apply(batch(("f", SYNC))).ok
    assert victim.read_text() == "untouched"
    assert not (dst / "f").is_symlink()
    assert (dst / "f").read_text() == "new"


def test_direct_cleans_leftover_temporary_files(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    (dst / ".pylsyncd.0123456789ab.tmp").write_text("from a killed run")
    assert make("direct", src, dst, delete=False).full_sync(delete=False).ok
    assert list(dst.iterdir()) == []


@pytest.fixture
def read_only_dir(dirs: tuple[Path, Path]) -> Iterator[Path]:
    """dst/d on a read-only tmpfs: a real write failure, even for root."""
    target = dirs[1] / "d"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_a_failure_is_reported_and_kept_for_retry_while_the_rest_goes_on(
    backend: str, dirs: tuple[Path, Path], read_only_dir: Path
) -> None:
    src, dst = dirs
    (src / "ok").write_text("fine")
    (src / "d").mkdir()
    (src / "d" / "f").write_text("blocked")
    outcome = make(backend, src, dst).apply(batch(("d", SYNC), ("d/f", SYNC), ("ok", SYNC)))
    assert not outcome.ok
    assert outcome.error
    assert Change("d/f", SYNC) in outcome.failed.changes
    assert (dst / "ok").read_text() == "fine"


def test_a_file_replaces_a_directory_full_of_files(backend: str, dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    (dst / "p" / "sub").mkdir(parents=True)
    (dst / "p" / "sub" / "old").write_text("old")
    (dst / "p" / "link").symlink_to(".")
    (src / "p").write_text("now a file")
    assert make(backend, src, dst).apply(batch(("p", SYNC))).ok
    assert (dst / "p").read_text() == "now a file"


def test_a_directory_sync_copies_attributes_not_contents(
    backend: str, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    (src / "d").mkdir(mode=0o750)
    (src / "d" / "not-yet").write_text("arrives with its own event")
    assert make(backend, src, dst).apply(batch(("d", SYNC))).ok
    assert (dst / "d").stat().st_mode & 0o777 == 0o750
    assert list((dst / "d").iterdir()) == []


def test_a_path_below_a_source_symlink_does_not_exist(
    backend: str, dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    # A directory swapped for a symlink (here to "." and to a directory outside) while its
    # files' events are pending: nothing is read through the link, as rsync does.
    src, dst = dirs
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "f").write_text("outside the source")
    (src / "f").write_text("root file")
    (src / "x").symlink_to(".")
    (src / "y").symlink_to(secret)
    outcome = make(backend, src, dst).apply(
        batch(("f", SYNC), ("x", SYNC), ("x/f", SYNC), ("y", SYNC), ("y/f", SYNC))
    )
    assert outcome.ok
    assert os.readlink(dst / "x") == "."
    assert os.readlink(dst / "y") == str(secret)
    assert sorted(p.name for p in dst.iterdir()) == ["f", "x", "y"]


def test_a_directory_sync_removes_what_the_source_lacks(
    backend: str, dirs: tuple[Path, Path]
) -> None:
    # What a transfer that read the source late copied, and that was renamed or deleted before
    # the next one, raises no event under the name the destination has: the directory's own
    # change must remove it (rsync would keep it: a directory synced alone includes no entry).
    src, dst = dirs
    (src / "d").mkdir()
    (src / "d" / "kept").write_text("in both")
    (dst / "d" / "copied-late" / "sub").mkdir(parents=True)
    (dst / "d" / "kept").write_text("in both")
    (dst / "d" / "extra.txt").write_text("the source never had it")
    (dst / "d" / "excluded.log").write_text("excluded: left alone")
    assert make(backend, src, dst, "*.log").apply(batch(("d", SYNC))).ok
    assert sorted(p.name for p in (dst / "d").iterdir()) == ["excluded.log", "kept"]


def test_rsync_removes_the_temporary_file_of_a_killed_run_when_retried(
    dirs: tuple[Path, Path],
) -> None:
    src, dst = dirs
    (src / "d").mkdir()
    (src / "d" / "f").write_text("complete")
    transfer = RsyncTransfer(str(src), str(dst), ExcludeRules(()), delete=True, rsync="false")
    assert not transfer.apply(batch(("d/f", SYNC))).ok  # a run that died
    (dst / "d").mkdir()
    (dst / "d" / ".f.Ab12Cd").write_text("what a killed rsync leaves")
    transfer.rsync = "rsync"
    assert transfer.apply(batch(("d/f", SYNC))).ok
    assert sorted(p.name for p in (dst / "d").iterdir()) == ["f"]


def test_direct_initial_sync_copes_with_files_that_change_type_after_the_listing(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file is copied from the listing's type alone (no lstat): if it became a FIFO, a
    symlink or a directory, or went, before it was opened, the general path must take over."""
    src, dst = dirs
    for name in ("fifo", "link", "dir", "gone", "plain"):
        (src / name).write_text(f"{name}, as listed")
    (dst / "gone").write_text("must go: the source no longer has it")
    listing = SourceTree(str(src)).children("")
    # Now the tree moves on, after the listing and before the transfer opens anything.
    for name in ("fifo", "link", "dir", "gone"):
        (src / name).unlink()
    os.mkfifo(src / "fifo")
    (src / "link").symlink_to("plain")
    (src / "dir").mkdir()
    (src / "dir" / "inner").write_text("inside")
    stale = {""}  # only the root's listing is stale
    original = SourceTree.children

    def children(tree: SourceTree, path: str) -> list[SourceEntry]:
        if path in stale:
            stale.discard(path)
            return listing
        return original(tree, path)

    monkeypatch.setattr(SourceTree, "children", children)
    outcome = DirectTransfer(str(src), str(dst), ExcludeRules(()), delete=True).full_sync(
        delete=True
    )
    assert outcome.ok, outcome.error
    assert sorted(os.listdir(dst)) == ["dir", "link", "plain"]  # no FIFO, no "gone", no leftover
    assert os.readlink(dst / "link") == "plain"
    assert (dst / "dir" / "inner").read_text() == "inside"
    assert (dst / "plain").read_text() == "plain, as listed"


def test_rsync_a_batch_past_its_include_list_bound_goes_in_two_runs(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MOST_RULES (here 5), listed syncs still copy regardless of size and mtime, and the
    rest (a deletion, a new tree, a path gone since) arrives through wider tree syncs."""
    src, dst = dirs
    monkeypatch.setattr("pylsyncd.transfer.rsync.MOST_RULES", 5)
    for index in range(8):
        (src / "d").mkdir(exist_ok=True)
        (src / "d" / f"f{index}").write_text("old!")
    (src / "old").mkdir()
    (src / "old" / "x").write_text("to delete")
    transfer = make("rsync", src, dst)
    assert transfer.full_sync(delete=True).ok
    stamp = os.stat(src / "d" / "f0").st_mtime_ns
    (src / "d" / "f0").write_text("new!")  # same size, same mtime: only the event tells
    os.utime(src / "d" / "f0", ns=(stamp, stamp))
    (src / "old" / "x").unlink()
    (src / "new" / "deep").mkdir(parents=True)
    (src / "new" / "deep" / "y").write_text("new tree")
    changes = [(f"d/f{index}", SYNC) for index in range(8)]
    changes += [("old/x", DELETE), ("new", TREE), ("gone", SYNC)]
    assert transfer.apply(batch(*changes)).ok
    assert (dst / "d" / "f0").read_text() == "new!"
    assert_trees_equal(src, dst)
