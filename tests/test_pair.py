"""A `Pair` driven alone: a fake Watcher the test feeds and a fake Transfer that records what it
is asked to apply, with the pair's real threads. The source is a real directory, so its removal
is real too. Each test waits on a condition with a deadline, never a fixed time."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import wait_until
from pylsyncd.coalesce import Batch
from pylsyncd.config import PairConfig
from pylsyncd.events import Event, EventKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair import Pair
from pylsyncd.pair.observer import ResyncReason
from pylsyncd.pair.target_queue import Queued, TargetQueue
from pylsyncd.status import PairState
from pylsyncd.transfer import Outcome, Progress
from pylsyncd.watch import WatchLimitError
from pylsyncd.watch.first_walk import FirstWalk

DEADLINE = 10.0
FAILURE_SAID = r"failed: .*retrying with backoff"


def modified(path: str) -> Event:
    return Event(EventKind.MODIFIED, path)


class FakeWatcher:
    """A Watcher whose events the test pushes. As inotify's, a wake before `start` is lost (the
    descriptor it writes to is made by `start`); `start` can be made to wait for a gate, or fail."""

    def __init__(
        self, gate: threading.Event | None = None, fails: BaseException | None = None
    ) -> None:
        self._condition = threading.Condition()
        self._events: list[Event] = []
        self._woken = False
        self._gate = gate
        self._fails = fails
        self.starting = False
        self.started = False
        self.closed = False
        self.read_fails: BaseException | None = None  # raised by the next read

    def start(self) -> None:
        with self._condition:
            self.starting = True
            self._condition.notify_all()
        if self._gate is not None:
            assert self._gate.wait(DEADLINE), "the test never opened the gate"
        if self._fails is not None:
            raise self._fails
        with self._condition:
            self.started = True

    def read(self, timeout: float | None) -> list[Event]:
        with self._condition:
            failure, self.read_fails = self.read_fails, None
            if failure is not None:
                raise failure
            if not (self._events or self._woken):
                self._condition.wait(timeout)
            events, self._events = self._events, []
            self._woken = False
            return events

    def wake(self) -> None:
        with self._condition:
            if self.started and not self.closed:
                self._woken = True
                self._condition.notify_all()

    def close(self) -> None:
        with self._condition:
            self.closed = True
            self._woken = True
            self._condition.notify_all()

    def push(self, *events: Event) -> None:
        """Events the watcher reports next."""
        with self._condition:
            self._events.extend(events)
            self._condition.notify_all()

    def fail_next_read(self, error: BaseException) -> None:
        """Have the next read raise `error`, and end the read that waits now."""
        with self._condition:
            self.read_fails = error
            self._woken = True
            self._condition.notify_all()


@dataclass
class FakeWatchers:
    """The watcher factory: records every watcher the pair asked for, and why."""

    gate: threading.Event | None = None  # the next chosen watcher's start waits for it
    made: list[tuple[str, FakeWatcher]] = field(default_factory=list)

    def chosen(self) -> FakeWatcher:
        watcher = FakeWatcher(self.gate)
        self.made.append(("chosen", watcher))
        return watcher

    def polling(self) -> FakeWatcher:
        watcher = FakeWatcher()
        self.made.append(("polling", watcher))
        return watcher

    def with_rescans(self, watcher: FakeWatcher) -> FakeWatcher:
        self.made.append(("with rescans", watcher))
        return watcher

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.made]


@dataclass(frozen=True)
class Applied:
    """One `apply` call: the batch, and whether it went through."""

    batch: Batch
    ok: bool

    @property
    def paths(self) -> set[str]:
        return {change.path for change in self.batch.changes}


@dataclass(frozen=True)
class FullSync:
    delete: bool
    ok: bool


class FakeTransfer:
    """Records every call. While `failing`, each fails as a full destination would: the whole
    batch comes back in `failed`, to be retried."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.calls: list[Applied | FullSync] = []
        self.failing = False

    def apply(self, batch: Batch, *, final: bool = False) -> Outcome:
        with self._condition:
            ok = not self.failing
            self.calls.append(Applied(batch, ok))
            self._condition.notify_all()
        if ok:
            return Outcome(copied=len(batch.changes))
        return Outcome(failed=batch, error="No space left on device")

    def full_sync(
        self, *, delete: bool, progress: Progress | None = None, walk: FirstWalk | None = None
    ) -> Outcome:
        with self._condition:
            ok = not self.failing
            self.calls.append(FullSync(delete, ok))
            self._condition.notify_all()
        return Outcome() if ok else Outcome(error="No space left on device")

    def cancel(self) -> None:
        pass

    def applied(self) -> list[Applied]:
        with self._condition:
            return [call for call in self.calls if isinstance(call, Applied)]

    def wait_for(self, predicate: Callable[[list[Applied | FullSync]], bool]) -> None:
        """Wait until the calls so far satisfy `predicate`."""
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self.calls), DEADLINE):
                raise AssertionError(f"the transfer never got there; calls: {self.calls}")


