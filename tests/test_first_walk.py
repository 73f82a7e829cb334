"""The initial sync beside the source watcher's first walk: a directory is read only once it is
watched, so a change made after it was read raises an event; a walk that runs out of watches
after the sync began has the whole tree compared again. Ordered by conditions, never by time."""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path

import pytest

from helpers import assert_trees_equal, wait_until, write_file
from pylsyncd.config import PairConfig, WatchMode
from pylsyncd.events import EventKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair import Pair
from pylsyncd.transfer import Outcome, Transfer, helper_sharing
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.rsync import RsyncTransfer
from pylsyncd.watch import inotify
from pylsyncd.watch.choice import WatcherChoice
from pylsyncd.watch.first_walk import SPLIT_WANTED, FirstWalk
from pylsyncd.watch.inotify import InotifyWatcher

DEADLINE = 20.0
SUBTREES = [f"d{n}" for n in range(SPLIT_WANTED)]  # the root's level: the split, at once


def _tree(root: Path) -> list[str]:
    """The tree, and its subtrees in the order a listing gives them (the walk's and the sync's)."""
    for subtree in SUBTREES:
        write_file(root / subtree / "inner" / "f", subtree)
    write_file(root / "top-file", "top")
    with os.scandir(root) as entries:
        return [entry.name for entry in entries if entry.is_dir()]


def _sync_in_thread(transfer: Transfer, walk: FirstWalk) -> tuple[threading.Thread, list[Outcome]]:
    outcomes: list[Outcome] = []
    thread = threading.Thread(
        target=lambda: outcomes.append(transfer.full_sync(delete=True, walk=walk)), daemon=True
    )
    thread.start()
    return thread, outcomes


def _arrived(destination: Path, subtree: str) -> bool:
    return (destination / subtree / "inner" / "f").exists()


def test_with_a_helper_a_subtree_is_synced_once_covered_and_not_before(tmp_path: Path) -> None:
    assert helper_sharing.can_help(), "the helper process needs a second core"
    source, destination = tmp_path / "src", tmp_path / "dst"
    listed = _tree(source)
    destination.mkdir()
    walk = FirstWalk()
    walk.top_watched(1)
    transfer = DirectTransfer(str(source), str(destination), ExcludeRules(()), delete=True)
    thread, outcomes = _sync_in_thread(transfer, walk)
    # The helper takes the subtrees from the end of the list, which the walk covers first.
    walk.cover(listed[-1])
    wait_until(lambda: _arrived(destination, listed[-1]), timeout=DEADLINE)
    assert (destination / "top-file").exists()  # the top, watched, is synced at once
    assert not any(_arrived(destination, subtree) for subtree in listed[:-1])
    walk.finish()
    thread.join(DEADLINE)
    assert outcomes and outcomes[0].ok, outcomes
    assert_trees_equal(source, destination)


