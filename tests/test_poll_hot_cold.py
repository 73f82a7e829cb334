"""The polling watcher's hot set and cold pass on a real tree, driven by a hand-moved clock: a
tick happens when the test calls read() after moving the clock one interval on, never a sleep."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylsyncd.events import Event, EventKind
from pylsyncd.watch.poll import PollWatcher

C, M, A, D, MV = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.ATTRIB,
    EventKind.DELETED,
    EventKind.MOVED,
)
INTERVAL, PERIOD, HOT_FOR = 1.0, 20.0, 5.0
SETTLED_NS = 1_600_000_000 * 10**9  # long before any scan: an mtime no rescan doubts
DIRECTORIES = [f"a{i}" for i in range(10)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for name in DIRECTORIES:
        (root / name / "sub").mkdir(parents=True)
        for file in (root / name / "f", root / name / "sub" / "g"):
            file.write_text("x")
            os.utime(file, ns=(SETTLED_NS, SETTLED_NS))
    return root


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def watcher(src: Path, clock: FakeClock) -> Iterator[PollWatcher]:
    polling = PollWatcher(str(src), interval=INTERVAL, period=PERIOD, hot_for=HOT_FOR, clock=clock)
    polling.start()
    yield polling
    polling.close()


def tick(watcher: PollWatcher, clock: FakeClock) -> list[Event]:
    """One tick's events, without directories' ATTRIBs (the mtimes entries change)."""
    clock.now += INTERVAL
    events = watcher.read(0)
    return [event for event in events if not (event.kind is A and event.is_dir)]


def ticks_until(watcher: PollWatcher, clock: FakeClock, limit: int) -> tuple[int, list[Event]]:
    """(ticks taken, events) of the first tick that reports something, within `limit` ticks."""
    for count in range(1, limit + 1):
        events = tick(watcher, clock)
        if events:
            return count, events
    pytest.fail(f"nothing reported in {limit} ticks")


def test_a_change_anywhere_is_seen_within_one_period(
    src: Path, watcher: PollWatcher, clock: FakeClock
) -> None:
    for name in ("a2", "a7", "a9"):
        (src / name / "sub" / "g").write_text("changed")
        _, events = ticks_until(watcher, clock, int(PERIOD / INTERVAL) + 1)
        assert events == [Event(M, f"{name}/sub/g")]


def test_where_a_change_was_found_is_hot_then_demoted(
    src: Path, watcher: PollWatcher, clock: FakeClock
) -> None:
    (src / "a4" / "sub" / "g").write_text("first")
    ticks_until(watcher, clock, int(PERIOD / INTERVAL) + 1)
    assert watcher.schedule.hot() == ["a4/sub"]
    for step in range(int(HOT_FOR / INTERVAL) - 1):  # hot: every change seen at the next tick
        (src / "a4" / "sub" / "g").write_text(f"again {step}" * (step + 1))
        assert tick(watcher, clock) == [Event(M, "a4/sub/g")]
    assert watcher.schedule.hot() == ["a4/sub"]  # its last change keeps it hot
    for _ in range(int(HOT_FOR / INTERVAL)):
        tick(watcher, clock)
    assert watcher.schedule.hot() == []  # demoted HOT_FOR after its last change


def test_settle_forwarded_turns_the_hot_set_off_and_slows_to_the_safety_net(
    src: Path, clock: FakeClock
) -> None:
    safety = 4 * PERIOD
    watcher = PollWatcher(
        str(src),
        interval=INTERVAL,
        period=PERIOD,
        hot_for=HOT_FOR,
        clock=clock,
        safety_period=safety,
    )
    watcher.start()
    try:
        watcher.schedule.touch(["a1"])
        watcher.settle(True)
        assert watcher.schedule.hot() == []
        # The cold pass now goes round once per safety period, not per period.
        laps = watcher.schedule.laps
        for _ in range(int(2 * PERIOD / INTERVAL)):
            tick(watcher, clock)
        assert watcher.schedule.laps == laps  # not even one pass in two periods
        for _ in range(int(safety / INTERVAL)):
            tick(watcher, clock)
        assert watcher.schedule.laps > laps
        watcher.schedule.touch(["a1"])
        assert watcher.schedule.hot() == []
        watcher.settle(False)
        assert watcher.schedule.hot() == ["a1"]
        laps = watcher.schedule.laps
        for _ in range(int(PERIOD / INTERVAL) + 1):
            tick(watcher, clock)
        assert watcher.schedule.laps > laps  # back to one pass per period
    finally:
        watcher.close()


def test_a_subdirectory_whose_mtime_changed_is_listed_in_the_same_tick(
    src: Path, watcher: PollWatcher, clock: FakeClock
) -> None:
    watcher.schedule.touch(["a3"])
    (src / "a3" / "sub" / "new").write_text("x")  # sub's mtime changes; sub itself is cold
    assert tick(watcher, clock) == [Event(C, "a3/sub/new")]


def test_a_rename_seen_at_its_target_first_is_a_rename(
    src: Path, watcher: PollWatcher, clock: FakeClock
) -> None:
    watcher.schedule.touch(["a6"])  # the target is hot, the source cold
    # Past the root, whose listing would show a1's mtime changed and have a1 listed at once:
    # only looking the arrival's inode up in the table finds where it came from.
    assert tick(watcher, clock) == []
    (src / "a1" / "f").rename(src / "a6" / "moved")
    assert tick(watcher, clock) == [Event(MV, "a1/f", target="a6/moved")]
    (src / "a2" / "sub").rename(src / "a6" / "sub2")  # a directory, too
    assert tick(watcher, clock) == [Event(MV, "a2/sub", True, target="a6/sub2")]


def test_a_rename_seen_at_its_source_first_is_a_rename(
    src: Path, watcher: PollWatcher, clock: FakeClock
) -> None:
    watcher.schedule.touch(["a5"])  # the source is hot, the target cold
    # The cold pass goes "", a9, a9/sub, a8, ... a0: past the root (whose listing would show
    # a0's mtime changed and so have a0 listed at once), far from a0.
    assert tick(watcher, clock) == []
    (src / "a5" / "sub").rename(src / "a0" / "sub2")
    (src / "a0" / "sub2" / "g").write_text("changed after the rename")
    assert tick(watcher, clock) == []  # held: it may have gone somewhere not yet looked at
    taken, events = ticks_until(watcher, clock, int(PERIOD / INTERVAL) + 1)
    assert taken > 2
    assert events == [Event(MV, "a5/sub", True, target="a0/sub2"), Event(M, "a0/sub2/g")]
    (src / "a0" / "sub2" / "g").write_text("and it is watched where it is now")
    assert ticks_until(watcher, clock, 2)[1] == [Event(M, "a0/sub2/g")]


def test_a_deletion_is_reported_once_the_pass_went_round(
    src: Path, watcher: PollWatcher, clock: FakeClock
) -> None:
    watcher.schedule.touch(["a0"])
    (src / "a0" / "f").unlink()
    shutil.rmtree(src / "a0" / "sub")
    taken, events = ticks_until(watcher, clock, int(PERIOD / INTERVAL) + 2)
    assert events == [Event(D, "a0/f"), Event(D, "a0/sub", True)]
    assert taken >= PERIOD / INTERVAL  # held until every other directory was looked at
    assert "a0/sub" not in watcher.schedule


def test_a_new_directory_is_one_tree_create_and_then_watched(
    src: Path, watcher: PollWatcher, clock: FakeClock
) -> None:
    watcher.schedule.touch([""])
    (src / "new" / "deep").mkdir(parents=True)
    (src / "new" / "deep" / "x").write_text("x")
    assert tick(watcher, clock) == [Event(C, "new", True, tree=True)]
    assert "new/deep" in watcher.schedule
    (src / "new" / "deep" / "y").write_text("written while the tree was copied")
    assert tick(watcher, clock) == [Event(C, "new/deep/y")]  # a new tree is rescanned at once


def test_a_storm_in_one_directory_does_not_hide_a_change_elsewhere(
    src: Path, watcher: PollWatcher, clock: FakeClock
) -> None:
    watcher.schedule.touch(["a9"])
    created: set[str] = set()
    for step in range(30):  # a storm of new files over 30 ticks
        for i in range(20):
            (src / "a9" / f"storm{step}-{i}").write_text("x")
        if step == 3:
            (src / "a2" / "sub" / "g").write_text("an edit in a cold directory meanwhile")
        for event in tick(watcher, clock):
            created.add(event.path)
    assert {f"a9/storm{step}-{i}" for step in range(30) for i in range(20)} <= created
    assert "a2/sub/g" in created


def test_changes_reported_by_inotify_heat_their_directories(
    watcher: PollWatcher, clock: FakeClock
) -> None:
    watcher.heat([Event(M, "a2/sub/g"), Event(MV, "a3/f", target="a5/f")])
    assert sorted(watcher.schedule.hot()) == ["a2/sub", "a3", "a5"]


def test_a_long_hot_tick_rests_the_hot_set_three_times_as_long(src: Path, clock: FakeClock) -> None:
    # The exclude predicate runs once per entry listed: here it is where the tick's time goes.
    # A long period keeps the cold slices empty, so only the hot set can see a1.
    per_entry = [0.0]

    def slow_excludes(path: str, is_dir: bool) -> bool:
        clock.now += per_entry[0]
        return False

    watcher = PollWatcher(
        str(src), slow_excludes, interval=INTERVAL, period=1000, hot_for=100, clock=clock
    )
    watcher.start()
    try:
        watcher.schedule.touch(["a1"])
        (src / "a1" / "new").write_text("x")  # a1 is listed again: f, sub and new
        per_entry[0] = 2.0
        clock.now += INTERVAL
        assert Event(C, "a1/new") in watcher.read(0)
        per_entry[0] = 0.0  # that tick took 6 s: the hot set rests 18 s, the ticks go on
        (src / "a1" / "later").write_text("x")
        for _ in range(17):
            clock.now += INTERVAL
            assert watcher.due_in() == 0 and Event(C, "a1/later") not in watcher.read(0)
        clock.now += 2 * INTERVAL
        assert Event(C, "a1/later") in watcher.read(0)
    finally:
        watcher.close()


def test_the_directories_are_held_once_by_the_table_and_the_schedule(
    src: Path, watcher: PollWatcher
) -> None:
    table_keys = {id(path) for path in watcher.directories()}
    ring_keys = {id(path) for path in watcher.schedule._ordered()}
    assert len(table_keys) == len(watcher.schedule) == len(DIRECTORIES) * 2 + 1
    assert ring_keys == table_keys  # the same strings, one dict
    assert watcher.schedule._ring is watcher._tree.table.records


def test_the_safety_net_ticks_once_a_second(src: Path, clock: FakeClock) -> None:
    watcher = PollWatcher(str(src), interval=0.2, period=PERIOD, hot_for=HOT_FOR, clock=clock)
    watcher.start()
    try:
        clock.now += 0.2
        watcher.read(0)
        assert watcher.due_in() == pytest.approx(0.2)
        watcher.settle(True)  # no hot set: nothing needs the interval's pace
        clock.now += 0.2
        watcher.read(0)
        assert watcher.due_in() == pytest.approx(1.0)
        watcher.settle(False)
        clock.now += 1.0
        watcher.read(0)
        assert watcher.due_in() == pytest.approx(0.2)
    finally:
        watcher.close()
