"""A pair's batch lines: one a batch, at most one a second, a burst summed, failures at once."""

from __future__ import annotations

import logging

import pytest

from pylsyncd.coalesce import Batch, Change, ChangeKind
from pylsyncd.pair.batch_log import LINE_EVERY, BatchLog
from pylsyncd.transfer import Outcome


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.INFO]


def test_a_burst_is_one_line_a_second_and_its_sum_comes_when_the_second_is_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pylsyncd")
    clock = Clock()
    batch_log = BatchLog("pair", clock)
    batch_log.done(Outcome(copied=1, bytes=10), events=2, elapsed_ms=1.0)
    assert lines(caplog) == ["pair: 1 copied (10 B) from 2 events in 1 ms"]  # the first: at once
    for _ in range(99):
        clock.now += 0.01
        batch_log.done(Outcome(copied=1, bytes=10), events=2, elapsed_ms=1.0)
    assert len(lines(caplog)) == 1  # within the second: summed
    assert batch_log.due() == 100.0 + LINE_EVERY
    clock.now = 100.0 + LINE_EVERY
    batch_log.flush_if_due()  # the pair's wait woke for it
    assert lines(caplog)[1:] == ["pair: 99 copied (990 B) from 198 events in 99 ms (99 batches)"]
    assert batch_log.due() is None


def test_a_failed_batch_is_logged_at_once_after_the_sum_before_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pylsyncd")
    clock = Clock()
    batch_log = BatchLog("pair", clock)
    batch_log.done(Outcome(copied=1), events=1, elapsed_ms=1.0)
    clock.now += 0.1
    batch_log.done(Outcome(deleted=3), events=3, elapsed_ms=2.0)
    clock.now += 0.1
    failed = Outcome(failed=Batch((), (Change("f", ChangeKind.SYNC),)), error="No space left")
    batch_log.done(failed, events=1, elapsed_ms=3.0)
    assert lines(caplog) == [
        "pair: 1 copied (0 B) from 1 events in 1 ms",
        "pair: 3 deleted from 3 events in 2 ms",
        "pair: 1 failed from 1 events in 3 ms",
    ]
