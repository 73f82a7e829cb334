"""The inotify watcher against the real kernel: filesystem actions in, events out."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pylsyncd.events import Event, EventKind
from pylsyncd.watch import ExcludePredicate, inotify, inotify_backlog
from pylsyncd.watch.inotify import InotifyWatcher, watch_limit_message

C, M, A, D, MV, OVER = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.ATTRIB,
    EventKind.DELETED,
    EventKind.MOVED,
    EventKind.OVERFLOW,
)
SYSCTL = Path("/proc/sys/fs/inotify")
MARKER = ".marker-"


class Recorder:
    """Reads a watcher until the expected events have arrived or a deadline passes."""

    def __init__(self, watcher: InotifyWatcher, root: Path) -> None:
        self.watcher = watcher
        self.root = root
        self.events: list[Event] = []
        self._markers = 0

    def until(self, done: Callable[[list[Event]], bool], timeout: float = 10.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        while not done(self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out after {timeout} s; events so far: {self.events}")
            self.events += self.watcher.read(min(remaining, 0.2))
        return self.events

    def settle(self) -> list[Event]:
        """Everything caused so far, and nothing else: the kernel queues events in order, so
        once a marker file's creation arrives, whatever happened before it has arrived too."""
        self._markers += 1
        marker = f"{MARKER}{self._markers}"
        (self.root / marker).touch()
        self.until(lambda events: Event(C, marker) in events)
        settled = [event for event in self.events if not event.path.startswith(MARKER)]
        self.events = []
        return settled


Start = Callable[..., Recorder]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    return tmp_path / "src"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    return tmp_path / "outside"


@pytest.fixture
def watch(src: Path) -> Iterator[Start]:
    watchers: list[InotifyWatcher] = []

    def start(excludes: ExcludePredicate | None = None) -> Recorder:
        watcher = InotifyWatcher(str(src), excludes)
        watchers.append(watcher)
        watcher.start()
        return Recorder(watcher, src)

    yield start
    for watcher in watchers:
        watcher.close()


def makedirs(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).mkdir(parents=True)


def inotify_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
        except FileNotFoundError:
            continue  # the descriptor listdir itself used
    return count


def created(events: list[Event]) -> set[str]:
    return {event.path for event in events if event.kind is C}


def test_file_created_modified_deleted(src: Path, watch: Start) -> None:
    rec = watch()
    (src / "f").write_text("one")
    # IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE: the writes add nothing to the creation.
    assert rec.settle() == [Event(C, "f")]
    with (src / "f").open("a") as f:
        f.write("two")
    assert set(rec.settle()) == {Event(M, "f")}
    (src / "f").unlink()
    assert rec.settle() == [Event(D, "f")]


def test_nothing_happens_read_times_out(watch: Start) -> None:
    rec = watch()
    started = time.monotonic()
    assert rec.watcher.read(0.05) == []
    assert time.monotonic() - started >= 0.04


def test_new_directory_filled_before_its_watch_exists(src: Path, watch: Start) -> None:
    rec = watch()
    # All of this happens before the watcher reads the first IN_CREATE: only the scan of the
    # new directories can report the files.
    (src / "d").mkdir()
    for i in range(20):
        (src / "d" / str(i)).write_text("x")
    makedirs(src, "a/b/c")
    (src / "a/b/c/f").write_text("x")
    events = rec.settle()
    assert created(events) == {"d", "a", "a/b", "a/b/c", "a/b/c/f"} | {f"d/{i}" for i in range(20)}
    assert Event(C, "a/b", is_dir=True) in events
    assert rec.watcher.watch_count == 5
    # ... and the new directories are watched from now on.
    (src / "d/late").write_text("x")
    (src / "a/b/c/late").write_text("x")
    assert created(rec.settle()) == {"d/late", "a/b/c/late"}


def test_directories_created_while_reading_lose_nothing(src: Path, watch: Start) -> None:
    rec = watch()
    expected = {f"d{i}/sub" for i in range(20)} | {f"d{i}" for i in range(20)}
    expected |= {f"d{i}/sub/{j}" for i in range(20) for j in range(25)}

    def storm() -> None:
        for i in range(20):
            makedirs(src, f"d{i}/sub")
            for j in range(25):
                (src / f"d{i}/sub/{j}").write_text("x")

    writer = threading.Thread(target=storm)
    writer.start()
    try:
        rec.until(lambda events: expected <= created(events))
    finally:
        writer.join(timeout=10)
    assert rec.watcher.watch_count == 41


