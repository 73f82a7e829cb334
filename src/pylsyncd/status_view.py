"""`pylsyncd status --watch`: the status file, read about once a second, as a live view.

On a terminal the screen is redrawn in place (mutagen's `sync monitor` is the model): per pair
its state, pending changes and lag, the last batch, throughput and errors, and a progress bar
with rate and time left while the initial sync runs. Elsewhere (a pipe, a log) it prints one
plain line per pair at each refresh. Ctrl-C ends it, even when whoever started it left SIGINT
ignored.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

from pylsyncd.status import (
    DaemonStatus,
    PairState,
    PairStatus,
    StatusError,
    ago,
    health_problems,
    read_status,
)

REFRESH_EVERY = 1.0  # seconds between two reads of the status file
RATE_OVER = 5  # refreshes the throughput is averaged over
_CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen
_BAR_WIDTH = 30


@dataclass(frozen=True)
class Sample:
    """A pair's running totals at one refresh, for the throughput."""

    at: float
    changes: int
    bytes: int


class Throughput:
    """Changes and bytes per second per pair, over the last RATE_OVER refreshes."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[Sample]] = {}

    def add(self, name: str, pair: PairStatus, now: float) -> tuple[float, float]:
        """Record `pair`'s totals; (changes/s, bytes/s) since the oldest sample kept."""
        samples = self._samples.setdefault(name, deque(maxlen=RATE_OVER + 1))
        samples.append(Sample(now, pair.changes_total, pair.bytes_total))
        first, last = samples[0], samples[-1]
        elapsed = last.at - first.at
        if elapsed <= 0:
            return 0.0, 0.0
        return (last.changes - first.changes) / elapsed, (last.bytes - first.bytes) / elapsed


def watch(
    path: str,
    *,
    failing_for: float,
    out: TextIO,
    tty: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Show the daemon's status until Ctrl-C; 0 then."""
    rates = Throughput()
    try:
        with _ended_by_ctrl_c():
            while True:
                now = time.time()
                try:
                    status: DaemonStatus | None = read_status(path)
                    problem = ""
                except StatusError as error:
                    status, problem = None, str(error)
                lines = render(status, problem, now, failing_for, rates, tty=tty)
                if tty:
                    width = shutil.get_terminal_size().columns
                    out.write(_CLEAR + "\n".join(line[:width] for line in lines) + "\n")
                else:
                    out.write("".join(f"{time.strftime('%H:%M:%S')} {line}\n" for line in lines))
                out.flush()
                sleep(REFRESH_EVERY)
    except KeyboardInterrupt:
        return 0


@contextlib.contextmanager
def _ended_by_ctrl_c() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt while the block runs, whatever it did before.

    Python leaves a SIGINT it inherited ignored, and a shell starts every `&` job without job
    control (a script's, `sh -c '... &'`) with SIGINT ignored: a view started so would never
    end, since only Ctrl-C ends it. As mutagen's monitor (Go's signal.Notify un-ignores it),
    watch(1) and top do, the view takes SIGINT itself. Only the main thread may set handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGINT, previous)


def render(
    status: DaemonStatus | None,
    problem: str,
    now: float,
    failing_for: float,
    rates: Throughput,
    *,
    tty: bool,
) -> list[str]:
    """The lines of one refresh: a screen (`tty`), or one line per pair."""
    if status is None:
        return [f"unhealthy: {problem}"]
    problems = health_problems(status, now, failing_for)
    verdict = "unhealthy: " + "; ".join(problems) if problems else "healthy"
    lines = [f"pylsyncd pid {status.pid}, {verdict}"] if tty else []
    for pair in status.pairs:
        name = f"{pair.source} -> {pair.destination}"
        changes_rate, bytes_rate = rates.add(name, pair, now)
        facts = _facts(pair, now, changes_rate, bytes_rate)
        if tty:
            lines.append(
                f"{name}  {pair.state.value}" + (f"  ({pair.watch})" if pair.watch else "")
            )
            lines.extend(f"  {fact}" for fact in facts)
            if pair.last_error and pair.state is not PairState.LIVE:
                lines.append(f"  last error: {pair.last_error}")
        elif pair.state is PairState.INITIAL_SYNC:
            lines.append(f"{name}: {facts[0]}")
        else:
            lines.append(f"{name}: {pair.state.value}, " + ", ".join(facts))
    if not tty and problems:
        lines.append(verdict)
    return lines


def _facts(pair: PairStatus, now: float, changes_rate: float, bytes_rate: float) -> list[str]:
    """What a pair's block says, one fact a line."""
    if pair.state is PairState.INITIAL_SYNC:
        return [initial_sync_progress(pair, now)]
    lag = 0.0 if pair.oldest_pending_at is None else max(now - pair.oldest_pending_at, 0.0)
    facts = [f"pending {pair.pending_events}, lag {lag:.1f} s"]
    if pair.last_batch_at is not None:
        facts.append(
            f"last batch {ago(now - pair.last_batch_at)} ago: "
            f"{pair.last_batch_changes} changes in {pair.last_batch_ms:.0f} ms"
        )
    facts.append(
        f"{pair.changes_total} changes, {_size(pair.bytes_total)} since start; "
        f"now {changes_rate:.1f} changes/s, {_size(bytes_rate)}/s"
    )
    facts.append(f"errors {pair.failures_total}")
    return facts


def initial_sync_progress(pair: PairStatus, now: float) -> str:
    """The initial sync's bar, rate and time left, as far as they are known."""
    elapsed = 0.0 if pair.sync_started_at is None else max(now - pair.sync_started_at, 0.0)
    rate = pair.sync_entries / elapsed if elapsed > 0 else 0.0
    if not pair.sync_total:
        return f"initial sync: {pair.sync_entries} entries, {rate:.0f}/s (counting the rest)"
    fraction = min(pair.sync_entries / pair.sync_total, 1.0)
    filled = round(fraction * _BAR_WIDTH)
    bar = "#" * filled + "." * (_BAR_WIDTH - filled)
    left = max(pair.sync_total - pair.sync_entries, 0)
    eta = f"about {ago(left / rate)} left" if rate > 0 else "time left unknown"
    return (
        f"initial sync [{bar}] {fraction:4.0%} {pair.sync_entries} of {pair.sync_total} "
        f"entries, {rate:.0f}/s, {eta}"
    )


def _size(count: float) -> str:
    if count < 1000:
        return f"{count:.0f} B"
    value = count / 1000
    for unit in ("kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
