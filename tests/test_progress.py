"""The initial sync's progress lines: the total is what the watcher found, else counted beside
the sync, never before it."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.progress import PairProgress, ProgressReporter, count_entries
from pylsyncd.watch.choice import entries_found
from pylsyncd.watch.hybrid import HybridWatcher
from pylsyncd.watch.inotify import InotifyWatcher
from pylsyncd.watch.poll import PollWatcher


def tree(root: Path, directories: int, files: int) -> int:
    for d in range(directories):
        (root / f"d{d}").mkdir(parents=True)
        for f in range(files):
            (root / f"d{d}" / f"f{f}").write_text("x")
    return directories * (files + 1)


class GatedExcludes(ExcludeRules):
    """Excludes whose every answer waits for `gate`: a count that cannot end before it opens."""

    def __init__(self, patterns: tuple[str, ...], gate: threading.Event) -> None:
        super().__init__(patterns)
        self.gate = gate

    def excludes(self, path: str, is_dir: bool) -> bool:
        self.gate.wait(10)
        return super().excludes(path, is_dir)


def test_the_total_is_counted_beside_the_sync(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entries = tree(tmp_path, 5, 9)
    shown = PairProgress()
    counting = threading.Event()
    reporter = ProgressReporter("pair", str(tmp_path), GatedExcludes(("f0",), counting), shown)
    caplog.set_level(logging.INFO, logger="pylsyncd")
    reporter.next_report = 0.0  # the sync has lasted long enough for a line
    reporter(7)  # returns at once: the count runs in a thread of its own
    counting.set()  # held until the first line is out, which therefore has no total
    deadline = time.monotonic() + 10
    while reporter.total is None and time.monotonic() < deadline:
        time.sleep(0.01)
    reporter.close()
    reporter.next_report = 0.0
    reporter(20)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("pair: initial sync: 7 entries, ")
    assert lines[1].startswith(f"pair: initial sync: 20 of {entries - 5} entries, ")
    assert shown.sync_total == entries - 5 and shown.sync_entries == 20
    assert not [t for t in threading.enumerate() if t.name == "count pair"]


def test_a_count_stops_when_the_sync_is_over(tmp_path: Path) -> None:
    tree(tmp_path, 3, 1)
    stop = threading.Event()
    assert count_entries(str(tmp_path), ExcludeRules(()), stop) == 6
    stop.set()
    assert count_entries(str(tmp_path), ExcludeRules(()), stop) is None


def test_a_short_sync_never_counts(tmp_path: Path) -> None:
    reporter = ProgressReporter("pair", str(tmp_path), ExcludeRules(()))
    reporter(3)  # before the first line is due
    reporter.close()
    assert reporter.total is None


def test_a_total_the_watcher_found_is_shown_at_once_and_nothing_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shown = PairProgress()
    reporter = ProgressReporter("pair", str(tmp_path), ExcludeRules(()), shown, found=lambda: 1000)
    assert shown.sync_total == 1000
    caplog.set_level(logging.INFO, logger="pylsyncd")
    reporter.next_report = 0.0
    reporter(7)
    reporter.close()
    assert caplog.records[0].getMessage().startswith("pair: initial sync: 7 of 1000 entries, ")
    assert reporter._counter is None  # no walk of its own took the sync's time


@pytest.mark.parametrize("kind", ["inotify", "poll", "hybrid"])
def test_each_watcher_finds_the_entries_a_count_would(tmp_path: Path, kind: str) -> None:
    """What a watcher's first walk found is the progress total: the same as `count_entries`
    on the same tree with the same excludes (an excluded directory's contents not counted)."""
    tree(tmp_path, 4, 3)
    (tmp_path / "d1" / "deeper").mkdir()
    (tmp_path / "d1" / "deeper" / "f").write_text("x")
    (tmp_path / "link").symlink_to("d0")
    excludes = ExcludeRules(("f0", "d2/"))
    expected = count_entries(str(tmp_path), excludes)
    # 4 directories of 3 files, deeper/ and its file, the link; less d2/ and its 3 files, 3 f0
    assert expected == 4 + 4 * 3 + 2 + 1 - 4 - 3
    root = str(tmp_path)
    watchers = {
        "inotify": lambda: InotifyWatcher(root, excludes.excludes),
        "poll": lambda: PollWatcher(root, excludes.excludes),
        "hybrid": lambda: HybridWatcher(
            InotifyWatcher(root, excludes.excludes), PollWatcher(root, excludes.excludes), root
        ),
    }
    watcher = watchers[kind]()
    try:
        watcher.start()
        assert entries_found(watcher) == expected
    finally:
        watcher.close()