def test_file_renamed_is_one_move(src: Path, watch: Start) -> None:
    (src / "f").write_text("x")
    rec = watch()
    os.rename(src / "f", src / "g")
    assert rec.settle() == [Event(MV, "f", target="g")]


def test_directory_renamed_keeps_reporting_under_its_new_name(src: Path, watch: Start) -> None:
    makedirs(src, "d/sub")
    (src / "d/sub/x").write_text("x")
    rec = watch()
    os.rename(src / "d", src / "e")
    assert rec.settle() == [Event(MV, "d", is_dir=True, target="e")]
    (src / "e/sub/x").write_text("y")
    (src / "e/sub/new").write_text("y")
    assert {event.path for event in rec.settle()} == {"e/sub/x", "e/sub/new"}
    assert rec.watcher.watch_count == 3


def test_halves_of_a_rename_in_different_reads_are_paired(
    src: Path, watch: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    (src / "a-rather-long-file-name").write_text("x")
    rec = watch()
    # Names of 16 to 31 bytes make 48-byte records: one record per read(2).
    monkeypatch.setattr(inotify_backlog, "_READ_SIZE", 64)
    os.rename(src / "a-rather-long-file-name", src / "another-long-file-name")
    assert rec.settle() == [Event(MV, "a-rather-long-file-name", target="another-long-file-name")]


def test_moved_out_of_the_tree_is_deleted(src: Path, outside: Path, watch: Start) -> None:
    makedirs(src, "d/sub")
    (src / "f").write_text("x")
    rec = watch()
    os.rename(src / "f", outside / "f")
    os.rename(src / "d", outside / "d")
    assert rec.settle() == [Event(D, "f"), Event(D, "d", is_dir=True)]
    assert rec.watcher.watch_count == 1
    (outside / "d/sub/x").write_text("the kernel would still report this")
    assert rec.settle() == []


def test_name_taken_again_right_after_a_move_out(src: Path, outside: Path, watch: Start) -> None:
    (src / "d").mkdir()
    rec = watch()
    # All before the watcher reads: dropping the departed watches must spare the new "d".
    os.rename(src / "d", outside / "d")
    (src / "d").mkdir()
    (src / "d/f").write_text("x")
    assert rec.settle() == [Event(D, "d", True), Event(C, "d", True), Event(C, "d/f")]
    assert rec.watcher.watch_count == 2
    (src / "d/g").write_text("x")
    assert created(rec.settle()) == {"d/g"}


def test_directory_renamed_before_its_creation_was_read_is_watched(src: Path, watch: Start) -> None:
    rec = watch()
    # Its watch cannot be added under the name its IN_CREATE gives: the rename must add it.
    makedirs(src, "a/x")
    os.rename(src / "a", src / "b")
    assert created(rec.settle()) >= {"a", "b/x"}
    assert rec.watcher.watch_count == 3
    (src / "b/x/f").write_text("x")
    assert created(rec.settle()) == {"b/x/f"}


def test_held_directories_get_no_watch_until_released(src: Path, watch: Start) -> None:
    """A union merge writes whole trees and reads them afterwards: held, a new directory is
    reported but not watched (no event per entry written), and watched once released."""
    rec = watch()
    rec.watcher.held.hold(["top"])
    makedirs(src, "top/d", "other/d")
    (src / "top/d/f").write_text("written while held")
    (src / "other/d/f").write_text("not held")
    assert created(rec.settle()) == {"top", "other", "other/d", "other/d/f"}
    assert rec.watcher.watch_count == 3  # the root, other, other/d
    rec.watcher.held.release(["top"])
    assert rec.watcher.watch_count == 5
    (src / "top/d/g").write_text("after")
    assert created(rec.settle()) == {"top/d/g"}


def test_a_held_directory_renamed_before_its_release_is_watched_at_its_new_name(
    src: Path, watch: Start
) -> None:
    rec = watch()
    rec.watcher.held.hold(["top"])
    makedirs(src, "top/d")
    assert created(rec.settle()) == {"top"}
    os.rename(src / "top", src / "moved")
    rec.settle()
    (src / "moved/d/f").write_text("x")
    assert created(rec.settle()) == {"moved/d/f"}
    rec.watcher.held.release(["top"])  # gone: nothing to watch there
    assert rec.watcher.watch_count == 3


def test_name_taken_again_before_a_move_out_was_read(
    src: Path, outside: Path, watch: Start
) -> None:
    rec = watch()
    # The listing for the first IN_CREATE finds the second "d": its watches are not the
    # departed directory's, and must survive the move out.
    (src / "d").mkdir()
    os.rename(src / "d", outside / "d")
    makedirs(src, "d/sub")
    rec.settle()
    assert rec.watcher.watch_count == 3
    (src / "d/sub/f").write_text("x")
    assert created(rec.settle()) == {"d/sub/f"}


def test_name_taken_again_before_a_rename_was_read(src: Path, outside: Path, watch: Start) -> None:
    makedirs(outside, "first/sub", "second/sub")
    rec = watch()
    os.rename(outside / "first", src / "b")
    os.rename(src / "b", src / "a")
    os.rename(outside / "second", src / "b")
    rec.settle()
    assert rec.watcher.watch_count == 5
    (src / "a/sub/f").write_text("x")
    (src / "b/sub/f").write_text("x")
    assert created(rec.settle()) == {"a/sub/f", "b/sub/f"}


def test_directory_listed_under_its_new_name_before_its_rename_was_read(
    src: Path, watch: Start
) -> None:
    makedirs(src, "p/c", "p/d")
    (src / "p/d/f").write_text("x")
    rec = watch()
    # The listing of the new "n" finds "p" (and "p/d") before the records of either rename
    # are read; "n" was not watched yet when "p" moved into it.
    (src / "n").mkdir()
    os.rename(src / "p/c", src / "q")
    os.rename(src / "p", src / "n/p")
    assert created(rec.settle()) >= {"n", "n/p", "n/p/d", "n/p/d/f"}
    assert rec.watcher.watch_count == 5
    (src / "q/f").write_text("x")
    (src / "n/p/d/g").write_text("x")
    assert created(rec.settle()) == {"q/f", "n/p/d/g"}


def test_moved_into_the_tree_is_a_tree_and_watched(src: Path, outside: Path, watch: Start) -> None:
    makedirs(outside, "tree/sub")
    (outside / "tree/sub/x").write_text("x")
    (outside / "f").write_text("x")
    rec = watch()
    os.rename(outside / "tree", src / "tree")
    os.rename(outside / "f", src / "f")
    assert rec.settle() == [
        Event(C, "tree", is_dir=True, tree=True),
        Event(C, "f", tree=True),
    ]
    assert rec.watcher.watch_count == 3
    (src / "tree/sub/y").write_text("y")
    assert created(rec.settle()) == {"tree/sub/y"}


def skip_and_tmp(path: str, is_dir: bool) -> bool:
    name = path.rpartition("/")[2]
    return name == "skip" or name.endswith(".tmp")


def test_excluded_directories_are_not_watched(src: Path, watch: Start) -> None:
    makedirs(src, "skip/inner", "keep/skip")
    rec = watch(skip_and_tmp)
    assert rec.watcher.watch_count == 2  # the root and keep
    (src / "skip/inner/f").write_text("x")
    (src / "keep/skip/g").write_text("x")
    assert rec.settle() == []
    # An excluded name still changes its directory's mtime, which the mirror follows.
    (src / "x.tmp").write_text("x")
    assert rec.settle() == [Event(A, "", True)]
    makedirs(src, "new/skip")
    assert created(rec.settle()) == {"new"}
    assert rec.watcher.watch_count == 3


def test_moves_across_the_exclusion_boundary(src: Path, watch: Start) -> None:
    for name in ("a.txt", "b.tmp", "c.tmp"):
        (src / name).write_text("x")
    makedirs(src, "skip/inner", "keep/sub")
    rec = watch(skip_and_tmp)
    os.rename(src / "a.txt", src / "a.tmp")
    os.rename(src / "b.tmp", src / "b.txt")
    os.rename(src / "c.tmp", src / "d.tmp")
    root_changed = Event(A, "", True)
    assert set(rec.settle()) == {Event(D, "a.txt"), Event(C, "b.txt", tree=True), root_changed}
    os.rename(src / "skip", src / "unskipped")
    assert rec.settle() == [root_changed, Event(C, "unskipped", is_dir=True, tree=True)]
    assert rec.watcher.watch_count == 5  # root, keep, keep/sub, unskipped, unskipped/inner
    os.rename(src / "keep", src / "skip")
    assert rec.settle() == [Event(D, "keep", is_dir=True), root_changed]
    assert rec.watcher.watch_count == 3
    (src / "skip/sub/f").write_text("x")
    (src / "unskipped/inner/f").write_text("x")
    assert created(rec.settle()) == {"unskipped/inner/f"}


def test_renaming_a_parent_reapplies_path_patterns(src: Path, watch: Start) -> None:
    makedirs(src, "a/cache", "b/cache")
    rec = watch(lambda path, is_dir: path == "a/cache")
    assert rec.watcher.watch_count == 4  # root, a, b, b/cache
    os.rename(src / "a", src / "c")
    events = rec.settle()
    assert events == [Event(MV, "a", is_dir=True, target="c"), Event(C, "c/cache", True, tree=True)]
    os.rename(src / "b", src / "a")
    assert rec.settle() == [Event(MV, "b", is_dir=True, target="a")]
    (src / "c/cache/x").write_text("x")
    (src / "a/cache/y").write_text("x")
    assert created(rec.settle()) == {"c/cache/x"}
    assert rec.watcher.watch_count == 4  # root, c, c/cache, a


def test_awkward_names(src: Path, watch: Start) -> None:
    rec = watch()
    names = ["with space", "new\nline", "-leading-dash", "ünïcødé ✓"]
    for name in names:
        (src / name).write_text("x")
    not_utf8 = os.fsencode(src) + b"/latin1-\xe9"
    os.mkdir(not_utf8)
    fd = os.open(not_utf8 + b"/caf\xe9", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    decoded = os.fsdecode(b"latin1-\xe9")
    assert created(rec.settle()) == {*names, decoded, decoded + "/" + os.fsdecode(b"caf\xe9")}
    fd = os.open(not_utf8 + b"/\xff", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    # The name travels back to the same bytes.
    [event] = [event for event in rec.settle() if event.kind is C]
    assert os.fsencode(event.path) == b"latin1-\xe9/\xff"


def test_chmod_is_attrib(src: Path, watch: Start) -> None:
    (src / "d").mkdir()
    (src / "f").write_text("x")
    rec = watch()
    os.chmod(src / "f", 0o600)
    os.chmod(src / "d", 0o700)
    os.chmod(src, 0o750)
    assert rec.settle() == [Event(A, "f"), Event(A, "d", True), Event(A, "", True)]


def test_tree_removed(src: Path, watch: Start) -> None:
    makedirs(src, "d/a/b", "d/c")
    (src / "d/a/b/f").write_text("x")
    rec = watch()
    assert rec.watcher.watch_count == 5
    shutil.rmtree(src / "d")
    assert Event(D, "d", is_dir=True) in rec.settle()
    rec.until(lambda _: rec.watcher.watch_count == 1)


def test_root_moved_is_overflow(src: Path, tmp_path: Path, watch: Start) -> None:
    rec = watch()
    os.rename(src, tmp_path / "elsewhere")
    rec.until(lambda events: Event(OVER, "") in events)


def test_unmount_below_the_root_is_overflow_and_rewatched(src: Path, watch: Start) -> None:
    (src / "mnt").mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "tmpfs", src / "mnt"], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        (src / "mnt/on-tmpfs").write_text("x")
        rec = watch()
    finally:
        subprocess.run(["umount", src / "mnt"], check=True)
    rec.until(lambda events: Event(OVER, "") in events)
    (src / "mnt/after").write_text("x")
    assert created(rec.settle()) == {"mnt/after"}
    assert rec.watcher.watch_count == 2


def test_permission_denied_is_reported_once_and_skipped(
    src: Path, watch: Start, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    makedirs(src, "locked/inner", "other/locked", "fine")
    real_add_watch = inotify.inotify_add_watch

    def add_watch(fd: int, path: bytes, mask: int) -> int:
        if path.endswith(b"/locked"):  # root may read anything: pretend otherwise
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_add_watch(fd, path, mask)

    monkeypatch.setattr(inotify, "inotify_add_watch", add_watch)
    with caplog.at_level(logging.DEBUG, logger=inotify.__name__):
        rec = watch()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "permission denied" in warnings[0].getMessage()
    assert rec.watcher.watch_count == 3  # the root, other, fine
    (src / "fine/f").write_text("x")
    assert created(rec.settle()) == {"fine/f"}


def test_watch_limit_message() -> None:
    assert watch_limit_message(8192, 1000) == (
        "out of inotify watches at 8192 (about 1000 more directories to watch): "
        "raise fs.inotify.max_user_watches to at least 16384 "
        "(sysctl -w fs.inotify.max_user_watches=16384)"
    )
    assert "at least 1048576 " in watch_limit_message(524288, 0)


# Runs in a user namespace of its own, whose watch limit (user.max_inotify_watches) can be
# lowered without touching the system-wide one that other processes depend on.
LIMIT_CHILD = """
import json, os, sys, time
from pylsyncd.watch import WatchLimitError
from pylsyncd.watch.inotify import InotifyWatcher

big, small = sys.argv[1:]
with open("/proc/sys/user/max_inotify_watches", "w") as limit:
    limit.write("10")
report = {}
watcher = InotifyWatcher(big)
try:
    watcher.start()
except WatchLimitError as error:
    report["start"] = [str(error), watcher.watch_count]
watcher.close()
watcher = InotifyWatcher(small)
watcher.start()
for i in range(20):
    os.mkdir(f"{small}/new{i}")
deadline = time.monotonic() + 20
try:
    while time.monotonic() < deadline:
        watcher.read(0.2)
except WatchLimitError as error:
    report["read"] = [str(error), watcher.watch_count]
watcher.close()
print(json.dumps(report))
"""


def limit_message(sysctl: str) -> re.Pattern[str]:
    name = re.escape(sysctl)
    return re.compile(
        r"out of inotify watches at (\d+) \(about (\d+) more directories to watch\): "
        rf"raise {name} to at least (\d+) \(sysctl -w {name}=\3\)"
    )


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_out_of_watches_names_the_limit_and_what_is_needed(tmp_path: Path) -> None:
    big, small = tmp_path / "big", tmp_path / "small"
    makedirs(big, *(f"d{i}" for i in range(30)))
    makedirs(small, *(f"d{i}" for i in range(4)))
    child = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-c", LIMIT_CHILD, big, small],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if child.returncode != 0 and child.stderr.startswith("unshare:"):
        pytest.skip(f"no user namespaces here: {child.stderr.strip()}")
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    pattern = limit_message("user.max_inotify_watches")
    for when, watched, missing in (("start", 10, 21), ("read", 10, 15)):
        message, watch_count = report[when]
        found = pattern.fullmatch(message)
        assert found, message
        assert watch_count == watched
        limit, missing_in_message, needed = map(int, found.groups())
        assert (limit, missing_in_message) == (10, missing)
        assert needed >= limit + missing


def test_overflow_rebuilds_the_watches(src: Path, watch: Start) -> None:
    makedirs(src, "old/sub")
    (src / "a").touch()
    (src / "b").touch()
    rec = watch()
    queue = int((SYSCTL / "max_queued_events").read_text())
    if queue > 100_000:
        pytest.skip(f"fs.inotify.max_queued_events is {queue}: too long to fill")
    # Alternate between two files: the kernel merges an event identical to the last one queued.
    for _ in range(queue // 2 + 1):
        os.chmod(src / "a", 0o644)
        os.chmod(src / "b", 0o644)
    # Lost in the overflow: a rename and new directories.
    os.rename(src / "old", src / "new")
    makedirs(src, "born/sub")
    rec.until(lambda events: Event(OVER, "") in events)
    assert rec.watcher.watch_count == 5  # root, new, new/sub, born, born/sub
    rec.settle()
    (src / "new/sub/x").write_text("x")
    (src / "born/sub/y").write_text("x")
    assert created(rec.settle()) == {"new/sub/x", "born/sub/y"}


def test_close_releases_the_descriptor(src: Path) -> None:
    before = inotify_fds()
    watcher = InotifyWatcher(str(src))
    watcher.start()
    assert inotify_fds() == before + 1
    watcher.close()
    watcher.close()
    assert inotify_fds() == before
    assert watcher.watch_count == 0
    assert watcher.read(0) == []
