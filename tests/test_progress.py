"""The initial sync's progress lines: the total is counted beside the sync, never before it."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.progress import PairProgress, ProgressReporter, count_entries


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
