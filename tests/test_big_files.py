"""Big files cost what changed: appends write their tail, rewrites the pages that differ.

The direct backend against real files: on the test's own filesystem (ext4 or tmpfs, which cannot
clone), files at least IN_PLACE_SIZE are patched in place and smaller ones rewritten whole; on
an XFS image mounted for the test, every file is patched in a clone renamed into place.
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import assert_trees_equal
from pylsyncd.coalesce import Batch, Change, ChangeKind, Move
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.target_queue import Queued, TargetQueue
from pylsyncd.transfer import Outcome, Transfer, file_writer
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.hot_files import HOT_FILE_SHARE, VERIFY_AFTER, VERIFY_WITHIN, HotFiles
from pylsyncd.transfer.rsync import RsyncTransfer

MIB = 1 << 20
PAGE = 4096
SIZE = 4 * MIB  # above the 1 MiB where comparing starts to pay, small enough to be quick


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def mirror(src: Path, dst: Path, clock: Clock, *, in_place_size: int = MIB) -> DirectTransfer:
    transfer = DirectTransfer(
        str(src), str(dst), ExcludeRules(()), delete=True, in_place_size=in_place_size
    )
    transfer.state.hot_files = HotFiles(clock)
    assert transfer.full_sync(delete=True).ok
    clock.now += 10  # the copies of the full sync are paid back
    return transfer


def sync(transfer: Transfer, *paths: str, final: bool = False) -> Outcome:
    outcome = transfer.apply(
        Batch((), tuple(Change(path, ChangeKind.SYNC) for path in paths)), final=final
    )
    assert outcome.ok, outcome.error
    return outcome


def big_file(path: Path, size: int = SIZE, seed: int = 0) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def change_inside_and_append(path: Path) -> None:
    """What looks like an append (first and last old pages unchanged) and is not only that."""
    with open(path, "r+b") as f:
        f.seek(SIZE // 2)
        f.write(b"changed in the middle")
        f.seek(0, os.SEEK_END)
        f.write(b"and appended")


def test_an_append_writes_only_the_new_tail_in_place(dirs: tuple[Path, Path], clock: Clock) -> None:
    src, dst = dirs
    big_file(src / "log")
    transfer = mirror(src, dst, clock)
    inode = os.stat(dst / "log").st_ino
    written = 0
    for line in range(20):
        with open(src / "log", "ab") as log:
            log.write(f"line {line}\n".encode() * 100)
        clock.now += 10  # past any pay-back time: this test is about bytes
        written += sync(transfer, "log").bytes
    appended = os.stat(src / "log").st_size - SIZE
    assert written == appended
    assert os.stat(dst / "log").st_ino == inode  # patched where it is, not rewritten
    assert_trees_equal(src, dst)


def test_a_file_patched_in_place_takes_its_new_mode_and_owner_and_keeps_its_directory_times(
    dirs: tuple[Path, Path], clock: Clock
) -> None:
    src, dst = dirs
    (src / "d").mkdir()
    big_file(src / "d" / "log")
    transfer = mirror(src, dst, clock)
    for step in range(3):
        with open(src / "d" / "log", "ab") as log:
            log.write(b"more\n")
        if step == 1:  # a change of mode and owner with the append; else content alone
            os.chmod(src / "d" / "log", 0o4750)
            os.chown(src / "d" / "log", 4321, 8765)
            os.chmod(src / "d" / "log", 0o4750)  # the chown cleared the set-user-ID bit
        clock.now += 10
        sync(transfer, "d/log")
        copy = os.stat(dst / "d" / "log")
        owner = (4321, 8765) if step else (os.getuid(), os.getgid())
        assert (copy.st_uid, copy.st_gid) == owner, step
        assert_trees_equal(src, dst)  # modes and times, the directory's included


def test_the_first_clone_tried_where_none_can_be_made_leaves_the_directory_times_right(
    dirs: tuple[Path, Path], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a filesystem can clone is learnt by trying, with a temporary file made and
    removed beside the file: on ext4 or tmpfs, that changed the directory's mtime."""
    src, dst = dirs
    (src / "d").mkdir()
    big_file(src / "d" / "db")
    transfer = mirror(src, dst, clock)
    monkeypatch.setattr(file_writer, "_CANNOT_CLONE", set())  # not learnt yet in this process
    with open(src / "d" / "db", "r+b") as db:
        db.seek(3 * PAGE)
        db.write(os.urandom(PAGE))
    inode = os.stat(dst / "d" / "db").st_ino
    assert sync(transfer, "d/db").bytes == PAGE
    if os.stat(dst / "d" / "db").st_ino == inode:  # patched in place: no clone could be made
        assert file_writer._CANNOT_CLONE
    assert_trees_equal(src, dst)


