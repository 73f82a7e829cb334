"""A big live batch shares its changed files with a helper process (transfer/batch_sharing.py).

The helper starts when the batch does and the pair's process does not wait for it, so on a
small batch it often has nothing left to do. These tests hold the pair's process back, at its
first set-aside file, until the helper is ready, and at its second until the helper has synced
the batch's last file: conditions on the helper and the destination, not timings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helper_processes import ready, record_helpers
from helpers import assert_trees_equal, wait_until, write_file
from pylsyncd.coalesce import Batch, Change, ChangeKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome, batch_sharing, helper_sharing, replay
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.helper import client as helper_module

DIRS, FILES = 6, 8
OLD_MTIME_NS = 1_500_000_000_123_456_789


@pytest.fixture
def helpers_started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[helper_module.Helper]]:
    started = record_helpers(monkeypatch, helper_sharing, batch_sharing)
    monkeypatch.setattr(batch_sharing, "_PART", 4)  # many parts of a small batch
    yield started
    for helper in started:
        assert helper._process.poll() is not None, "the helper process outlived the batch"


def storm(src: Path, dst: Path) -> tuple[DirectTransfer, Batch]:
    """A mirrored tree, then a storm in the source: new files, files rewritten with the same
    size and mtime (an event says they changed: copied all the same), symlinks, a new
    directory with files, a deletion. Returns the transfer (mirrored) and the storm's batch."""
    for d in range(DIRS):
        for f in range(FILES):
            write_file(src / f"d{d}" / f"old-{f}", f"old {d} {f}", mtime_ns=OLD_MTIME_NS)
    write_file(src / "gone", "deleted by the storm")
    dst.mkdir()
    transfer = DirectTransfer(str(src), str(dst), ExcludeRules(()), delete=True)
    transfer.state.helper_batch_min = 10
    assert transfer.full_sync(delete=True).ok
    changes: list[Change] = []
    for d in range(DIRS):
        for f in range(FILES):
            write_file(src / f"d{d}" / f"old-{f}", f"new {d} {f}", mtime_ns=OLD_MTIME_NS)
            write_file(src / f"d{d}" / f"new-{f}", f"created {d} {f}", mode=0o640)
            changes += [Change(f"d{d}/old-{f}", ChangeKind.SYNC)]
            changes += [Change(f"d{d}/new-{f}", ChangeKind.SYNC)]
        os.symlink("old-0", src / f"d{d}" / "link")
        changes.append(Change(f"d{d}/link", ChangeKind.SYNC))
    write_file(src / "fresh" / "inside", "in a new directory", mode=0o600)
    changes += [Change("fresh", ChangeKind.SYNC), Change("fresh/inside", ChangeKind.SYNC)]
    (src / "gone").unlink()
    changes.append(Change("gone", ChangeKind.DELETE))
    return transfer, Batch((), tuple(sorted(changes, key=lambda c: c.path.split("/"))))


def last_file(src: Path) -> Path:
    return src / f"d{DIRS - 1}" / "old-7"  # the batch's last file: the helper's part


def hold_back(monkeypatch: pytest.MonkeyPatch, *conditions: Callable[[], object]) -> None:
    """Make the pair's process wait before its first parts of set-aside files (not at the
    directories and the deletion it syncs in order), the n-th until `conditions[n]`."""
    original = replay.Replay.change
    waiting = list(conditions)

    def change(run: replay.Replay, change: Change) -> None:
        sharing = run.sharing
        aside = [] if sharing is None else sharing._set_aside
        if waiting and change.path in aside and aside.index(change.path) % batch_sharing._PART == 0:
            wait_until(waiting.pop(0), timeout=30, message="the helper did not get that far")
        original(run, change)

    monkeypatch.setattr(replay.Replay, "change", change)


def copied_by(dst: Path, path: Path, src: Path) -> Callable[[], bool]:
    """Whether the destination holds `path` (a source path) with the source's content."""
    target = dst / path.relative_to(src)
    return lambda: target.exists() and target.read_bytes() == path.read_bytes()


