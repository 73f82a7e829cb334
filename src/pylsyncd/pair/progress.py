"""What a pair reports: the counts of one batch for the log, the progress of a long initial sync,
and its line in the status file (its last batch here, its failure from retry.py)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pylsyncd.config import PairConfig
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.retry import Retry
from pylsyncd.status import PairState, PairStatus
from pylsyncd.transfer import Outcome
from pylsyncd.watch.first_walk import FirstWalk

log = logging.getLogger("pylsyncd")

_PROGRESS_EVERY = 2.0  # seconds between progress lines of a long initial sync


@dataclass
class PairProgress:
    """The last batch, in wall-clock time for the status file, and whether the pair stopped."""

    last_batch_at: float | None = None
    last_batch_changes: int = 0
    last_batch_ms: float = 0.0
    stopped: bool = False
    changes_total: int = 0
    bytes_total: int = 0
    failures_total: int = 0
    sync_started_at: float | None = None
    sync_entries: int = 0
    sync_total: int | None = None

    def batch_done(self, outcome: Outcome, elapsed_ms: float) -> None:
        """Record a batch that was applied (fully or not)."""
        self.last_batch_at = time.time()
        self.last_batch_changes = (
            outcome.copied + outcome.dirs + outcome.links + outcome.deleted + outcome.moved
        )
        self.last_batch_ms = elapsed_ms
        self.changes_total += self.last_batch_changes
        self.bytes_total += outcome.bytes
        self.failures_total += not outcome.ok


def pair_status(
    config: PairConfig,
    progress: PairProgress,
    retry: Retry,
    *,
    paused: bool,
    ready: bool,
    pending: int,
    watch: str = "",
    pending_since: float | None = None,
) -> PairStatus:
    """A pair's line in the status file: its state, last batch and failure."""
    if progress.stopped:
        state = PairState.STOPPED
    elif paused:
        state = PairState.PAUSED
    elif retry.failing_since is not None:
        state = PairState.FAILING
    elif ready:
        state = PairState.LIVE
    else:
        state = PairState.INITIAL_SYNC
    return PairStatus(
        source=config.source,
        destination=config.destination,
        state=state,
        initial_sync_done=ready,
        pending_events=pending,
        last_batch_at=progress.last_batch_at,
        last_batch_changes=progress.last_batch_changes,
        last_batch_ms=round(progress.last_batch_ms, 1),
        last_error=retry.last_error,
        failing_since=retry.failing_since,
        watch=watch,
        changes_total=progress.changes_total,
        bytes_total=progress.bytes_total,
        failures_total=progress.failures_total,
        oldest_pending_at=pending_since,
        sync_started_at=progress.sync_started_at,
        sync_entries=progress.sync_entries,
        sync_total=progress.sync_total,
    )


def describe(outcome: Outcome) -> str:
    """The counts of an outcome for the one log line per batch."""
    parts = [f"{outcome.copied} copied ({_size(outcome.bytes)})"] if outcome.copied else []
    for count, noun in (
        (outcome.dirs, "dirs created"),
        (outcome.links, "links"),
        (outcome.deleted, "deleted"),
        (outcome.moved, "moved"),
        (len(outcome.failed.changes), "failed"),
        (len(outcome.deferred.changes), "held back"),
    ):
        if count:
            parts.append(f"{count} {noun}")
    return ", ".join(parts) or "nothing to change"


def _size(count: int) -> str:
    if count < 1000:
        return f"{count} B"
    value = count / 1000
    for unit in ("kB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


class ProgressReporter:
    """Progress lines for a long initial sync: entries done, rate, and time left.

    The total is what the watcher found when it first walked the tree (`found`, asked until
    the walk is over: the sync may begin before, see `first_walk`). A watcher that did not
    count has it counted by a thread of its own once the sync has lasted `_PROGRESS_EVERY`: a
    walk of the whole tree (2.5 s of CPU on 200,000 entries, taken from the sync's own thread, a
    fifth of that sync's time); until it is known, the lines say what is done and how fast.
    `close` ends the count.
    """

    def __init__(
        self,
        name: str,
        source: str,
        excludes: ExcludeRules,
        shown: PairProgress | None = None,
        found: Callable[[], int | None] = lambda: None,
        walk: FirstWalk | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.excludes = excludes
        self.started = time.monotonic()
        self.next_report = self.started + _PROGRESS_EVERY
        self._found = found
        self._walk = walk or FirstWalk.done()
        self.total = found()
        self.shown = shown  # where the status file (`status --watch`) finds the progress
        if shown is not None:
            shown.sync_started_at = time.time()
            shown.sync_total = self.total
        self._closed = threading.Event()
        self._counter: threading.Thread | None = None

    def __call__(self, done: int) -> None:
        if self.shown is not None:
            self.shown.sync_entries = done
        now = time.monotonic()
        if now < self.next_report:
            return
        self.next_report = now + _PROGRESS_EVERY
        if self.total is None and (total := self._found()) is not None:
            self.total = total
            if self.shown is not None:
                self.shown.sync_total = total
        if self._counter is None and self.total is None and self._walk.whole:
            self._counter = threading.Thread(
                target=self._count, name=f"count {self.name}", daemon=True
            )
            self._counter.start()
        rate = done / (now - self.started)
        total = self.total
        if total is None:
            log.info("%s: initial sync: %d entries, %.0f/s", self.name, done, rate)
            return
        log.info(
            "%s: initial sync: %d of %d entries, %.0f/s, about %.0f s left",
            self.name,
            done,
            total,
            rate,
            max(total - done, 0) / rate if rate else 0,
        )

    def close(self) -> None:
        """The sync is over: stop counting (within one directory) and wait for the count."""
        self._closed.set()
        if self._counter is not None:
            self._counter.join()

    def _count(self) -> None:
        total = count_entries(self.source, self.excludes, self._closed)
        if total is not None:
            self.total = total
            if self.shown is not None:
                self.shown.sync_total = total


def count_entries(
    root: str, excludes: ExcludeRules, stop: threading.Event | None = None
) -> int | None:
    """How many entries below `root` are not excluded (directory types only, no stat calls)."""
    count = 0
    stack = [""]
    while stack:
        if stop is not None and stop.is_set():
            return None
        path = stack.pop()
        try:
            with os.scandir(os.path.join(root, path) if path else root) as entries:
                for entry in entries:
                    child = f"{path}/{entry.name}" if path else entry.name
                    is_dir = entry.is_dir(follow_symlinks=False)
                    if excludes and excludes.excludes(child, is_dir):
                        continue
                    count += 1
                    if is_dir:
                        stack.append(child)
        except OSError:
            continue
    return count