def test_an_in_place_rewrite_writes_only_the_pages_that_differ(
    dirs: tuple[Path, Path], clock: Clock
) -> None:
    src, dst = dirs
    big_file(src / "db")
    transfer = mirror(src, dst, clock)
    changed = 0
    with open(src / "db", "r+b") as db:
        for offset in random.Random(1).sample(range(0, SIZE, PAGE), 40):
            db.seek(offset)
            db.write(os.urandom(PAGE))
            changed += PAGE
    outcome = sync(transfer, "db")
    assert 0 < outcome.bytes <= changed  # page-aligned writes: exactly what changed, at most
    assert_trees_equal(src, dst)


def test_a_file_rewritten_longer_is_not_taken_for_an_append(
    dirs: tuple[Path, Path], clock: Clock
) -> None:
    """New content, longer than the old: its first bytes differ, so it is compared whole."""
    src, dst = dirs
    big_file(src / "f", seed=1)
    transfer = mirror(src, dst, clock)
    big_file(src / "f", SIZE + MIB, seed=2)
    outcome = sync(transfer, "f")
    assert not outcome.deferred  # every byte was compared: nothing left to check later
    assert_trees_equal(src, dst)


def test_a_change_inside_a_growing_file_is_caught_once_it_is_quiet(
    dirs: tuple[Path, Path], clock: Clock
) -> None:
    """A write in the middle and an append at once look like an append (first and last old
    bytes unchanged): the tail is written now, and the whole file compared VERIFY_AFTER later."""
    src, dst = dirs
    big_file(src / "f")
    transfer = mirror(src, dst, clock)
    change_inside_and_append(src / "f")
    outcome = sync(transfer, "f")
    assert outcome.bytes == len(b"and appended")
    assert outcome.deferred.changes == (Change("f", ChangeKind.SYNC),)
    assert outcome.deferred_until == clock.now + VERIFY_AFTER
    assert (dst / "f").read_bytes() != (src / "f").read_bytes()  # not yet
    clock.now = outcome.deferred_until
    later = sync(transfer, *(change.path for change in outcome.deferred.changes))
    assert later.bytes == PAGE and not later.deferred  # the one page that differs
    assert_trees_equal(src, dst)


