"""One source and its targets: one watcher and one coalescer, a queue per target (issue 15).

Pairs that mirror the same source with the same source-side settings (`source_key`) form one
`SourceGroup`. Its reader thread drains the watcher into one `PendingEvents`; its own thread
coalesces them, DELAY after the first, into one batch and puts that batch into each target's
queue. With DELAY=0 there is nothing to wait for, and the reader hands each read out itself:
one thread fewer woken per change (an append every 10 ms is that many wake-ups). Putting never
waits on a target, so a dead or slow one delays neither the watcher nor the other targets;
each target's thread (`target.Target`) applies, retries and backs off alone. See
docs/fan-out.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from pylsyncd.config import PairConfig
from pylsyncd.events import Event
from pylsyncd.excludes import ExcludeRules
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.pair.git_rules import GitRules
from pylsyncd.pair.observer import FailureKind, PairObserver, ResyncReason
from pylsyncd.pair.pending import PendingEvents
from pylsyncd.pair.retry import Retry
from pylsyncd.pair.source_watch import SourceWatch, WatcherFactory
from pylsyncd.pair.target import Target
from pylsyncd.pair.target_queue import Queued, TargetQueue
from pylsyncd.transfer import Outcome
from pylsyncd.watch import Watcher
from pylsyncd.watch.first_walk import FirstWalk

log = logging.getLogger("pylsyncd")

SourceKey = tuple[object, ...]


def source_key(config: PairConfig) -> SourceKey:
    """What one-way pairs must share to share a watcher and a coalescer: the source and every
    setting that decides what is watched, what is left out and when a batch is cut. The rest
    (destination, backend, DELETE, INIT, RSYNC_ARGS, SSH_ARGS, ON_SYNC, QUEUE_LIMIT,
    VERIFY_INTERVAL...) belongs to each target."""
    return (
        config.source,
        config.excludes,
        config.gitignore,
        config.delay,
        config.watch,
        config.poll_interval,
        config.poll_period,
        config.poll_hot_for,
        config.poll_safety_period,
    )


def grouped(configs: Sequence[PairConfig]) -> list[list[PairConfig]]:
    """The pairs by `source_key`, in the order of their first pair."""
    groups: dict[SourceKey, list[PairConfig]] = {}
    for config in configs:
        groups.setdefault(source_key(config), []).append(config)
    return list(groups.values())


class _Observers:
    """The source watch's observer: what it reads is counted for each target (a target's
    series then read as a pair's would alone)."""

    def __init__(self) -> None:
        self.each: list[PairObserver] = []

    def events_read(self, events: list[Event]) -> None:
        for observer in self.each:
            observer.events_read(events)

    def watching(self, watcher: Watcher | None) -> None:
        for observer in self.each:
            observer.watching(watcher)

    def batch_applied(self, outcome: Outcome, seconds: float, waited: float) -> None:
        """Targets apply batches, not the source."""

    def failed(self, kind: FailureKind) -> None:
        """Targets fail, not the source."""

    def full_resync(self, reason: ResyncReason) -> None:
        """Counted by each target when it compares."""

    def on_sync_ran(self, ok: bool) -> None:
        """Targets run ON_SYNC."""

    def conflicted(self) -> None:
        """One-way: no conflicts."""