class CountingStop(threading.Event):
    """The pair's `stopping`, counting its waits: the pair waits on it after each look that
    found the source gone, so the count tells how often it looked."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


@dataclass
class Running:
    pair: Pair
    thread: threading.Thread
    stopping: CountingStop
    watcher: FakeWatcher
    watchers: FakeWatchers
    transfer: FakeTransfer
    source: Path

    def state(self) -> PairState:
        return self.pair.status().state

    def stop(self) -> None:
        """Stop as the supervisor does, and wait for `run` to return."""
        self.stopping.set()
        self.pair.wake()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the pair did not stop"


class Pairs:
    """Pairs started by one test; every one is stopped at its end, and no thread is left."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: list[Running] = []

    def start(self, *, watcher: FakeWatcher | None = None, delay: float = 0.0) -> Running:
        source = self.root / "src"
        source.mkdir()
        config = PairConfig(
            source=str(source), destination=str(self.root / "dst"), delay=delay, init=False
        )
        watcher = watcher or FakeWatcher()
        watchers, transfer, stopping = FakeWatchers(), FakeTransfer(), CountingStop()
        pair = Pair(
            config,
            transfer=transfer,
            watcher=watcher,
            watchers=watchers,
            excludes=ExcludeRules(()),
            stopping=stopping,
            grace=DEADLINE,
        )
        thread = threading.Thread(target=pair.run, name=pair.name, daemon=True)
        running = Running(pair, thread, stopping, watcher, watchers, transfer, source)
        self.running.append(running)
        thread.start()
        wait_until(pair.ready.is_set, timeout=DEADLINE, message="the pair never went live")
        return running

    def close(self) -> None:
        for running in self.running:
            if running.thread.is_alive():
                running.stop()
        left = [t.name for t in threading.enumerate() if t.name.startswith("reader ")]
        assert not left, f"threads left running: {left}"