class WaitedWalk(FirstWalk):
    """A first walk that tells when the sync first waits for it to go on."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = threading.Event()

    def wait(self, timeout: float) -> None:
        self.waited.set()
        super().wait(timeout)

    def wait_whole(self) -> None:
        self.waited.set()
        super().wait_whole()


@pytest.mark.parametrize("backend", ["direct without a helper", "rsync"])
def test_otherwise_nothing_below_the_top_is_read_before_the_walk_is_over(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, destination = tmp_path / "src", tmp_path / "dst"
    _tree(source)
    destination.mkdir()
    walk = WaitedWalk()
    walk.top_watched(1)
    transfer: Transfer
    if backend == "rsync":
        transfer = RsyncTransfer(str(source), str(destination), ExcludeRules(()), delete=True)
    else:
        monkeypatch.setattr(helper_sharing, "can_help", lambda: False)
        transfer = DirectTransfer(str(source), str(destination), ExcludeRules(()), delete=True)
    for subtree in SUBTREES:
        walk.cover(subtree)  # covered, but only a helper process syncs beside the walk
    thread, outcomes = _sync_in_thread(transfer, walk)
    assert walk.waited.wait(DEADLINE), "the sync never waited for the walk"
    if backend != "rsync":
        assert (destination / "top-file").exists()  # the top, watched, before the wait
    assert not any(_arrived(destination, subtree) for subtree in SUBTREES)
    walk.finish()
    thread.join(DEADLINE)
    assert outcomes and outcomes[0].ok, outcomes
    assert_trees_equal(source, destination)


class RecordingWalk(FirstWalk):
    """A first walk that, as each stage is told, changes the tree where that stage says it is
    watched now: each change must raise an event."""

    def __init__(self, source: Path) -> None:
        super().__init__()
        self.source = source
        self.changed: list[str] = []

    def top_watched(self, levels: int) -> None:
        (self.source / "new-at-the-top").write_text("x")
        self.changed.append("new-at-the-top")
        super().top_watched(levels)

    def cover(self, subtree: str) -> None:
        (self.source / subtree / "inner" / "new").write_text("x")
        self.changed.append(f"{subtree}/inner/new")
        super().cover(subtree)


def test_the_walk_tells_each_stage_only_once_it_is_watched(tmp_path: Path) -> None:
    source = tmp_path / "src"
    listed = _tree(source)
    walk = RecordingWalk(source)
    watcher = InotifyWatcher(str(source))
    try:
        watcher.start(first_walk=walk)
        assert walk.top.is_set() and walk.top_levels == 1
        # From the end of the split level, as the helper process takes them.
        assert walk.changed == ["new-at-the-top"] + [f"{s}/inner/new" for s in listed[::-1]]
        seen: set[str] = set()

        def all_seen() -> bool:
            seen.update(e.path for e in watcher.read(0.1) if e.kind is not EventKind.OVERFLOW)
            return set(walk.changed) <= seen

        wait_until(all_seen, timeout=DEADLINE, message=f"events seen: {seen}")
    finally:
        watcher.close()


def test_out_of_watches_after_the_sync_began_the_whole_tree_is_compared_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert helper_sharing.can_help(), "the helper process needs a second core"
    source, destination = tmp_path / "src", tmp_path / "dst"
    listed = _tree(source)
    destination.mkdir()
    real_add_watch = inotify.inotify_add_watch

    def add_watch(fd: int, path: bytes, mask: int) -> int:
        if path.endswith(f"/{listed[0]}/inner".encode()):  # the walk's last directory
            # The helper has synced the first subtree covered; it changes now, seen by a watch
            # the fallback to polling throws away before it is read.
            wait_until(lambda: _arrived(destination, listed[-1]), timeout=DEADLINE)
            (source / listed[-1] / "inner" / "f").write_text("changed during the walk")
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_add_watch(fd, path, mask)

    monkeypatch.setattr(inotify, "inotify_add_watch", add_watch)
    config = PairConfig(
        source=str(source), destination=str(destination), delay=0.0, watch=WatchMode.INOTIFY
    )
    excludes = ExcludeRules(())
    stopping = threading.Event()
    pair = Pair(
        config,
        transfer=DirectTransfer(str(source), str(destination), excludes, delete=True),
        watcher=InotifyWatcher(str(source)),
        watchers=WatcherChoice("test", config, excludes.excludes),
        excludes=excludes,
        stopping=stopping,
        grace=DEADLINE,
    )
    thread = threading.Thread(target=pair.run, daemon=True)
    caplog.set_level(logging.INFO, logger="pylsyncd")
    thread.start()
    try:
        wait_until(pair.ready.is_set, timeout=DEADLINE, message="the pair never went live")
        assert_trees_equal(source, destination)
        said = [record.getMessage() for record in caplog.records]
        assert any("polling instead" in line for line in said), said
        assert any("comparing the whole tree again" in line for line in said), said
    finally:
        stopping.set()
        pair.wake()
        thread.join(DEADLINE)
