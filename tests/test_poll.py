"""The polling watcher on real trees: filesystem actions in, the events of a rescan out."""

from __future__ import annotations

import logging
import os
import pickle
import random
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pylsyncd.events import Event, EventKind, is_within, parent_of, rebase
from pylsyncd.watch import ExcludePredicate
from pylsyncd.watch.mounts import filesystem_type, needs_polling
from pylsyncd.watch.poll import PollWatcher
from pylsyncd.watch.snapshot_diff import Snapshot, diff

C, M, A, D, MV = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.ATTRIB,
    EventKind.DELETED,
    EventKind.MOVED,
)
INTERVAL = 0.05
SETTLED_NS = 1_600_000_000 * 10**9  # long before any scan: an mtime no rescan doubts

Start = Callable[..., PollWatcher]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "sub" / "f").write_text("f")
    (root / "d" / "g").write_text("g")
    (root / "file").write_text("content")
    for path in ("d/sub/f", "d/g", "file"):
        os.utime(root / path, ns=(SETTLED_NS, SETTLED_NS))
    return root


@pytest.fixture
def watch(src: Path) -> Iterator[Start]:
    watchers: list[PollWatcher] = []

    def start(excludes: ExcludePredicate | None = None, **options: float) -> PollWatcher:
        options.setdefault("interval", INTERVAL)
        options.setdefault("period", INTERVAL / 2)  # every tick a whole pass: one tick, all changes
        watcher = PollWatcher(str(src), excludes, **options)
        watchers.append(watcher)
        watcher.start()
        return watcher

    yield start
    for watcher in watchers:
        watcher.close()


def read_until(
    watcher: PollWatcher, done: Callable[[list[Event]], bool], timeout: float = 10.0
) -> list[Event]:
    """Read until `done(events so far)`; fail at the deadline, showing what did arrive."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while not done(events):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"timed out after {timeout} s; events so far: {events}")
        events += watcher.read(min(remaining, 0.5))
    return events


def next_change(watcher: PollWatcher) -> list[Event]:
    """The events of the first rescan that finds a change. Scans happen only inside read(), so
    it reports everything the test did before calling this, and nothing else."""
    return read_until(watcher, bool)


def without_directory_times(events: list[Event]) -> list[Event]:
    """Directories' ATTRIBs for the mtimes that adding or removing entries changes."""
    return [event for event in events if not (event.kind is A and event.is_dir)]


def test_start_reports_nothing_and_an_unchanged_tree_nothing(src: Path, watch: Start) -> None:
    watcher = watch()
    for _ in range(3):
        assert watcher.read(1.0) == []


def test_file_created_modified_deleted(src: Path, watch: Start) -> None:
    watcher = watch()
    (src / "new").write_text("x")
    assert without_directory_times(next_change(watcher)) == [Event(C, "new")]
    (src / "new").write_text("longer")
    assert without_directory_times(next_change(watcher)) == [Event(M, "new")]
    (src / "new").unlink()
    assert without_directory_times(next_change(watcher)) == [Event(D, "new")]