def test_a_big_batch_shares_its_files_with_the_helper_and_the_replica_is_complete(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    helpers_started: list[helper_module.Helper],
    caplog: pytest.LogCaptureFixture,
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    transfer, batch = storm(src, dst)
    niceness: list[int] = []

    def ready_and_nice() -> bool:
        if not ready(helpers_started)():
            return False
        niceness.append(os.getpriority(os.PRIO_PROCESS, helpers_started[0]._process.pid))
        return True

    hold_back(monkeypatch, ready_and_nice, copied_by(dst, last_file(src), src))
    caplog.set_level(logging.DEBUG, logger="pylsyncd.transfer.batch_sharing")
    outcome = transfer.apply(batch)
    assert outcome.ok, outcome.error
    assert len(helpers_started) == 1
    # It takes the core the storm's own program leaves: nicer than the daemon.
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert niceness == [min(ours + batch_sharing.HELPER_NICE, 19)]
    assert_trees_equal(src, dst)
    helped = [r.message for r in caplog.records if "synced by the helper" in r.message]
    assert helped and not helped[0].startswith("batch: 0 "), helped
    # Every entry counted once, whichever process wrote it; the same-size rewrites copied too.
    assert outcome.copied == 2 * DIRS * FILES + 1
    assert (outcome.links, outcome.deleted, outcome.dirs) == (DIRS, 1, 1)


def test_a_file_the_helper_finds_gone_is_remembered_as_vanished(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    helpers_started: list[helper_module.Helper],
) -> None:
    """As this process remembers what it finds gone: a rename reported later may carry it."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    transfer, batch = storm(src, dst)
    gone = last_file(src)

    def helper_ready_then_file_gone() -> bool:
        if not ready(helpers_started)():
            return False
        gone.unlink()  # after the pair's process looked at it, before the helper syncs it
        return True

    vanished = "/".join(gone.relative_to(src).parts)
    # The destination's old copy deleted: the helper has synced it (and will report it).
    hold_back(monkeypatch, helper_ready_then_file_gone, lambda: not (dst / vanished).exists())
    outcome = transfer.apply(batch)
    assert outcome.ok, outcome.error
    assert vanished in transfer.state.vanished
    assert not (dst / vanished).exists()
    assert_trees_equal(src, dst)


def test_a_helper_that_dies_mid_batch_leaves_its_parts_to_the_pair(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    helpers_started: list[helper_module.Helper],
    caplog: pytest.LogCaptureFixture,
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    transfer, batch = storm(src, dst)

    def killed_when_given_work(helper: helper_module.Helper, part: object) -> None:
        helper._process.kill()
        helper._process.wait()
        helper.in_flight += 1

    monkeypatch.setattr(helper_module.Helper, "give_changed", killed_when_given_work)
    hold_back(monkeypatch, ready(helpers_started))
    outcome = transfer.apply(batch)
    assert outcome.ok, outcome.error
    assert_trees_equal(src, dst)
    assert any("syncing its part here" in r.message for r in caplog.records)


def test_a_cancelled_batch_stops_the_helper(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    helpers_started: list[helper_module.Helper],
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    transfer, batch = storm(src, dst)

    def cancel() -> bool:
        transfer.cancel()  # as the shutdown grace running out does, from another thread
        return True

    hold_back(monkeypatch, ready(helpers_started), cancel)
    outcome: Outcome = transfer.apply(batch)
    assert not outcome.ok
    assert "cancelled" in (outcome.error or "")
    assert outcome.failed.changes  # retried by the next attempt
    # The fixture checks that the helper process is gone.


def test_a_batch_below_the_threshold_starts_no_helper(
    tmp_path: Path, helpers_started: list[helper_module.Helper]
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    transfer, batch = storm(src, dst)
    transfer.state.helper_batch_min = len(batch.changes) + 1
    assert transfer.apply(batch).ok
    assert helpers_started == []
    assert_trees_equal(src, dst)


def test_hard_linked_big_and_hot_files_stay_with_the_pair(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    helpers_started: list[helper_module.Helper],
) -> None:
    """Their rules keep state in the pair's process (other names, pay-back, appends)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    transfer, batch = storm(src, dst)
    write_file(src / "big", b"x" * (1 << 20))
    os.link(src / "d0" / "old-0", src / "d0" / "other-name")
    extra = (Change("big", ChangeKind.SYNC), Change("d0/other-name", ChangeKind.SYNC))
    batch = Batch((), tuple(sorted((*batch.changes, *extra), key=lambda c: c.path.split("/"))))
    set_aside: list[str] = []
    original = batch_sharing.BatchSharing.sync_set_aside

    def recorded(sharing: batch_sharing.BatchSharing) -> None:
        set_aside.extend(sharing._set_aside)
        original(sharing)

    monkeypatch.setattr(batch_sharing.BatchSharing, "sync_set_aside", recorded)
    assert transfer.apply(batch).ok
    assert "d0/new-0" in set_aside and "d0/link" in set_aside
    assert not {"big", "d0/other-name", "d0/old-0", "fresh"} & set(set_aside)
    assert_trees_equal(src, dst)