@pytest.fixture
def pairs(tmp_path: Path) -> Iterator[Pairs]:
    started = Pairs(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def said(caplog: pytest.LogCaptureFixture) -> Callable[[str], int]:
    """How many log lines so far match a regex."""
    caplog.set_level(logging.INFO, logger="pylsyncd")

    def count(pattern: str) -> int:
        return sum(1 for record in list(caplog.records) if re.search(pattern, record.message))

    return count


# -- retries -----------------------------------------------------------------------------------


def test_a_failed_batch_is_retried_with_its_changes_and_the_new_ones(pairs: Pairs) -> None:
    run = pairs.start()
    run.transfer.failing = True
    run.watcher.push(modified("a"))
    run.transfer.wait_for(lambda calls: len(calls) >= 1)
    run.watcher.push(modified("b"))  # arrives while the pair backs off
    # Read (b) and carried (a): whether or not another attempt failed meanwhile, both wait.
    wait_until(lambda: run.pair.status().pending_events == 2, timeout=DEADLINE)
    run.transfer.failing = False
    run.transfer.wait_for(lambda calls: any(c.ok for c in calls))

    applied = run.transfer.applied()
    assert all("a" in attempt.paths for attempt in applied), applied
    assert applied[-1].ok and applied[-1].paths == {"a", "b"}, applied
    assert run.pair.status().pending_events == 0


def test_a_failure_is_said_once_when_it_starts_and_once_when_it_clears(
    pairs: Pairs, said: Callable[[str], int]
) -> None:
    run = pairs.start()
    run.transfer.failing = True
    run.watcher.push(modified("a"))
    run.transfer.wait_for(lambda calls: len(calls) >= 3)  # two retries, backing off
    status = run.pair.status()
    assert status.state is PairState.FAILING
    assert status.last_error == "No space left on device"
    assert said(FAILURE_SAID) == 1

    run.transfer.failing = False
    wait_until(lambda: run.state() is PairState.LIVE, timeout=DEADLINE)
    assert run.pair.status().failing_since is None
    assert said(FAILURE_SAID) == 1
    assert said(r"recovered after") == 1


# -- the source goes away ----------------------------------------------------------------------


def pause(run: Running, away: Path) -> None:
    """Remove the source, with a change waiting, until the pair has looked at it twice."""
    run.source.rename(away)
    run.watcher.push(modified("a"))
    wait_until(lambda: run.state() is PairState.PAUSED, timeout=DEADLINE)
    looked = run.stopping.waits
    wait_until(lambda: run.stopping.waits >= looked + 2, timeout=DEADLINE)


def test_nothing_is_applied_while_the_source_is_gone_and_it_resumes_with_a_full_comparison(
    pairs: Pairs, tmp_path: Path, said: Callable[[str], int]
) -> None:
    run = pairs.start()
    pause(run, tmp_path / "away")
    assert run.transfer.calls == [], "applied while the source was gone"
    assert run.pair.status().pending_events == 1
    assert "paused" in (run.pair.status().last_error or "")

    run.source.mkdir()  # a new source at the same path
    run.transfer.wait_for(lambda calls: len(calls) >= 2)
    assert run.transfer.calls[:2] == [
        FullSync(delete=True, ok=True),
        Applied(run.transfer.applied()[0].batch, ok=True),
    ]
    assert run.transfer.applied()[0].paths == {"a"}
    assert said(r"is gone .*: pausing") == 1
    assert said(r"the source is back: resuming with a full comparison") == 1

    # Watched afresh: the old watcher is closed, and a new one reports what comes next.
    assert run.watcher.closed
    assert run.watchers.kinds() == ["chosen"]
    ((_, fresh),) = run.watchers.made
    assert fresh.started
    wait_until(lambda: run.state() is PairState.LIVE, timeout=DEADLINE)
    fresh.push(modified("b"))
    run.transfer.wait_for(
        lambda calls: any(isinstance(c, Applied) and c.ok and c.paths == {"b"} for c in calls)
    )


def test_a_pause_and_a_failure_after_it_are_one_failure_on_one_clock(
    pairs: Pairs, tmp_path: Path, caplog: pytest.LogCaptureFixture, said: Callable[[str], int]
) -> None:
    run = pairs.start()
    pause(run, tmp_path / "away")
    failing_since = run.pair.status().failing_since
    assert failing_since is not None, "a pause counts as a failure for health"

    run.transfer.failing = True  # the full comparison after the pause fails, then passes
    run.source.mkdir()
    run.transfer.wait_for(lambda calls: len(calls) >= 1)
    assert run.pair.status().failing_since == failing_since
    run.transfer.failing = False
    wait_until(lambda: run.state() is PairState.LIVE, timeout=DEADLINE)

    assert said(FAILURE_SAID) == 1
    (record,) = [r for r in caplog.records if "recovered after" in r.message]
    logged = float(re.search(r"after ([\d.]+) s", record.message).group(1))  # type: ignore[union-attr]
    # The log measures the failure from when the status file says it began: the pause.
    assert abs((record.created - failing_since) - logged) < 0.1, (logged, failing_since)


# -- stopping ----------------------------------------------------------------------------------


def test_changes_pending_at_the_stop_are_applied_before_run_returns(pairs: Pairs) -> None:
    run = pairs.start(delay=30)  # nothing goes out live: only the stop can apply these
    run.watcher.push(modified("a"), modified("b"))
    wait_until(lambda: run.pair.status().pending_events == 2, timeout=DEADLINE)
    assert run.transfer.calls == []
    run.stop()
    assert [(c.paths, c.ok) for c in run.transfer.applied()] == [({"a", "b"}, True)]
    assert run.state() is PairState.STOPPED


def test_a_batch_failing_at_the_stop_is_retried_within_the_grace(pairs: Pairs) -> None:
    run = pairs.start(delay=30)
    run.watcher.push(modified("a"))
    wait_until(lambda: run.pair.status().pending_events == 1, timeout=DEADLINE)
    run.transfer.failing = True
    run.stopping.set()
    run.pair.wake()
    run.transfer.wait_for(lambda calls: len(calls) >= 1)
    run.transfer.failing = False
    run.stop()
    assert run.transfer.applied()[-1].ok and run.transfer.applied()[-1].paths == {"a"}


def test_a_stop_while_the_source_is_watched_afresh_is_not_lost(
    pairs: Pairs, tmp_path: Path
) -> None:
    run = pairs.start()
    run.watchers.gate = gate = threading.Event()
    pause(run, tmp_path / "away")
    run.source.mkdir()
    wait_until(lambda: run.watchers.made and run.watchers.made[-1][1].starting, timeout=DEADLINE)
    # The reader is replacing the watcher: this wake finds no watcher that could pass it on.
    run.stopping.set()
    run.pair.wake()
    gate.set()
    run.stop()


# -- out of inotify watches --------------------------------------------------------------------


def test_out_of_watches_at_start_the_pair_polls_instead(
    pairs: Pairs, said: Callable[[str], int]
) -> None:
    refused = FakeWatcher(fails=WatchLimitError("raise fs.inotify.max_user_watches"))
    run = pairs.start(watcher=refused)
    assert refused.closed
    assert run.watchers.kinds() == ["polling"]
    ((_, polling),) = run.watchers.made
    polling.push(modified("a"))
    run.transfer.wait_for(lambda calls: len(calls) == 1)
    assert run.transfer.applied()[0].paths == {"a"}
    assert said(r"max_user_watches; polling instead until then") == 1


def test_out_of_watches_while_running_adds_rescans_and_compares_the_whole_tree(
    pairs: Pairs, said: Callable[[str], int]
) -> None:
    run = pairs.start()
    run.watcher.fail_next_read(WatchLimitError("raise fs.inotify.max_user_watches"))
    run.transfer.wait_for(lambda calls: len(calls) >= 1)
    assert run.transfer.calls[0] == FullSync(delete=True, ok=True)
    assert run.watchers.made == [("with rescans", run.watcher)]
    assert said(r"adding periodic rescans until then") == 1


# -- who hands a batch out ---------------------------------------------------------------------


def _record_putters(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that put a batch into a target's queue, in order."""
    putters: list[str] = []
    put = TargetQueue.put

    def recorded(queue: TargetQueue, queued: Queued, reason: ResyncReason | None = None) -> bool:
        putters.append(threading.current_thread().name)
        return put(queue, queued, reason)

    monkeypatch.setattr(TargetQueue, "put", recorded)
    return putters


@pytest.mark.parametrize("delay", [0.0, 0.01])
def test_with_no_delay_the_reader_hands_each_read_out_itself(
    pairs: Pairs, monkeypatch: pytest.MonkeyPatch, delay: float
) -> None:
    putters = _record_putters(monkeypatch)
    run = pairs.start(delay=delay)
    for path in ("a", "b"):
        run.watcher.push(modified(path))
        run.transfer.wait_for(lambda _, p=path: any(p in c.paths for c in run.transfer.applied()))
    # DELAY=0: no thread between the reader and the targets; otherwise the source's waits DELAY.
    expected = "reader " if delay == 0 else "source "
    assert putters and all(name.startswith(expected) for name in putters), putters


def test_a_failure_in_handing_out_on_the_reader_stops_the_pair_and_says_why(
    pairs: Pairs, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(queue: TargetQueue, queued: Queued, reason: ResyncReason | None = None) -> bool:
        raise RuntimeError("queue broken")

    run = pairs.start()
    monkeypatch.setattr(TargetQueue, "put", broken)
    run.watcher.push(modified("a"))
    run.thread.join(DEADLINE)
    assert not run.thread.is_alive(), "the pair went on after the reader's failure"
    assert run.pair.fatal == "RuntimeError: queue broken"