def test_same_size_rewrite_with_another_mtime_is_modified(src: Path, watch: Start) -> None:
    watcher = watch()
    before = (src / "file").stat()
    (src / "file").write_text("CONTENT")
    # Two writes within one clock tick may share an mtime: make it differ, as time would.
    os.utime(src / "file", ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert next_change(watcher) == [Event(M, "file")]


def test_new_directory_with_contents_is_one_tree_create(src: Path, watch: Start) -> None:
    watcher = watch()
    (src / "n" / "m").mkdir(parents=True)
    (src / "n" / "m" / "x").write_text("x")
    (src / "n" / "y").write_text("y")
    assert without_directory_times(next_change(watcher)) == [Event(C, "n", True, tree=True)]


def test_removed_tree_is_one_delete(src: Path, watch: Start) -> None:
    watcher = watch()
    shutil.rmtree(src / "d")
    assert without_directory_times(next_change(watcher)) == [Event(D, "d", True)]


def test_renamed_file_is_one_move(src: Path, watch: Start) -> None:
    watcher = watch()
    (src / "file").rename(src / "d" / "renamed")
    assert without_directory_times(next_change(watcher)) == [Event(MV, "file", target="d/renamed")]


def test_renamed_directory_is_one_move_without_its_entries(src: Path, watch: Start) -> None:
    watcher = watch()
    (src / "d").rename(src / "e")
    assert without_directory_times(next_change(watcher)) == [Event(MV, "d", True, target="e")]


def test_renamed_directory_reports_what_changed_inside(src: Path, watch: Start) -> None:
    watcher = watch()
    (src / "d").rename(src / "e")
    (src / "e" / "sub" / "f").write_text("changed")
    (src / "e" / "h").write_text("h")
    (src / "e" / "g").unlink()  # after creating h: h cannot reuse g's inode and pass for it
    assert without_directory_times(next_change(watcher)) == [
        Event(MV, "d", True, target="e"),
        Event(D, "e/g"),
        Event(C, "e/h"),
        Event(M, "e/sub/f"),
    ]


def test_rename_and_modify_is_move_then_modified(src: Path, watch: Start) -> None:
    watcher = watch()
    (src / "file").rename(src / "moved")
    (src / "moved").write_text("new content")
    assert without_directory_times(next_change(watcher)) == [
        Event(MV, "file", target="moved"),
        Event(M, "moved"),
    ]


def test_renamed_file_written_just_before_the_last_scan_is_also_modified(
    src: Path, watch: Start
) -> None:
    (src / "fresh").write_text("x")
    watcher = watch()
    (src / "fresh").rename(src / "renamed")
    assert without_directory_times(next_change(watcher)) == [
        Event(MV, "fresh", target="renamed"),
        Event(M, "renamed"),
    ]


def test_a_new_file_that_took_a_deleted_ones_inode_is_copied() -> None:
    """Deleted, then a file of the same size created within one clock tick: the kernel may give
    it the same inode, and nothing in a snapshot tells the two apart but the scan's time."""
    directory, file, tick = stat.S_IFDIR, stat.S_IFREG, 5 * 10**18
    old: Snapshot = {"": (directory, 0, 1, 2, 0o755), "a": (file, 1, tick, 7, 0o644)}
    new: Snapshot = {"": (directory, 0, tick, 2, 0o755), "b": (file, 1, tick, 7, 0o644)}
    renamed = [Event(MV, "a", target="b"), Event(A, "", True)]
    assert diff(old, new) == renamed
    assert diff(old, new, tick + 10**9) == [*renamed, Event(M, "b")]  # a tick after the scan
    assert diff(old, new, tick + 3 * 10**9) == renamed  # written long before it: a rename


def test_chmod_is_attrib(src: Path, watch: Start) -> None:
    watcher = watch()
    (src / "file").chmod(0o600)
    (src / "d").chmod(0o700)
    assert next_change(watcher) == [Event(A, "d", True), Event(A, "file")]


def test_directory_mtime_is_attrib(src: Path, watch: Start) -> None:
    watcher = watch()
    os.utime(src / "d", ns=(0, 1_000_000_000))
    assert next_change(watcher) == [Event(A, "d", True)]


def test_symlink_is_an_entry_never_followed(src: Path, watch: Start) -> None:
    watcher = watch()
    (src / "link").symlink_to(src / "d")
    (src / "d" / "sub" / "f").write_text("changed through nothing but the real path")
    events = without_directory_times(next_change(watcher))
    assert events == [Event(M, "d/sub/f"), Event(C, "link")]
    assert stat.S_ISLNK(os.lstat(src / "link").st_mode)


def test_excluded_directory_is_not_scanned(src: Path, watch: Start) -> None:
    (src / "cache" / "deep").mkdir(parents=True)
    asked: list[str] = []

    def excludes(path: str, is_dir: bool) -> bool:
        asked.append(path)
        return (path == "cache" and is_dir) or path.endswith(".tmp")

    watcher = watch(excludes)
    (src / "cache" / "deep" / "x").write_text("x")
    (src / "scratch.tmp").write_text("x")
    (src / "kept").write_text("x")
    assert without_directory_times(next_change(watcher)) == [Event(C, "kept")]
    assert "cache" in asked
    assert not [path for path in asked if path.startswith("cache/")]


def test_file_replaced_by_directory_is_delete_then_create(src: Path, watch: Start) -> None:
    watcher = watch()
    (src / "file").unlink()
    (src / "file").mkdir()
    (src / "file" / "inside").write_text("x")
    assert without_directory_times(next_change(watcher)) == [
        Event(D, "file"),
        Event(C, "file", True, tree=True),
    ]


def test_read_waits_for_the_rescan_only_when_it_is_due(src: Path, watch: Start) -> None:
    watcher = watch(interval=30)
    (src / "new").write_text("x")
    started = time.monotonic()
    assert watcher.read(0.05) == []  # not due for 30 s: waits the timeout, no rescan
    assert 0.04 <= time.monotonic() - started < 5


def test_close_interrupts_a_waiting_read(src: Path, watch: Start) -> None:
    watcher = watch(interval=60)
    closer = threading.Timer(0.1, watcher.close)
    closer.start()
    started = time.monotonic()
    try:
        assert watcher.read(30) == []
        assert time.monotonic() - started < 5
    finally:
        closer.cancel()
        closer.join()
    assert watcher.read(30) == []  # closed: returns at once


def test_a_root_that_went_away_is_not_a_deletion_of_everything(
    src: Path, watch: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=PollWatcher.__module__)
    watcher = watch()
    src.rename(tmp_path / "away")  # an unmounted share looks like this
    read_until(watcher, lambda _: "cannot scan" in caplog.text)
    assert watcher.read(0.5) == []
    (tmp_path / "away").rename(src)
    (src / "new").write_text("x")
    assert without_directory_times(next_change(watcher)) == [Event(C, "new")]
    assert "can be scanned again" in caplog.text


def test_unreadable_directory_keeps_its_entries() -> None:
    """A listing that fails (EACCES here; EIO on a share) must not look like deleted files."""

    def scenario(root: Path) -> list[list[Event]]:
        watcher = PollWatcher(str(root), interval=0.01, period=0.005)
        watcher.start()
        (root / "d").chmod(0o300)  # may enter and remove names, may not list
        first = next_change(watcher)
        (root / "d" / "g").unlink()
        os.utime(root / "d", ns=(0, 1_000_000_000))  # whatever the clock's granularity
        second = next_change(watcher)
        (root / "d").chmod(0o755)
        third = next_change(watcher)
        watcher.close()
        return [first, second, third]

    first, second, third = unprivileged(scenario)
    assert first == [Event(A, "d", True)]
    assert second == [Event(A, "d", True)]  # its entries as last seen: g is not deleted yet
    assert third == [Event(D, "d/g"), Event(A, "d", True)]


def unprivileged(scenario: Callable[[Path], list[list[Event]]]) -> list[list[Event]]:
    """Run `scenario` on a fresh tree where permissions apply: root ignores them, so as root it
    runs in a child process that gave up root's user and group (nobody)."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "src"
        (root / "d" / "sub").mkdir(parents=True)
        (root / "d" / "sub" / "f").write_text("f")
        (root / "d" / "g").write_text("g")
        if os.geteuid() != 0:
            return scenario(root)
        for path in (Path(scratch), root, *root.rglob("*")):
            os.chown(path, 65534, 65534)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report the outcome (or the failure) through the pipe
            try:
                os.close(read_end)
                outcome: object
                try:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    outcome = scenario(root)
                except BaseException as error:
                    outcome = f"{type(error).__name__}: {error}"
                with os.fdopen(write_end, "wb") as pipe:
                    pickle.dump(outcome, pipe)
            finally:
                os._exit(0)  # never back into pytest
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            result: object = pickle.load(pipe)
        os.waitpid(pid, 0)
    assert isinstance(result, list), result
    return result


def test_filesystem_type_of_root_and_of_a_tmpfs() -> None:
    assert filesystem_type("/") == _findmnt_fstype("/")
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm here")
    assert filesystem_type("/dev/shm") == "tmpfs"
    assert filesystem_type("/dev/shm/not-there-yet") == "tmpfs"


def _findmnt_fstype(path: str) -> str:
    if shutil.which("findmnt") is None:
        pytest.skip("findmnt is not installed")
    output = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE", "--target", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return output.split()[-1]


@pytest.mark.parametrize(
    ("fstype", "polled"),
    [
        ("fuse", True),
        ("fuseblk", True),
        ("fuse.grpcfuse", True),
        ("fuse.bindfs", True),
        ("fuse.sshfs", True),
        ("nfs", True),
        ("nfs4", True),
        ("cifs", True),
        ("smb3", True),
        ("smbfs", True),
        ("9p", True),
        ("vboxsf", True),
        ("virtiofs", True),
        ("fakeowner", True),
        ("ceph", True),
        ("ext4", False),
        ("xfs", False),
        ("btrfs", False),
        ("tmpfs", False),
        ("overlay", False),
        ("zfs", False),
        ("fusectl", False),
        ("unknown", False),
    ],
)
def test_needs_polling(fstype: str, polled: bool) -> None:
    assert needs_polling(fstype) is polled


def test_mountinfo_escapes_and_the_longest_mount_point(tmp_path: Path) -> None:
    (tmp_path / "my disk" / "sub").mkdir(parents=True)
    (tmp_path / "my diskette").mkdir()
    (tmp_path / "back\\slash").mkdir()
    base = str(tmp_path).replace(" ", "\\040")
    table = tmp_path / "mountinfo"
    table.write_text(
        "20 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        f"30 20 0:40 / {base}/my\\040disk rw shared:2 - fuse.grpcfuse grpcfuse rw\n"
        f"31 20 0:41 / {base}/back\\134slash rw - nfs4 server:/export rw\n"
        f"32 30 0:42 / {base}/my\\040disk/sub\\011tab rw - tmpfs tmpfs rw\n"
    )
    assert filesystem_type(str(tmp_path / "my disk" / "sub"), str(table)) == "fuse.grpcfuse"
    assert filesystem_type(str(tmp_path / "my disk"), str(table)) == "fuse.grpcfuse"
    assert filesystem_type(str(tmp_path / "my diskette"), str(table)) == "ext4"
    assert filesystem_type(str(tmp_path / "back\\slash"), str(table)) == "nfs4"
    assert filesystem_type(str(tmp_path / "my disk" / "sub\ttab"), str(table)) == "tmpfs"
    assert filesystem_type("/", str(tmp_path / "missing")) == "unknown"


# -- every diff replays into the new tree ------------------------------------------------------


def replay(old: Snapshot, new: Snapshot, events: list[Event]) -> Snapshot:
    """What the destination holds after the events, applied in order as the coalescer and the
    transfers do: each event must make sense where it comes (a rename's source exists, ...)."""
    tree = dict(old)

    def at_and_below(path: str) -> list[str]:
        return [other for other in tree if is_within(other, path)]

    def is_dir(entry: tuple[int, ...]) -> bool:
        return stat.S_ISDIR(entry[0])

    kinds = [event.kind for event in events]
    assert kinds[: kinds.count(MV)] == [MV] * kinds.count(MV), f"renames first: {events}"
    for event in events:
        path = event.path
        if event.kind is MV:
            target = event.target
            assert target is not None
            assert path in tree, f"{event}: no such source"
            assert event.is_dir == is_dir(tree[path]), event
            assert not is_within(target, path) and not is_within(path, target), event
            assert is_dir(tree.get(parent_of(target), (0,))), f"{event}: no target directory"
            for replaced in at_and_below(target):
                del tree[replaced]
            for moving in at_and_below(path):
                tree[rebase(moving, path, target)] = tree.pop(moving)
        elif event.kind is D:
            assert path in tree and event.is_dir == is_dir(tree[path]), event
            for deleted in at_and_below(path):
                del tree[deleted]
        elif event.kind is C:
            assert path not in tree, f"{event}: already there"
            assert is_dir(tree.get(parent_of(path), (0,))), f"{event}: no directory"
            assert event.is_dir == is_dir(new[path]) and event.tree == event.is_dir, event
            for created in (
                [other for other in new if is_within(other, path)] if event.tree else [path]
            ):
                tree[created] = new[created]
        else:
            assert path in tree and event.is_dir == is_dir(new[path]), event
            assert event.kind is A or not event.is_dir, event
            tree[path] = new[path]
    return tree


def comparable(snapshot: Snapshot) -> Snapshot:
    # Only a directory's size may differ unreported: it changes with its mtime, which is.
    return {
        path: (kind, 0 if stat.S_ISDIR(kind) else size, mtime, inode, permissions)
        for path, (kind, size, mtime, inode, permissions) in snapshot.items()
    }


def assert_replays(watcher: PollWatcher, change: Callable[[], object]) -> list[Event]:
    scanned_ns = time.time_ns()
    old = watcher.scan()
    change()
    new = watcher.scan()
    events = diff(old, new, scanned_ns)
    assert comparable(replay(old, new, events)) == comparable(new), events
    return events


def test_swapped_files_and_directories_replay(src: Path) -> None:
    watcher = PollWatcher(str(src))
    (src / "e").mkdir()
    (src / "e" / "x").write_text("x")

    def swap(one: str, other: str) -> None:
        (src / one).rename(src / "tmp")
        (src / other).rename(src / one)
        (src / "tmp").rename(src / other)

    events = assert_replays(watcher, lambda: swap("d", "e"))
    assert Event(MV, "e", True, target="d") in events  # one rename, one copy: no temporary
    (src / "other").write_text("other")
    assert_replays(watcher, lambda: swap("file", "other"))


def test_moved_out_then_directory_removed_replays(src: Path) -> None:
    watcher = PollWatcher(str(src))

    def change() -> None:
        (src / "d" / "sub").rename(src / "sub")
        shutil.rmtree(src / "d")

    events = assert_replays(watcher, change)
    assert without_directory_times(events) == [
        Event(MV, "d/sub", True, target="sub"),
        Event(D, "d", True),
    ]
    # Back in the place of its old directory: no rename can say that (the destination would
    # need a temporary name), so it is told as changes, which replay just as well.
    assert_replays(watcher, lambda: (src / "sub").rename(src / "d"))
    shutil.rmtree(src / "d")
    (src / "d" / "sub").mkdir(parents=True)

    def into_the_place_of_its_directory() -> None:
        (src / "d" / "sub").rename(src / "sub")
        (src / "d").rmdir()
        (src / "sub").rename(src / "d")

    assert_replays(watcher, into_the_place_of_its_directory)


def test_renamed_over_existing_file_replays(src: Path) -> None:
    watcher = PollWatcher(str(src))
    (src / "file.swp").write_text("saved")
    os.utime(src / "file.swp", ns=(SETTLED_NS, SETTLED_NS))
    events = assert_replays(watcher, lambda: (src / "file.swp").replace(src / "file"))
    assert without_directory_times(events) == [Event(MV, "file.swp", target="file")]


def test_renames_in_and_of_renamed_directories_replay(src: Path) -> None:
    watcher = PollWatcher(str(src))

    def change() -> None:
        (src / "d").rename(src / "e")
        (src / "e" / "sub").rename(src / "sub2")
        (src / "e" / "g").rename(src / "sub2" / "g")
        (src / "file").rename(src / "e" / "file")

    assert_replays(watcher, change)


@pytest.mark.parametrize("seed", range(12))
def test_random_changes_replay(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "src"
    root.mkdir()
    watcher = PollWatcher(str(root))

    def some_changes() -> None:
        for _ in range(rng.randint(1, 6)):
            random_change(root, rng)

    for _ in range(40):
        assert_replays(watcher, some_changes)


def random_change(root: Path, rng: random.Random) -> None:
    """One of the things users and tools do, on a few short names so that they collide."""
    entries = sorted(root.rglob("*"))
    directories = [root, *(path for path in entries if path.is_dir() and not path.is_symlink())]
    somewhere = rng.choice(directories) / rng.choice("abc")
    existing = rng.choice(entries) if entries else None
    action = rng.choice(["write", "write", "mkdir", "rename", "rename", "remove", "chmod", "other"])
    try:
        if action == "write" and not somewhere.is_dir():
            if rng.random() < 0.3:  # a new inode, as editors that write a copy give
                somewhere.unlink(missing_ok=True)
            somewhere.write_bytes(b"x" * rng.randint(0, 2))
        elif action == "mkdir" and len(somewhere.relative_to(root).parts) < 4:
            somewhere.mkdir()
        elif action == "rename" and existing is not None:
            existing.rename(somewhere)
        elif action == "remove" and existing is not None:
            if existing.is_dir() and not existing.is_symlink():
                shutil.rmtree(existing)
            else:
                existing.unlink()
        elif action == "chmod" and existing is not None and not existing.is_symlink():
            existing.chmod(rng.choice([0o755, 0o700] if existing.is_dir() else [0o644, 0o600]))
        elif action == "other":
            if rng.random() < 0.5:
                somewhere.symlink_to("a")
            elif existing is not None and not existing.is_symlink():
                os.utime(existing, ns=(0, rng.randint(1, 3) * 1_000_000_000))
    except OSError:
        pass  # a name taken, a directory not empty or renamed into itself: nothing happened
