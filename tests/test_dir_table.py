"""The polled tree's table: one packed record per directory, and when a directory's mtime spares
listing it again."""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

from pylsyncd.watch.dir_table import DirectoryTable, decode, encode
from pylsyncd.watch.directory_listing import DirectoryLister

OLD_NS = 1_600_000_000 * 10**9  # long before any listing


def list_directory(
    root: str, relative: str, known: bytes | None = None, trusted_before_ns: int | None = None
) -> tuple[bytes, tuple[int, int, int, int]]:
    lister = DirectoryLister(root, None)
    lister.trusted_before_ns = trusted_before_ns
    return lister.list(relative, known)


def listed(root: Path, known: bytes | None = None, trusted_before_ns: int | None = None) -> dict:
    record, _ = list_directory(str(root.parent), root.name, known, trusted_before_ns)
    return decode(record)


def test_a_record_round_trips_names_and_stats(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "file").write_text("abc")
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "d" / "ü name").symlink_to("file")
    record, own = list_directory(str(tmp_path), "d")
    entries = decode(record)
    assert sorted(entries) == ["file", "sub", "ü name"]
    st = os.lstat(tmp_path / "d" / "file")
    assert entries["file"] == (stat.S_IFREG, 3, st.st_mtime_ns, st.st_ino, st.st_mode & 0o7777)
    assert stat.S_ISDIR(entries["sub"][0]) and stat.S_ISLNK(entries["ü name"][0])
    assert own[3] == os.stat(tmp_path / "d").st_ino
    assert encode(entries, record) == record


def test_an_old_unchanged_directory_mtime_vouches_for_its_names(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "file").write_text("x")
    os.utime(directory, ns=(OLD_NS, OLD_NS))
    known, _ = list_directory(str(tmp_path), "d")
    (directory / "file").write_text("longer")  # an edit in place: seen, by its stat
    (directory / "hidden").write_text("x")
    os.utime(directory, ns=(OLD_NS, OLD_NS))  # as if its names had not changed
    now_ns = time.time_ns()
    trusted = listed(directory, known, now_ns)
    assert sorted(trusted) == ["file"]  # not listed again: the mtime said the names are the same
    assert trusted["file"][1] == len("longer")
    # An mtime not well before the listing proves nothing: listed again.
    assert sorted(listed(directory, known, OLD_NS)) == ["file", "hidden"]
    os.utime(directory, ns=(OLD_NS, OLD_NS + 1))  # another mtime: listed again
    assert sorted(listed(directory, known, now_ns)) == ["file", "hidden"]


def test_a_known_name_that_vanished_means_listing_again(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    for name in ("a", "b"):
        (directory / name).write_text(name)
    os.utime(directory, ns=(OLD_NS, OLD_NS))
    known, _ = list_directory(str(tmp_path), "d")
    (directory / "a").unlink()
    os.utime(directory, ns=(OLD_NS, OLD_NS))
    assert sorted(listed(directory, known, time.time_ns())) == ["b"]


def test_the_table_flattens_to_a_snapshot_and_walks_subtrees(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("f")
    table = DirectoryTable()
    for relative in ("", "a", "a/b"):
        table.records[relative], _ = list_directory(str(tmp_path), relative)
    assert set(table.snapshot()) == {"a", "a/b", "a/b/f"}
    assert list(table.subtree("a")) == ["a", "a/b"]
    assert table.entry("a/b/f") == table.snapshot()["a/b/f"]
    assert len(table) == 4  # the root, a, a/b, a/b/f


def test_a_stat_by_the_parent_in_the_same_tick_spares_the_directory_its_own(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "file").write_text("x")
    os.utime(directory, ns=(OLD_NS, OLD_NS))
    lister = DirectoryLister(str(tmp_path), None)
    known, _ = lister.list("d")
    lister.begin_tick(time.time_ns())
    lister.list("", None)  # the parent's listing stats "d": mtime OLD_NS, as recorded
    (directory / "added").write_text("x")  # after the parent's stat: its next rescan sees it
    record, _ = lister.list("d", known)
    assert sorted(decode(record)) == ["file"]  # the parent's stat of this tick was used
    lister.end_tick()
    lister.begin_tick(time.time_ns())  # another tick: the old stat spares nothing
    record, _ = lister.list("d", known)
    assert sorted(decode(record)) == ["added", "file"]
    lister.end_tick()


def test_a_subdirectory_replaced_by_a_symlink_is_not_listed_through_it(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "file").write_text("x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "file").write_text("outside")
    os.utime(tmp_path / "d", ns=(OLD_NS, OLD_NS))
    lister = DirectoryLister(str(tmp_path), None)
    known, _ = lister.list("d")
    (tmp_path / "d" / "file").unlink()
    (tmp_path / "d").rmdir()
    (tmp_path / "d").symlink_to("elsewhere")
    lister.begin_tick(time.time_ns())
    lister.list("")  # the parent's stat of "d" says: a symlink now
    try:
        lister.list("d", known)
    except OSError as error:
        # Not followed (O_NOFOLLOW): the parent's events say what it became.
        assert error.errno in (errno.ENOTDIR, errno.ELOOP)
    else:
        raise AssertionError("a symlink was listed as the directory it replaced")
    lister.end_tick()