class SourceGroup:
    """Watches one source and hands each batch to every target's queue."""

    def __init__(
        self,
        name: str,
        config: PairConfig,
        *,
        watcher: Watcher,
        watchers: WatcherFactory,
        excludes: ExcludeRules,
        stopping: threading.Event,
    ) -> None:
        self.name = name
        self.config = config
        self.stopping = stopping
        self.pending = PendingEvents()
        # How far the source's first walk has got: targets sync what it covers (`first_walk`).
        self.first_walk = FirstWalk()
        self.fatal: str | None = None
        self.targets: list[Target] = []
        self._queues: list[TargetQueue] = []
        self._observers = _Observers()
        sink = _HandOutOnRead(self) if config.delay == 0 else self.pending
        self._source = SourceWatch(
            name, config.source, watcher, watchers, sink, stopping, self._observers
        )
        self._git_rules = (
            GitRules(name, excludes, self._source) if isinstance(excludes, GitExcludes) else None
        )
        self._gone = threading.Lock()  # targets ask from their threads; the source says once

    def add(self, target: Target) -> None:
        """Hand batches to `target` too (before `run`)."""
        self.targets.append(target)
        self._queues.append(target.queue)
        self._observers.each.append(target.observer)

    # -- what targets ask (`target.SourceSide`) ---------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether the source is gone."""
        return self._source.paused

    @property
    def watching(self) -> str:
        """How the source is watched now."""
        return self._source.watching

    @property
    def entries_found(self) -> int | None:
        """How many entries the watcher found below the root when it started, if it counted."""
        return self._source.entries_found

    def held_back(self, retry: Retry) -> bool:
        """Whether every change stays queued because the source is gone, or not watched again
        yet since it came back (a batch applied then would delete what only looks gone)."""
        with self._gone:
            absence = self._source.gone()
        if absence is not None:
            retry.hold(f"{absence}: paused")
            return True
        return self._source.watching_again

    def backlog(self) -> tuple[int, float | None]:
        """Events not handed to the targets yet, and when (monotonic) the oldest came."""
        return len(self.pending), self.pending.oldest_since()

    # -- the group's thread -----------------------------------------------------------------

    def run(self) -> None:
        """The source thread's body: watch, then hand out batches until stopping."""
        try:
            self._source.start(self.first_walk)  # before the initial sync reads what it covers
            if self.config.delay == 0:
                self.stopping.wait()  # the reader hands out what it reads (`_HandOutOnRead`)
            while self.pending.wait(self.config.delay, self.stopping):
                self._hand_out()
            self._source.join()  # its last read, of what was queued before the stop
            self._hand_out()
        except Exception as error:
            self.failed(error)
        finally:
            for queue in self._queues:
                queue.close()
            self._source.close()

    def failed(self, error: Exception) -> None:
        """An unexpected error in handing out: the daemon stops, and the supervisor says why."""
        self.fatal = f"{type(error).__name__}: {error}"
        log.debug("%s: stopped by an unexpected error", self.name, exc_info=True)
        self.stopping.set()

    def wake(self) -> None:
        """After `stopping` is set: end the reader's, this thread's and the targets' waits."""
        self._source.wake()
        self.pending.wake()
        for target in self.targets:
            target.wake()

    def cancel(self) -> None:
        """Nothing of the source's to abandon: the targets' transfers are theirs."""

    def hand_out(self) -> None:
        """What is pending, coalesced and queued for each target now (DELAY=0's reader)."""
        try:
            self._hand_out()
        except Exception as error:
            self.failed(error)

    def _hand_out(self) -> None:
        """Coalesce what is pending, once for all targets, and queue it for each."""
        gathered = self.pending.take()
        batch = gathered.batch
        if self._git_rules is not None:
            batch = self._git_rules.batch(batch)
        if not batch:
            return
        reason = None
        if batch.full_resync:
            if self._git_rules is None or not self._git_rules.comparing():
                log.warning("%s: the kernel dropped events: comparing the whole tree", self.name)
            reason = self._source.resync_reason()
        since = time.monotonic() if gathered.since is None else gathered.since
        queued = Queued(batch, gathered.events, since)
        for queue in self._queues:
            queue.put(queued, reason)


class _HandOutOnRead:
    """The reader's sink at DELAY=0: each read's events go to the targets from the reader's
    thread. Coalescing one read is bounded by what one read holds (`watch.inotify`'s drain
    limit), so the kernel's queue is read again soon even in a storm."""

    def __init__(self, group: SourceGroup) -> None:
        self._group = group

    def add(self, events: list[Event]) -> None:
        """Queue events the watcher reported, and hand them out."""
        self._group.pending.add(events)
        if not self._group.stopping.is_set():
            self._group.hand_out()  # after a stop, the group's thread hands out the rest

    def wake(self) -> None:
        """End the group thread's wait (it waits for `stopping` only)."""
        self._group.pending.wake()