def test_a_file_that_never_stops_growing_is_compared_all_the_same(
    dirs: tuple[Path, Path], clock: Clock
) -> None:
    """Appended every 0.5 s, it is never quiet for VERIFY_AFTER; within VERIFY_WITHIN of its
    first tail-only update it is compared whole anyway, and the change in its middle arrives."""
    src, dst = dirs
    big_file(src / "log")
    transfer = mirror(src, dst, clock)
    with open(src / "log", "r+b") as log:
        log.seek(SIZE // 2)
        log.write(b"changed in the middle")
    started = clock.now
    while (dst / "log").read_bytes() != (src / "log").read_bytes():
        assert clock.now <= started + VERIFY_WITHIN + 1, "never compared whole"
        with open(src / "log", "ab") as log:
            log.write(b"one more line\n")
        sync(transfer, "log")  # each append's event; the held-back comparison names it too
        clock.now += 0.5
    assert clock.now >= started + VERIFY_WITHIN  # by the rule, not by luck


def test_a_second_event_of_one_write_compares_nothing_until_the_comparison_is_due(
    dirs: tuple[Path, Path], clock: Clock
) -> None:
    """An append's close event after its modify event finds the source as it was written from:
    nothing is read or written. The whole comparison held back still comes, and it is what
    would catch a change stat cannot show (here: the destination's copy spoilt behind its back)."""
    src, dst = dirs
    big_file(src / "log")
    transfer = mirror(src, dst, clock)
    with open(src / "log", "ab") as log:
        log.write(b"appended")
    assert sync(transfer, "log").bytes == len(b"appended")
    written = os.stat(dst / "log")
    with open(dst / "log", "r+b") as spoilt:
        spoilt.seek(SIZE // 2)
        spoilt.write(b"X")
    os.utime(dst / "log", ns=(written.st_atime_ns, written.st_mtime_ns))  # stat shows nothing
    again = sync(transfer, "log")
    assert again.bytes == 0
    assert again.deferred.changes == (Change("log", ChangeKind.SYNC),)
    clock.now = again.deferred_until
    assert sync(transfer, "log").bytes == PAGE  # compared whole: the spoilt page repaired
    assert_trees_equal(src, dst)


@pytest.mark.parametrize("backend", ["direct", "rsync"])
def test_the_final_batch_compares_an_appended_file_at_once(
    dirs: tuple[Path, Path], clock: Clock, backend: str
) -> None:
    src, dst = dirs
    big_file(src / "f")
    transfer = rsync_mirror(src, dst, clock) if backend == "rsync" else mirror(src, dst, clock)
    change_inside_and_append(src / "f")
    outcome = sync(transfer, "f", final=True)
    assert not outcome.deferred
    assert_trees_equal(src, dst)


def test_a_file_below_the_in_place_size_is_rewritten_whole_through_a_rename(
    dirs: tuple[Path, Path], clock: Clock
) -> None:
    """Below IN_PLACE_SIZE a reader of the destination never sees a half-written file."""
    src, dst = dirs
    big_file(src / "f")
    transfer = mirror(src, dst, clock, in_place_size=2 * SIZE)
    inode = os.stat(dst / "f").st_ino
    with open(src / "f", "ab") as f:
        f.write(b"more")
    outcome = sync(transfer, "f")
    assert outcome.bytes == SIZE + 4
    assert os.stat(dst / "f").st_ino != inode
    assert_trees_equal(src, dst)


def test_a_hot_file_waits_until_its_last_copy_is_paid_back(
    dirs: tuple[Path, Path], clock: Clock
) -> None:
    src, dst = dirs
    big_file(src / "f")
    transfer = mirror(src, dst, clock)
    transfer.state.hot_files.copied("f", 0.2, compared=True)  # as if its last copy cost 0.2 s
    (src / "f").write_bytes(b"rewritten")
    outcome = sync(transfer, "f")
    assert outcome.deferred.changes == (Change("f", ChangeKind.SYNC),)
    assert outcome.deferred_until == pytest.approx(clock.now + 0.2 * (1 / HOT_FILE_SHARE - 1))
    assert outcome.copied == 0
    clock.now = outcome.deferred_until
    assert sync(transfer, "f").copied == 1
    assert_trees_equal(src, dst)


def test_an_appended_tail_is_never_held_back_but_a_rewrite_is(
    dirs: tuple[Path, Path], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holding back the next tail would save no work (each appended byte is copied once), only
    delay it: a file written at full speed would arrive a copy's time late. Every timed copy
    here costs a second of CPU, so a copy that were paid back would defer the next."""
    ticks = iter(range(0, 100_000, 100))
    monkeypatch.setattr("pylsyncd.transfer.file_copy.time.thread_time", lambda: next(ticks))
    src, dst = dirs
    big_file(src / "log")
    transfer = mirror(src, dst, clock)
    clock.now += 1000  # past the pay-back of the first copy
    for seed in range(3):
        with open(src / "log", "ab") as log:
            log.write(random.Random(seed).randbytes(MIB))
        outcome = sync(transfer, "log")
        assert (outcome.copied, outcome.bytes) == (1, MIB)
        # What waits is the whole comparison held back for an append, not the next copy.
        assert outcome.deferred_until == pytest.approx(clock.now + VERIFY_AFTER)
    big_file(src / "log", size=os.stat(src / "log").st_size, seed=9)  # rewritten: compared
    assert sync(transfer, "log").copied == 1
    big_file(src / "log", size=os.stat(src / "log").st_size, seed=10)
    outcome = sync(transfer, "log")
    assert outcome.copied == 0
    assert outcome.deferred_until == pytest.approx(clock.now + 100 * (1 / HOT_FILE_SHARE - 1))
    clock.now += 1000
    sync(transfer, "log", final=True)
    assert_trees_equal(src, dst)


def test_hot_files_pay_back_only_copies_that_cost(clock: Clock) -> None:
    hot = HotFiles(clock)
    hot.copied("cheap", 0.0001, compared=True)
    assert hot.wait_until("cheap") is None
    hot.copied("dear", 0.1, compared=True)
    assert hot.wait_until("dear") == clock.now + 0.1 * (1 / HOT_FILE_SHARE - 1)
    clock.now += 1
    assert hot.wait_until("dear") is None


def test_hot_files_forget_a_file_an_hour_after_its_last_copy(dirs: tuple[Path, Path]) -> None:
    """A big file deleted or renamed away leaves entries behind: they go within the hour."""
    src, _ = dirs
    big_file(src / "f")
    written_from = os.stat(src / "f")
    clock = Clock()
    hot = HotFiles(clock)
    hot.copied("f", 0.1, compared=True, source=written_from)
    assert hot.unchanged_since_written("f", written_from)
    assert hot.wait_until("f") is not None
    clock.now += 3601
    hot.expire()
    assert not hot.unchanged_since_written("f", written_from)
    assert hot.wait_until("f") is None


def test_a_rename_carries_a_pending_comparison_to_the_new_name(clock: Clock) -> None:
    hot = HotFiles(clock)
    due = hot.copied("logs/app.log", 0.0, compared=False)
    assert due == clock.now + VERIFY_AFTER
    assert hot.moved("logs", "old-logs") == [("old-logs/app.log", due)]
    assert hot.comparison_due("old-logs/app.log") == due
    assert hot.comparison_due("logs/app.log") is None


def test_held_back_changes_are_taken_when_due_and_never_merged_into_renames() -> None:
    queue = TargetQueue(limit=100)
    held = Batch((), (Change("f", ChangeKind.SYNC),))
    queue.defer(held, until=0.0)  # due at once
    assert len(queue) == 1
    assert queue.take().gathered.batch.changes == held.changes
    queue.defer(held, until=float("inf"))
    assert queue.take().gathered.batch.changes == ()  # not due: it stays
    assert queue.take(everything=True).gathered.batch.changes == held.changes
    renamed = Batch((Move("a", "b", is_dir=False),), ())
    queue.defer(held, until=0.0)
    queue.put(Queued(renamed, 2, 0.0))
    assert queue.take().gathered.batch == renamed  # the rename goes alone, replayed as one
    assert queue.take().gathered.batch.changes == held.changes


# -- a filesystem that clones ------------------------------------------------------------------


@pytest.fixture
def xfs(tmp_path: Path) -> Iterator[Path]:
    """An XFS filesystem in a file, loop-mounted: FICLONE works there."""
    image, mount = tmp_path / "xfs.img", tmp_path / "xfs"
    mount.mkdir()
    with open(image, "wb") as file:
        file.truncate(320 * MIB)  # XFS's smallest is 300 MiB
    subprocess.run(["mkfs.xfs", "-q", "-f", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_on_a_filesystem_that_clones_a_big_file_is_patched_in_a_clone_renamed_into_place(
    xfs: Path, clock: Clock
) -> None:
    src, dst = xfs / "src", xfs / "dst"
    src.mkdir()
    dst.mkdir()
    big_file(src / "db")
    transfer = mirror(src, dst, clock, in_place_size=1 << 40)  # never in place: cloned
    inode = os.stat(dst / "db").st_ino
    with open(src / "db", "r+b") as db:
        db.seek(5 * PAGE)
        db.write(os.urandom(PAGE))
    outcome = sync(transfer, "db")
    assert outcome.bytes == PAGE
    assert os.stat(dst / "db").st_ino != inode  # a new file, renamed over: never half-written
    assert_trees_equal(src, dst)


# -- the rsync backend -------------------------------------------------------------------------


def written_by_children() -> int:
    """Bytes written by this process's reaped children (rsync), from /proc/self/io: a reaped
    child's counts are added to its parent's."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"])


def test_rsync_updates_a_big_file_in_place_by_its_delta(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    big_file(src / "log")
    transfer = RsyncTransfer(str(src), str(dst), ExcludeRules(()), delete=True, in_place_size=MIB)
    assert transfer.full_sync(delete=True).ok
    inode = os.stat(dst / "log").st_ino
    with open(src / "log", "r+b") as log:  # a page rewritten in the middle
        log.seek(SIZE // 2)
        log.write(b"x" * PAGE)
    before = written_by_children()
    assert transfer.apply(Batch((), (Change("log", ChangeKind.SYNC),))).ok
    # Whole, it would be at least twice the file: through rsync's pipe, then to disk.
    assert written_by_children() - before < SIZE // 4
    assert os.stat(dst / "log").st_ino == inode
    assert_trees_equal(src, dst)


def rsync_mirror(src: Path, dst: Path, clock: Clock) -> RsyncTransfer:
    transfer = RsyncTransfer(str(src), str(dst), ExcludeRules(()), delete=True, in_place_size=MIB)
    transfer.hot_files = HotFiles(clock)
    assert transfer.full_sync(delete=True).ok
    return transfer


def test_rsync_sends_an_append_by_its_tail_and_compares_the_file_once_quiet(
    dirs: tuple[Path, Path], clock: Clock
) -> None:
    """`--append`: no block checksums of the whole file through rsync's pipes at every batch
    (about 100 KB for 64 MiB). What looked like an append and also changed the middle is caught
    by the whole comparison held back for it."""
    src, dst = dirs
    big_file(src / "log")
    transfer = rsync_mirror(src, dst, clock)
    with open(src / "log", "ab") as log:
        log.write(b"x" * PAGE)
    before = written_by_children()
    outcome = transfer.apply(Batch((), (Change("log", ChangeKind.SYNC),)))
    assert outcome.ok
    # The tail through the pipe and to disk, and rsync's own few kilobytes of talk.
    assert written_by_children() - before < 4 * PAGE + 16 * 1024
    assert_trees_equal(src, dst)
    assert outcome.deferred.changes == (Change("log", ChangeKind.SYNC),)
    change_inside_and_append(src / "log")
    assert transfer.apply(Batch((), (Change("log", ChangeKind.SYNC),))).ok
    assert (src / "log").read_bytes() != (dst / "log").read_bytes()  # the tail alone so far
    clock.now += VERIFY_AFTER
    again = transfer.apply(Batch((), (Change("log", ChangeKind.SYNC),)))
    assert again.ok and not again.deferred
    assert_trees_equal(src, dst)


def test_rsync_rewrites_a_small_file_whole(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    big_file(src / "f")
    transfer = RsyncTransfer(
        str(src), str(dst), ExcludeRules(()), delete=True, in_place_size=2 * SIZE
    )
    assert transfer.full_sync(delete=True).ok
    inode = os.stat(dst / "f").st_ino
    with open(src / "f", "ab") as f:
        f.write(b"x")
    assert transfer.apply(Batch((), (Change("f", ChangeKind.SYNC),))).ok
    assert os.stat(dst / "f").st_ino != inode  # a temporary file renamed over: never half-written
    assert_trees_equal(src, dst)


def test_two_names_of_an_appended_file_are_compared_once_then_left_alone(
    dirs: tuple[Path, Path], clock: Clock
) -> None:
    """Each name's copy is compared whole once after the append; then nothing more is due.
    Before, the check of one name made the other's copy schedule a comparison again: two
    names of one big hard-linked log were compared once a second, forever."""
    src, dst = dirs
    big_file(src / "log")
    os.link(src / "log", src / "other-name")
    transfer = mirror(src, dst, clock)
    with open(src / "log", "ab") as log:
        log.write(b"appended\n")
    outcome = sync(transfer, "log")
    rounds = 0
    while outcome.deferred:
        rounds += 1
        assert rounds <= 4, f"comparisons keep coming: {outcome.deferred}"
        clock.now = max(clock.now, outcome.deferred_until) + 0.001
        outcome = transfer.apply(outcome.deferred)
        assert outcome.ok, outcome.error
    assert_trees_equal(src, dst)
