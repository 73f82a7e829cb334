"""The inotify watcher keeps up with a storm faster than it turns records into events: the
kernel's queue is emptied between every two buffers, so only its own bound makes an overflow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylsyncd.events import Event, EventKind
from pylsyncd.watch import inotify_backlog
from pylsyncd.watch.inotify import InotifyWatcher

QUEUE_LIMIT = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())


def storm_while_processing(
    monkeypatch: pytest.MonkeyPatch, root: Path, rounds: int, files_per_round: int
) -> None:
    """Each of the watcher's first `rounds` buffers, while it is turned into events, makes
    `files_per_round` new files: the storm outruns the watcher, deterministically."""
    process = InotifyWatcher._process
    made = [0]

    def slow_process(self: InotifyWatcher, data: bytes, *args: object) -> None:
        if made[0] < rounds * files_per_round:
            for _ in range(files_per_round):
                os.close(os.open(root / f"f{made[0]}", os.O_CREAT | os.O_WRONLY, 0o644))
                made[0] += 1
        process(self, data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(InotifyWatcher, "_process", slow_process)


def read_all(watcher: InotifyWatcher, expected_files: int) -> list[Event]:
    """Read until every file has been reported created, or an overflow came."""
    events: list[Event] = []
    created: set[str] = set()
    for _ in range(100_000):
        batch = watcher.read(5.0)
        assert batch, f"no more events after {len(created)} of {expected_files} files"
        events += batch
        created.update(e.path for e in batch if e.kind is EventKind.CREATED)
        if len(created) >= expected_files or any(e.kind is EventKind.OVERFLOW for e in batch):
            return events
    raise AssertionError("never done")


def test_a_storm_longer_than_the_kernel_queue_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each round queues two records a file (created, closed after writing): two thirds of the
    # kernel's queue per round, more than one buffer turns into events, so without emptying
    # the queue between buffers it overflows within a few rounds.
    rounds, per_round = 6, QUEUE_LIMIT // 3
    watcher = InotifyWatcher(str(tmp_path))
    watcher.start()
    try:
        (tmp_path / "start").touch()  # the first buffer, which starts the storm
        storm_while_processing(monkeypatch, tmp_path, rounds, per_round)
        events = read_all(watcher, rounds * per_round + 1)
    finally:
        watcher.close()
    assert not [e for e in events if e.kind is EventKind.OVERFLOW]
    created = {e.path for e in events if e.kind is EventKind.CREATED}
    assert created == {"start", *(f"f{i}" for i in range(rounds * per_round))}


def test_past_its_bound_the_backlog_is_an_overflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inotify_backlog, "_BACKLOG_LIMIT", 64 * 1024)  # a few thousand records
    watcher = InotifyWatcher(str(tmp_path))
    watcher.start()
    try:
        (tmp_path / "start").touch()
        storm_while_processing(monkeypatch, tmp_path, 1, 5_000)
        events = read_all(watcher, 5_001)
    finally:
        watcher.close()
    assert Event(EventKind.OVERFLOW, "") in events
