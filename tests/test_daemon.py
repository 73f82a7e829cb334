"""The real daemon process against real directories, for both backends: the mirroring contract."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import (
    Daemon,
    DaemonPool,
    assert_trees_equal,
    daemon_args,
    set_mtime,
    tree_snapshot,
    wait_for_mirror,
    wait_until,
    write_file,
)

# Fixed, distinct timestamps with a nanosecond part, far from "now": a copy that forgets the
# mtime, or rounds it to microseconds, shows up.
OLD = 1_500_000_000_123_456_789
NOT_UTF8 = os.fsdecode(b"latin1-\xe9t\xe9-\xff")
ODD_NAMES = [
    "with space",
    " leading space",
    "trailing space ",
    "new\nline",
    "-leading-dash",
    "--looks-like-an-option",
    "ünïcødé ☃ 日本語",
    "glob[*?]chars",
    "back\\slash",
    "tab\there",
    "quote'\"s",
    "#hash",
    "~tilde",
    "colon:name",
    NOT_UTF8,
]


@dataclass
class Mirror:
    """A running daemon for one source and destination."""

    src: Path
    dst: Path
    daemon: Daemon

    def wait(self, timeout: float = 10.0, ignore: Callable[[str], bool] | None = None) -> None:
        """Wait until the destination mirrors the source."""
        wait_for_mirror(self.src, self.dst, timeout=timeout, ignore=ignore, daemon=self.daemon)


Start = Callable[..., Mirror]


@pytest.fixture(params=["direct", "rsync"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.mkdir()
    return path


@pytest.fixture
def dst(tmp_path: Path) -> Path:
    path = tmp_path / "dst"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the source, on the same file system (renames in and out work)."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def start(src: Path, dst: Path, backend: str, daemons: DaemonPool) -> Start:
    """Start a daemon for src -> dst with extra arguments and (by default) wait until ready."""

    def start(*extra: str, delay: str = "0", ready: bool = True) -> Mirror:
        daemon = daemons.start(daemon_args(src, dst, backend, *extra, delay=delay))
        if ready:
            daemon.wait_ready()
        return Mirror(src, dst, daemon)

    return start


@pytest.fixture
def live(start: Start) -> Mirror:
    """A daemon with the default settings, ready."""
    return start()


def under_git(relative: str) -> bool:
    """Whether a path is, or is inside, a directory named .git."""
    return ".git" in relative.split("/")


def populate(root: Path) -> None:
    """A small tree with nested and empty dirs, odd modes, fixed mtimes and every kind of link."""
    write_file(root / "top.txt", "top\n", mode=0o644, mtime_ns=OLD)
    write_file(root / "a" / "script.sh", "#!/bin/sh\necho hi\n", mode=0o755, mtime_ns=OLD + 1)
    write_file(root / "a" / "b" / "secret", "s3cr3t", mode=0o600, mtime_ns=OLD + 2)
    write_file(root / "a" / "b" / "c" / "deep.bin", bytes(range(256)) * 40, mtime_ns=OLD + 3)
    write_file(root / "a" / "b" / "empty-file", b"", mode=0o640, mtime_ns=OLD + 4)
    (root / "empty" / "nested" / "deeper").mkdir(parents=True)
    os.symlink("../top.txt", root / "a" / "relative-link")
    os.symlink("/etc", root / "absolute-link")
    os.symlink("no/such/target", root / "a" / "dangling-link")
    os.symlink("/no/such/absolute/target", root / "dangling-absolute")
    os.symlink("b", root / "a" / "dir-link")
    for number, link in enumerate(
        ["a/relative-link", "absolute-link", "a/dangling-link", "dangling-absolute", "a/dir-link"]
    ):
        set_mtime(root / link, OLD + 10 + number)
    os.chmod(root / "a" / "b", 0o750)
    os.chmod(root / "empty" / "nested", 0o700)
    # Directories last, deepest first: creating their children changed their mtimes.
    for number, directory in enumerate(
        ["empty/nested/deeper", "empty/nested", "empty", "a/b/c", "a/b", "a"]
    ):
        set_mtime(root / directory, OLD + 100 + number)


def make_tree(root: Path, dirs: int, files: int) -> None:
    """`dirs` directories of `files` small files each."""
    for d in range(dirs):
        directory = root / f"dir{d:02d}"
        directory.mkdir(parents=True)
        for f in range(files):
            (directory / f"file{f:03d}.txt").write_bytes(f"{d}/{f}\n".encode())


# -- initial sync ------------------------------------------------------------------------------


def test_initial_sync_of_a_populated_tree(
    src: Path, tmp_path: Path, backend: str, daemons: DaemonPool
) -> None:
    populate(src)
    dst = tmp_path / "created-by-the-daemon"
    daemon = daemons.start(daemon_args(src, dst, backend))
    daemon.wait_ready()
    # "ready" means the initial sync is done: no waiting here.
    assert_trees_equal(src, dst)
    daemon.stop()


def test_initial_sync_replaces_what_differs_in_the_destination(
    src: Path, dst: Path, start: Start
) -> None:
    populate(src)
    write_file(dst / "top.txt", "stale and longer\n", mtime_ns=OLD)
    write_file(dst / "a" / "script.sh", "#!/bin/sh\necho hi\n", mode=0o644, mtime_ns=OLD)
    (dst / "a" / "relative-link").mkdir(parents=True)  # a directory where the source has a link
    os.symlink("elsewhere", dst / "empty")  # a link where the source has a directory
    write_file(dst / "a" / "b" / "c" / "deep.bin" / "x", "a dir where the source has a file")
    write_file(dst / "stale" / "file", "gone")
    m = start()
    assert_trees_equal(src, dst)
    m.daemon.stop()


def test_no_init_leaves_existing_files_but_mirrors_live_changes(
    src: Path, dst: Path, start: Start
) -> None:
    write_file(src / "before.txt", "there before the start")
    m = start("--no-init")
    assert not (dst / "before.txt").exists()
    write_file(src / "after.txt", "written live")
    wait_until(lambda: (dst / "after.txt").is_file(), message="after.txt never arrived")
    m.daemon.stop()
    assert (dst / "after.txt").read_text() == "written live"
    assert not (dst / "before.txt").exists()


@pytest.mark.parametrize("phase", ["initial", "live"])
def test_odd_names(src: Path, start: Start, phase: str) -> None:
    def create() -> None:
        for number, name in enumerate(ODD_NAMES):
            write_file(src / name, os.fsencode(name), mtime_ns=OLD + number)
        write_file(src / "dir with space" / "new\nline" / "-x", "nested odd names")
        write_file(os.fsencode(src) + b"/raw-\xfe\xff" + b"/child-\x80", b"bytes path")
        os.symlink("with space", src / "link to with space")
        os.symlink(NOT_UTF8, src / "link-to-non-utf8")

    if phase == "initial":
        create()
        m = start()
        assert_trees_equal(m.src, m.dst)
    else:
        m = start()
        create()
        m.wait()
    m.daemon.stop()


# -- live changes ------------------------------------------------------------------------------


def test_create(live: Mirror) -> None:
    write_file(live.src / "new.txt", "hello")
    live.wait()
    write_file(live.src / "x" / "y" / "z" / "deep.txt", "created with its parents")
    live.wait()
    write_file(live.src / "empty-file", b"")
    write_file(live.src / "big.bin", os.urandom(3 << 20))
    live.wait()


def test_modify(live: Mirror) -> None:
    path = write_file(live.src / "f.txt", "one")
    live.wait()
    path.write_text("two, and longer")
    live.wait()
    with path.open("ab") as file:
        file.write(b" + appended")
    live.wait()
    with path.open("r+b") as file:  # in place, no truncation, same size
        file.seek(2)
        file.write(b"XYZ")
    live.wait()
    path.write_bytes(b"")
    live.wait()


def test_same_size_rewrite_within_the_same_mtime(live: Mirror) -> None:
    path = write_file(live.src / "sub" / "same.txt", b"A" * 4096)
    live.wait()
    stamp = os.stat(path).st_mtime_ns
    for letter in b"BCD":
        content = bytes([letter]) * 4096
        path.write_bytes(content)
        os.utime(path, ns=(stamp, stamp))
        live.wait()
        assert (live.dst / "sub" / "same.txt").read_bytes() == content
    with path.open("r+b") as file:  # in place, without truncating first
        file.write(b"E" * 10)
    os.utime(path, ns=(stamp, stamp))
    live.wait()


def test_delete(live: Mirror) -> None:
    populate(live.src)
    live.wait()
    (live.src / "top.txt").unlink()
    live.wait()
    (live.src / "a" / "relative-link").unlink()
    (live.src / "a" / "dir-link").unlink()
    live.wait()
    shutil.rmtree(live.src / "a")
    live.wait()
    (live.src / "empty" / "nested" / "deeper").rmdir()
    live.wait()
    shutil.rmtree(live.src / "empty")
    live.wait()
    assert sorted(os.listdir(live.dst)) == ["absolute-link", "dangling-absolute"]


def test_rename_file(live: Mirror) -> None:
    write_file(live.src / "a.txt", "a", mtime_ns=OLD)
    write_file(live.src / "b.txt", "b will be overwritten")
    (live.src / "d1").mkdir()
    (live.src / "d2").mkdir()
    live.wait()
    os.rename(live.src / "a.txt", live.src / "renamed.txt")
    live.wait()
    os.rename(live.src / "renamed.txt", live.src / "d1" / "moved.txt")
    live.wait()
    os.rename(live.src / "d1" / "moved.txt", live.src / "d2" / "moved again.txt")
    live.wait()
    os.replace(live.src / "d2" / "moved again.txt", live.src / "b.txt")  # over an existing file
    live.wait()
    assert (live.dst / "b.txt").read_text() == "a"


def test_rename_directory_with_contents(live: Mirror) -> None:
    populate(live.src / "d")
    (live.src / "other").mkdir()
    live.wait()
    os.rename(live.src / "d", live.src / "e")
    live.wait()
    os.rename(live.src / "e", live.src / "other" / "e2")
    live.wait()
    # A rename followed at once by changes inside the renamed directory.
    os.rename(live.src / "other" / "e2", live.src / "f")
    write_file(live.src / "f" / "a" / "script.sh", "changed after the rename")
    write_file(live.src / "f" / "new-after-rename", "new")
    live.wait()
    # A directory renamed twice within one batch.
    os.rename(live.src / "f", live.src / "g")
    os.rename(live.src / "g", live.src / "h")
    live.wait()


def test_move_into_the_tree_from_outside(live: Mirror, outside: Path) -> None:
    populate(outside / "tree")
    write_file(outside / "file.txt", "from outside", mode=0o600, mtime_ns=OLD)
    os.rename(outside / "file.txt", live.src / "file.txt")
    live.wait()
    os.rename(outside / "tree", live.src / "tree")
    live.wait()
    # Moved in, then changed at once: the daemon must not miss the change inside.
    populate(outside / "again")
    os.rename(outside / "again", live.src / "again")
    write_file(live.src / "again" / "a" / "b" / "new.txt", "added right after the move")
    live.wait()


def test_move_out_of_the_tree(live: Mirror, outside: Path) -> None:
    populate(live.src / "tree")
    write_file(live.src / "file.txt", "leaving")
    live.wait()
    os.rename(live.src / "file.txt", outside / "file.txt")
    live.wait()
    os.rename(live.src / "tree", outside / "tree")
    live.wait()
    assert os.listdir(live.dst) == []
    # Changes in the moved-out directory are no longer mirrored.
    write_file(outside / "tree" / "later.txt", "not mirrored")
    write_file(live.src / "sentinel", "after")
    live.wait()


def test_chmod(live: Mirror) -> None:
    path = write_file(live.src / "d" / "f.sh", "x", mode=0o644)
    live.wait()
    for mode in (0o755, 0o600, 0o640, 0o777):
        os.chmod(path, mode)
        live.wait()
    os.chmod(live.src / "d", 0o700)
    live.wait()
    os.chmod(live.src / "d", 0o751)
    live.wait()


def test_touch_changes_only_the_mtime(live: Mirror) -> None:
    path = write_file(live.src / "d" / "f.txt", "unchanged content")
    os.symlink("f.txt", live.src / "d" / "link")
    live.wait()
    set_mtime(path, OLD)
    live.wait()
    set_mtime(path, OLD + 1)  # one nanosecond later
    live.wait()
    set_mtime(live.src / "d", OLD + 2)
    live.wait()
    set_mtime(live.src / "d" / "link", OLD + 3)
    live.wait()
    os.utime(path)  # to "now"
    live.wait()


def test_symlinks(live: Mirror, outside: Path) -> None:
    write_file(live.src / "target.txt", "target")
    write_file(outside / "abs-target", "outside the tree")
    write_file(live.src / "dir" / "inside", "inside")
    os.symlink("target.txt", live.src / "relative")
    os.symlink(str(outside / "abs-target"), live.src / "absolute")
    os.symlink("does/not/exist", live.src / "dangling")
    os.symlink("dir", live.src / "dir-link")
    os.symlink("../target.txt", live.src / "dir" / "up-link")
    os.symlink("self-loop", live.src / "self-loop")
    live.wait()
    # The links are copied as links, never followed.
    assert os.readlink(live.dst / "absolute") == str(outside / "abs-target")
    assert (live.dst / "dir-link").is_symlink()
    # Replace a link's target: remove and recreate, then an atomic rename over it.
    (live.src / "relative").unlink()
    os.symlink("dir/inside", live.src / "relative")
    live.wait()
    os.symlink("changed-target", live.src / "tmp-link")
    os.replace(live.src / "tmp-link", live.src / "dangling")
    live.wait()
    # A link becomes a file and a file becomes a link.
    (live.src / "dir-link").unlink()
    write_file(live.src / "dir-link", "now a file")
    (live.src / "target.txt").unlink()
    os.symlink("dir", live.src / "target.txt")
    live.wait()


def test_empty_directories(live: Mirror) -> None:
    (live.src / "empty").mkdir()
    live.wait()
    (live.src / "a" / "b" / "c" / "d").mkdir(parents=True)
    live.wait()
    (live.src / "a" / "b" / "c" / "d").rmdir()
    live.wait()
    (live.src / "empty").rmdir()
    live.wait()


def test_file_replaced_by_directory(live: Mirror) -> None:
    write_file(live.src / "x", "a file first")
    live.wait()
    (live.src / "x").unlink()
    write_file(live.src / "x" / "inner.txt", "then a directory")
    live.wait()
    # Both steps within one batch, and back.
    (live.src / "y").mkdir()
    live.wait()
    (live.src / "y").rmdir()
    write_file(live.src / "y", "a directory became a file")
    shutil.rmtree(live.src / "x")
    write_file(live.src / "x", "and a file again")
    live.wait()


def test_directory_replaced_by_file(live: Mirror) -> None:
    populate(live.src / "d")
    live.wait()
    shutil.rmtree(live.src / "d")
    write_file(live.src / "d", "a directory with contents became a file", mtime_ns=OLD)
    live.wait()
    (live.src / "d").unlink()
    os.symlink("elsewhere", live.src / "d")
    live.wait()


# -- excludes ----------------------------------------------------------------------------------


def test_excluded_content_never_reaches_the_destination(src: Path, dst: Path, start: Start) -> None:
    m = start("--exclude", ".git")
    write_file(src / ".git" / "config", "[core]")
    write_file(src / ".git" / "objects" / "ab" / "cdef", os.urandom(100))
    write_file(src / "pkg" / ".git" / "HEAD", "ref: refs/heads/main")
    write_file(src / "code.py", "print('hi')")
    write_file(src / "pkg" / "mod.py", "x = 1")
    os.rename(src / ".git", src / ".git-renamed")  # renamed out of the excluded name: mirrored
    write_file(src / ".git" / "index", "recreated")
    write_file(src / "sentinel", "last")
    wait_until(lambda: (dst / "sentinel").exists(), message="the sentinel never arrived")
    m.daemon.stop()  # applies anything still pending: nothing can arrive after this
    assert not os.path.lexists(dst / ".git")
    assert not os.path.lexists(dst / "pkg" / ".git")
    assert (dst / "code.py").read_text() == "print('hi')"
    assert (dst / ".git-renamed" / "objects" / "ab" / "cdef").is_file()
    assert_trees_equal(src, dst, ignore=under_git)


def test_excluded_entry_in_a_mirrored_directory_keeps_its_mtime_mirrored(
    src: Path, dst: Path, start: Start
) -> None:
    # Creating pkg/.git changes pkg's mtime in the source; the mirror of pkg must follow.
    m = start("--exclude", ".git")
    write_file(src / "pkg" / "mod.py", "x = 1")
    m.wait(ignore=under_git)
    (src / "pkg" / ".git").mkdir()
    write_file(src / "sentinel", "last")
    wait_until(lambda: (dst / "sentinel").exists(), message="the sentinel never arrived")
    m.wait(ignore=under_git)
    m.daemon.stop()


def test_excluded_paths_in_the_destination_are_left_alone(
    src: Path, dst: Path, start: Start
) -> None:
    write_file(src / "code.py", "code")
    write_file(src / ".git" / "objects" / "x", "source repo")
    write_file(src / "sub" / "file", "sub file")
    write_file(dst / ".git" / "keep", "the destination's own repo")
    write_file(dst / "sub" / ".git" / "keep", "nested")
    write_file(dst / "sub" / "stale", "not in the source")
    write_file(dst / "stale", "not in the source")
    m = start("--exclude", ".git")
    assert_trees_equal(src, dst, ignore=under_git)
    assert (dst / ".git" / "keep").read_text() == "the destination's own repo"
    assert not (dst / ".git" / "objects").exists()
    assert (dst / "sub" / ".git" / "keep").is_file()
    # Live: removing sub in the source removes what is mirrored, not the excluded file.
    shutil.rmtree(src / "sub")
    write_file(src / "sentinel", "last")
    wait_until(
        lambda: (dst / "sentinel").exists() and not (dst / "sub" / "file").exists(),
        message=lambda: f"sub/file not deleted: {sorted(tree_snapshot(dst))}",
    )
    m.daemon.stop()
    assert (dst / ".git" / "keep").is_file()
    assert (dst / "sub" / ".git" / "keep").is_file()
    assert not (dst / "sub" / "file").exists()


# -- DELETE modes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "deletes_at_start", "deletes_live"),
    [
        ("true", True, True),
        ("false", False, False),
        ("startup", True, False),
        ("running", False, True),
    ],
)
def test_delete_mode(
    src: Path, dst: Path, start: Start, mode: str, deletes_at_start: bool, deletes_live: bool
) -> None:
    write_file(src / "kept.txt", "kept")
    write_file(src / "doomed.txt", "deleted live")
    write_file(src / "doomed-dir" / "inner.txt", "deleted live")
    write_file(dst / "extra.txt", "only in the destination")
    write_file(dst / "extra-dir" / "inner.txt", "only in the destination")
    write_file(dst / "kept-dir" / "extra.txt", "only in the destination")
    (src / "kept-dir").mkdir()

    m = start("--delete", mode)
    assert (dst / "kept.txt").read_text() == "kept"
    assert (dst / "doomed-dir" / "inner.txt").is_file()
    for extra in ("extra.txt", "extra-dir", "kept-dir/extra.txt"):
        assert os.path.lexists(dst / extra) != deletes_at_start, f"{extra} after the initial sync"
    if deletes_at_start:
        assert_trees_equal(src, dst)

    (src / "doomed.txt").unlink()
    shutil.rmtree(src / "doomed-dir")
    write_file(src / "sentinel", "last")
    wait_until(lambda: (dst / "sentinel").exists(), message="the sentinel never arrived")
    if deletes_live:
        wait_until(
            lambda: (
                not os.path.lexists(dst / "doomed.txt") and not os.path.lexists(dst / "doomed-dir")
            ),
            message="live deletions never arrived",
        )
    m.daemon.stop()
    assert os.path.lexists(dst / "doomed.txt") != deletes_live
    assert os.path.lexists(dst / "doomed-dir" / "inner.txt") != deletes_live
    # What the daemon never saw deleted stays as the initial sync left it.
    assert os.path.lexists(dst / "extra.txt") != deletes_at_start


def test_empty_source_does_not_empty_the_destination(src: Path, dst: Path, start: Start) -> None:
    write_file(dst / "precious.txt", "keep me")
    write_file(dst / "dir" / "precious.txt", "keep me too")
    m = start()
    m.daemon.wait_for_log(r"(?i)warn.*(--allow-empty-source|ALLOW_EMPTY_SOURCE)", timeout=1)
    assert (dst / "precious.txt").read_text() == "keep me"
    assert (dst / "dir" / "precious.txt").read_text() == "keep me too"
    # The daemon still runs and mirrors what happens next.
    write_file(src / "new.txt", "new")
    wait_until(lambda: (dst / "new.txt").exists(), message="new.txt never arrived")
    m.daemon.stop()
    assert (dst / "precious.txt").exists()


def test_empty_source_empties_the_destination_when_allowed(
    src: Path, dst: Path, start: Start
) -> None:
    write_file(dst / "doomed.txt", "goes")
    write_file(dst / "dir" / "doomed.txt", "goes too")
    m = start("--allow-empty-source")
    assert os.listdir(dst) == []
    m.daemon.stop()


def test_non_empty_source_does_not_warn(src: Path, dst: Path, start: Start) -> None:
    write_file(src / "a", "a")
    write_file(dst / "b", "b")
    m = start()
    m.daemon.stop()
    assert not re.search(r"(?i)warn.*allow.empty.source", m.daemon.log_text())
    assert_trees_equal(src, dst)


# -- stop and restart --------------------------------------------------------------------------


def test_restart_catches_up_with_changes_made_while_stopped(
    src: Path, dst: Path, start: Start, outside: Path
) -> None:
    populate(src)
    write_file(src / "modified.txt", "before")
    write_file(src / "same-size.txt", "1234", mtime_ns=OLD)
    write_file(src / "deleted.txt", "will go")
    first = start()
    first.wait()
    first.daemon.stop()

    write_file(src / "new" / "file.txt", "created while stopped")
    write_file(src / "modified.txt", "after, longer")
    write_file(src / "same-size.txt", "5678", mtime_ns=OLD + 1)
    (src / "deleted.txt").unlink()
    shutil.rmtree(src / "a" / "b")
    os.rename(src / "empty", src / "renamed-empty")
    os.chmod(src / "top.txt", 0o600)
    set_mtime(src / "top.txt", OLD - 1)
    os.symlink("top.txt", src / "new-link")
    (src / "new-empty").mkdir()

    second = start()
    assert_trees_equal(src, dst)
    write_file(src / "live-again.txt", "after the restart")
    second.wait()
    second.daemon.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_stop_applies_pending_changes(src: Path, dst: Path, start: Start, signum: int) -> None:
    write_file(src / "initial.txt", "synced at start")
    # With a 30 s delay nothing goes out live: only the shutdown can apply these.
    m = start(delay="30")
    write_file(src / "pending.txt", "pending at the signal")
    write_file(src / "dir" / "nested.txt", "also pending")
    (src / "initial.txt").unlink()
    began = time.monotonic()
    m.daemon.stop(signum, timeout=15)
    assert time.monotonic() - began < 10, "the stop waited for the 30 s delay"
    assert_trees_equal(src, dst)


def test_a_destination_that_cannot_be_created_is_a_one_line_error(
    src: Path, tmp_path: Path, daemons: DaemonPool
) -> None:
    write_file(tmp_path / "file", "not a directory")
    daemon = daemons.start(daemon_args(src, tmp_path / "file" / "dst", "direct"))
    assert daemon.wait_exit() == 1
    assert daemon.lines == [
        f"pylsyncd: error: cannot create destination {tmp_path}/file/dst: Not a directory"
    ], daemon.report()


# -- volume ------------------------------------------------------------------------------------


def test_burst_of_2000_files_in_20_new_directories(live: Mirror) -> None:
    make_tree(live.src, dirs=20, files=100)
    live.wait(timeout=60)
    assert sum(len(files) for _, _, files in os.walk(live.dst)) == 2000


def test_deleting_a_2000_file_tree(src: Path, dst: Path, start: Start) -> None:
    make_tree(src / "tree", dirs=20, files=100)
    write_file(src / "keep.txt", "stays")
    m = start()
    assert_trees_equal(src, dst)
    shutil.rmtree(src / "tree")
    m.wait(timeout=60)
    assert os.listdir(dst) == ["keep.txt"]
