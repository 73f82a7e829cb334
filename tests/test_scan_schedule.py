"""The polling schedule as a pure decision on a hand-driven clock: which directories each tick
rescans, the hot set's promotion and demotion, the cold pass's even slices."""

from __future__ import annotations

from collections import Counter

import pytest

from pylsyncd.watch.scan_schedule import ScanSchedule


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def schedule_of(
    directories: list[str], interval: float = 1.0, period: float = 10.0, hot_for: float = 5.0
) -> tuple[ScanSchedule, FakeClock]:
    clock = FakeClock()
    schedule = ScanSchedule(clock, interval, period, hot_for)
    schedule.add(directories)
    return schedule, clock


def ticks(schedule: ScanSchedule, clock: FakeClock, count: int) -> list[list[str]]:
    """`count` ticks, one `interval` apart."""
    due = []
    for _ in range(count):
        clock.now += schedule.interval
        due.append(schedule.tick())
    return due


DIRECTORIES = [f"d{i}" for i in range(100)]


def test_the_cold_pass_visits_every_directory_once_per_period_in_even_slices() -> None:
    schedule, clock = schedule_of(DIRECTORIES)
    for _ in range(3):  # three periods of ten ticks
        period = ticks(schedule, clock, 10)
        assert [len(due) for due in period] == [10] * 10  # never a burst
        assert Counter(d for due in period for d in due) == Counter(DIRECTORIES)


def test_slices_stay_even_when_the_ring_does_not_divide_evenly() -> None:
    schedule, clock = schedule_of(DIRECTORIES[:7], interval=1.0, period=3.0)
    sizes = [len(due) for due in ticks(schedule, clock, 30)]
    assert set(sizes) <= {2, 3}
    assert sum(sizes) == 70  # 7 directories x 10 periods


def test_a_late_tick_takes_at_most_two_slices_so_the_hot_set_keeps_its_pace() -> None:
    schedule, clock = schedule_of(DIRECTORIES)
    ticks(schedule, clock, 1)
    clock.now += 1.5  # a tick that came half an interval late (a slow rescan)
    assert len(schedule.tick()) == 15
    clock.now += 60  # asleep for six periods: no pile-up, no burst
    assert len(schedule.tick()) == 20
    assert len(ticks(schedule, clock, 1)[0]) == 10


def test_a_tick_without_the_hot_set_still_takes_its_cold_slice() -> None:
    schedule, clock = schedule_of(DIRECTORIES)
    schedule.touch(["d50"])
    clock.now += 1.0
    resting = schedule.tick(hot=False)
    assert "d50" not in resting and len(resting) == 10
    clock.now += 1.0
    assert schedule.tick()[0] == "d50"


def test_a_touched_directory_is_hot_until_hot_for_after_its_last_change() -> None:
    schedule, clock = schedule_of(DIRECTORIES, hot_for=5.0)
    schedule.touch(["d50"])
    assert schedule.hot() == ["d50"]
    due = ticks(schedule, clock, 4)  # 1 .. 4 s after the change
    assert all("d50" in tick for tick in due)
    schedule.touch(["d50"])  # another change at 4 s: hot until 9 s
    due = ticks(schedule, clock, 4)  # 5 .. 8 s
    assert all("d50" in tick for tick in due)
    clock.now += 1.0  # 9 s: demoted
    assert schedule.hot() == []
    cold = [tick.count("d50") for tick in ticks(schedule, clock, 10)]
    assert sum(cold) == 1  # back to once per period, from the cold pass


def test_hot_directories_come_first_and_are_not_scanned_twice_in_a_tick() -> None:
    schedule, clock = schedule_of(DIRECTORIES)
    schedule.touch(["d3", "d7"])
    for due in ticks(schedule, clock, 4):  # hot for 5 s
        assert due[:2] == ["d3", "d7"]
        assert len(due) == len(set(due))


def test_touching_an_unknown_directory_does_nothing() -> None:
    schedule, _ = schedule_of(DIRECTORIES)
    schedule.touch(["not-there"])
    assert schedule.hot() == []


def test_without_the_hot_set_only_the_cold_pass_runs() -> None:
    schedule, clock = schedule_of(DIRECTORIES)
    schedule.hot_enabled = False
    schedule.touch(["d50"])
    assert sum(tick.count("d50") for tick in ticks(schedule, clock, 10)) == 1
    schedule.hot_enabled = True  # still within hot_for of its change? no: 10 s > 5 s
    assert schedule.hot() == []


def test_a_vanished_directory_is_never_scanned_again_nor_hot() -> None:
    schedule, clock = schedule_of(DIRECTORIES)
    schedule.touch(["d5"])
    ticks(schedule, clock, 3)
    schedule.remove(["d5", "d6", "d40"])
    assert "d5" not in schedule
    assert schedule.hot() == []
    period = ticks(schedule, clock, 10)
    seen = Counter(d for due in period for d in due)
    assert not {"d5", "d6", "d40"} & seen.keys()
    assert seen == Counter(d for d in DIRECTORIES if d not in {"d5", "d6", "d40"})


def test_removal_keeps_the_cursor_so_nothing_waits_more_than_a_period() -> None:
    schedule, clock = schedule_of(DIRECTORIES)
    first = ticks(schedule, clock, 3)  # d0 .. d29 done
    assert first[-1][-1] == "d29"
    schedule.remove(["d30", "d31"])  # where the cursor stands
    assert ticks(schedule, clock, 1)[0][0] == "d32"


def test_an_appeared_directory_is_covered_within_the_next_period() -> None:
    schedule, clock = schedule_of(DIRECTORIES)
    ticks(schedule, clock, 5)
    schedule.add(["new"])
    assert "new" in schedule
    later = [d for due in ticks(schedule, clock, 11) for d in due]
    assert later.count("new") == 1


def test_a_period_no_longer_than_the_interval_is_a_whole_pass_each_tick() -> None:
    schedule, clock = schedule_of(DIRECTORIES, interval=1.0, period=0.5)
    for due in ticks(schedule, clock, 3):
        assert sorted(due) == sorted(DIRECTORIES)


def test_laps_count_whole_passes() -> None:
    schedule, clock = schedule_of(DIRECTORIES)
    ticks(schedule, clock, 10)
    assert schedule.laps == 0  # the cursor wraps at the first slice of the next pass
    ticks(schedule, clock, 1)
    assert schedule.laps == 1


def test_an_empty_ring_ticks_nothing() -> None:
    schedule, clock = schedule_of([])
    assert ticks(schedule, clock, 3) == [[], [], []]


@pytest.mark.parametrize(
    ("interval", "period", "hot_for"), [(0, 10, 1), (1, 0, 1), (-1, 10, 1), (1, 10, -1)]
)
def test_bad_settings_are_refused(interval: float, period: float, hot_for: float) -> None:
    with pytest.raises(ValueError, match="bad schedule"):
        ScanSchedule(FakeClock(), interval, period, hot_for)
