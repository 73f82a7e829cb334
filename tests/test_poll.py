"""The polling watcher on a real tree: scans, their differences as events, the back-off."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from pylsyncd.events import Event, EventKind
from pylsyncd.watch.poll import PollWatcher, filesystem_type, needs_polling

C, M, A, D, MV = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.ATTRIB,
    EventKind.DELETED,
    EventKind.MOVED,
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "sub" / "f").write_text("f")
    (root / "file").write_text("content")
    return root


def changes(root: Path, change: object) -> list[Event]:
    """Events of one rescan after `change` (a callable), without the directories' own ATTRIBs."""
    watcher = PollWatcher(str(root), interval=0.01)
    watcher.start()
    assert callable(change)
    change()
    events = watcher.read(1.0)
    return [e for e in events if not (e.kind is A and e.is_dir)]


def test_create_modify_delete(tree: Path) -> None:
    def change() -> None:
        (tree / "new").write_text("x")
        (tree / "file").write_text("CONTENT")  # same size, new mtime
        os.utime(tree / "file", ns=(1, 1))
        (tree / "d" / "sub" / "f").unlink()

    assert sorted(changes(tree, change), key=lambda e: e.path) == [
        Event(D, "d/sub/f"),
        Event(M, "file"),
        Event(C, "new"),
    ]


def test_a_new_directory_is_one_tree_and_a_removed_one_one_delete(tree: Path) -> None:
    def change() -> None:
        (tree / "n" / "m").mkdir(parents=True)
        (tree / "n" / "m" / "g").write_text("g")
        (tree / "d" / "sub" / "f").unlink()
        (tree / "d" / "sub").rmdir()
        (tree / "d").rmdir()

    assert sorted(changes(tree, change), key=lambda e: e.path) == [
        Event(D, "d", True),
        Event(C, "n", True, tree=True),
    ]


def test_renames_keep_their_contents_and_report_later_changes(tree: Path) -> None:
    def change() -> None:
        (tree / "d").rename(tree / "e")
        (tree / "e" / "sub" / "f").write_text("changed")
        (tree / "file").rename(tree / "moved")

    assert changes(tree, change) == [
        Event(MV, "d", True, target="e"),
        Event(MV, "file", target="moved"),
        Event(M, "e/sub/f"),
    ]


def test_chmod_is_attrib_and_type_change_is_delete_then_create(tree: Path) -> None:
    def change() -> None:
        (tree / "file").chmod(0o600)
        (tree / "d" / "sub" / "f").unlink()
        (tree / "d" / "sub" / "f").mkdir()

    assert sorted(changes(tree, change), key=lambda e: (e.path, e.kind.value)) == [
        Event(C, "d/sub/f", True, tree=True),
        Event(D, "d/sub/f"),
        Event(A, "file"),
    ]


def test_symlinks_are_entries_not_followed(tree: Path) -> None:
    def change() -> None:
        (tree / "link").symlink_to(tree / "d")

    assert changes(tree, change) == [Event(C, "link")]


def test_excluded_directories_are_not_scanned(tree: Path) -> None:
    watcher = PollWatcher(str(tree), lambda path, is_dir: path == "d", interval=0.01)
    assert "d/sub/f" not in watcher.scan() and "file" in watcher.scan()


def test_the_interval_grows_while_idle_and_resets_on_a_change(tree: Path) -> None:
    watcher = PollWatcher(str(tree), interval=0.01)
    watcher.start()
    for _ in range(6):
        watcher.read(1.0)
    assert watcher.current_interval == pytest.approx(0.04)  # capped at 4x
    (tree / "again").write_text("x")
    while not watcher.read(1.0):
        pass
    assert watcher.current_interval == 0.01


def test_close_interrupts_a_waiting_read(tree: Path) -> None:
    watcher = PollWatcher(str(tree), interval=60)
    watcher.start()
    threading.Timer(0.05, watcher.close).start()
    started = time.monotonic()
    assert watcher.read(30) == []
    assert time.monotonic() - started < 5


def test_filesystem_types() -> None:
    assert filesystem_type("/dev/shm") == "tmpfs"
    assert filesystem_type("/proc/self") == "proc"
    for name in (
        "fuse",
        "fuse.bindfs",
        "fuse.grpcfuse",
        "nfs4",
        "cifs",
        "9p",
        "vboxsf",
        "virtiofs",
    ):
        assert needs_polling(name), name
    for name in ("ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs"):
        assert not needs_polling(name), name
