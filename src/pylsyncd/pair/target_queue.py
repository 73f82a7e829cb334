"""One target's queue of batches: the source's coalescer puts, the target's thread takes.

The source side coalesces once for all its targets (see `fan_out`); each target keeps its own
queue here, so a slow or dead target only grows its own. The queue is bounded (QUEUE_LIMIT
changes): past the bound it is dropped and the target catches up with a full comparison
instead, which costs one walk of the tree however long the target was away (docs/fan-out.md).

Putting never waits on the target: it appends under a lock held for a few operations, so the
source's thread (and the reader behind it) never blocks on a transfer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from pylsyncd.coalesce import Batch, Change, ChangeKind, merge
from pylsyncd.pair.observer import ResyncReason
from pylsyncd.pair.pending import Gathered


@dataclass(frozen=True)
class Queued:
    """One batch in a target's queue, with how many events it came from and when its oldest
    change was seen (monotonic)."""

    batch: Batch
    events: int
    since: float


@dataclass(frozen=True)
class Taken:
    """What `TargetQueue.take` hands over: a batch, and why it compares the whole tree."""

    gathered: Gathered
    reason: ResyncReason | None  # None unless the batch has `full_resync`


class TargetQueue:
    """The batches one target has not applied yet, its failed changes and its held-back ones."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # changes kept before the queue is dropped for a full comparison
        self._condition = threading.Condition()
        self._queued: deque[Queued] = deque()
        self._size = 0  # changes and moves in `_queued`
        self._reason: ResyncReason | None = None  # a full comparison is due, and why
        self._reason_since: float | None = None
        self._carried = Batch()  # what failed, retried with the next batch
        self._carried_since: float | None = None
        self._applying_since: float | None = None  # the batch in flight's oldest change
        self._deferred: dict[str, tuple[Change, float]] = {}
        self._closed = False  # nothing more will be put (the source's final batch is in)
        self.dropped = 0  # how many times the bound was passed, for the status and the tests

    def put(self, queued: Queued, reason: ResyncReason | None = None) -> bool:
        """Queue a batch (with `reason` when it compares the whole tree); False when that passed
        the bound and the queue was dropped for a full comparison instead."""
        batch = queued.batch
        with self._condition:
            if batch.full_resync:
                self._resync_due(reason or ResyncReason.EVENTS_LOST, queued.since)
                batch = Batch(batch.moves, batch.changes)
            if batch and not (self._queued and _repeats(self._queued[-1].batch, batch)):
                self._queued.append(Queued(batch, queued.events, queued.since))
                self._size += len(batch.changes) + len(batch.moves)
            fits = self._bounded()
            self._condition.notify()
            return fits

    def _bounded(self) -> bool:
        """Drop the queued and the failed changes for a full comparison if they are more than
        the limit; False if they were. Called with the lock held."""
        if self._size + len(self._carried.changes) <= self.limit:
            return True
        # The comparison reads the source as it is then: every change dropped is in it, and
        # the ones put after the drop are applied after it.
        first = self._queued[0].since if self._queued else None
        self._resync_due(
            ResyncReason.QUEUE_DROPPED,
            _earliest(first, self._carried_since) or time.monotonic(),
        )
        self._queued.clear()
        self._size = 0
        self._carried, self._carried_since = Batch(), None
        self.dropped += 1
        return False

    def _resync_due(self, reason: ResyncReason, since: float) -> None:
        if self._reason is None or reason is ResyncReason.QUEUE_DROPPED:
            self._reason = reason
        if self._reason_since is None:
            self._reason_since = since

    def requeue(
        self, failed: Batch, since: float | None, reason: ResyncReason | None = None
    ) -> None:
        """Keep what a batch failed to apply, to be retried with the next one (its whole-tree
        comparison too, for `reason`)."""
        with self._condition:
            if failed.full_resync:
                self._resync_due(reason or ResyncReason.EVENTS_LOST, since or time.monotonic())
                failed = Batch(failed.moves, failed.changes)
            self._carried = merge(failed, self._carried)
            self._carried_since = _earliest(self._carried_since, since)
            self._applying_since = None
            self._bounded()

    def defer(self, held: Batch, until: float) -> None:
        """Keep changes the transfer held back, to be taken again from `until` (monotonic)."""
        with self._condition:
            for change in held.changes:
                self._deferred[change.path] = (change, until)
            self._condition.notify()

    def applied(self) -> None:
        """The batch taken last went through: it no longer counts in the lag."""
        with self._condition:
            self._applying_since = None

    def close(self) -> None:
        """Nothing more will be put: the source's last batch is in."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def wake(self) -> None:
        """End a `wait` now (after `stopping` is set)."""
        with self._condition:
            self._condition.notify_all()

    def __len__(self) -> int:
        with self._condition:
            return self._size + len(self._carried.changes) + len(self._deferred)

    def oldest(self) -> float | None:
        """When (monotonic) the oldest change not applied yet was seen (held-back ones aside)."""
        with self._condition:
            firsts = [self._reason_since, self._carried_since, self._applying_since]
            if self._queued:
                firsts.append(self._queued[0].since)
            known = [first for first in firsts if first is not None]
            return min(known) if known else None

    def _ready(self, now: float) -> bool:
        return bool(
            self._queued
            or self._carried
            or self._reason is not None
            or any(until <= now for _, until in self._deferred.values())
        )

    def wait(self, stopping: threading.Event, wake_at: float | None = None) -> bool:
        """Wait until there is something to take, a held-back change is due or `wake_at`
        (monotonic) has come; False if stopping first."""
        with self._condition:
            while not stopping.is_set():
                now = time.monotonic()
                if self._ready(now):
                    return True
                due = [until for _, until in self._deferred.values()]
                due += [wake_at] if wake_at is not None else []
                if not due:
                    self._condition.wait()  # `put` or `wake` notifies: no idle wake-ups
                    continue
                remaining = min(due) - now
                if remaining <= 0:
                    return True
                self._condition.wait(remaining)
            return False

    def wait_closed(self, timeout: float) -> bool:
        """Wait until the source's last batch is in, for up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def take(self, *, everything: bool = False) -> Taken:
        """The next batch: the queued batches up to the next one with renames (a batch with
        renames goes alone, since merging drops them), with what failed before and the held-back
        changes that are due (all of them with `everything`)."""
        with self._condition:
            reason, self._reason = self._reason, None
            taken: list[Queued] = []
            while self._queued:
                head = self._queued[0]
                if head.batch.moves and (taken or self._carried or reason is not None):
                    break
                taken.append(self._queued.popleft())
                self._size -= len(head.batch.changes) + len(head.batch.moves)
                if head.batch.moves:
                    break
            carried, self._carried = self._carried, Batch()
            sinces = [self._reason_since, self._carried_since, *(q.since for q in taken)]
            self._reason_since = self._carried_since = None
            known = [since for since in sinces if since is not None]
            since = min(known) if known else None
            self._applying_since = since
            now = time.monotonic()
            alone = len(taken) == 1 and bool(taken[0].batch.moves) and not everything
            due = [
                change
                for change, until in self._deferred.values()
                if not alone and (everything or until <= now)
            ]
            for change in due:
                del self._deferred[change.path]
        batches = [carried] if carried else []
        batches += [queued.batch for queued in taken]
        if due:
            batches.append(Batch((), tuple(due)))
        batch = _merged(batches)
        if reason is not None:
            batch = Batch(batch.moves, batch.changes, full_resync=True)
        events = sum(queued.events for queued in taken)
        return Taken(Gathered(batch, events, since), reason)


def _repeats(last: Batch, batch: Batch) -> bool:
    """Whether `batch` only repeats `last`, the queue's tail (an editor saving one file again and
    again while the target is away): queued once, it keeps the queue from growing."""
    return not last.moves and not batch.moves and last.changes == batch.changes


def _merged(batches: list[Batch]) -> Batch:
    """One batch with the outcome of `batches` in order, as `merge` would fold them; a lone
    batch keeps its renames.

    One pass and one sort whatever their number: catching up on a hundred thousand one-file
    batches costs as much as one batch of a hundred thousand changes, not a sort per batch.
    """
    if len(batches) <= 1:
        return batches[0] if batches else Batch()
    kinds: dict[str, ChangeKind] = {}
    for batch in batches:
        for change in batch.without_moves().changes if batch.moves else batch.changes:
            # `merge`'s rule: the later change wins, but a tree sync stays deep.
            if not (
                kinds.get(change.path) is ChangeKind.SYNC_TREE and change.kind is ChangeKind.SYNC
            ):
                kinds[change.path] = change.kind
    union = Batch((), tuple(Change(path, kind) for path, kind in kinds.items()))
    ordered = union.without_moves()  # sorted: parents first, nothing below a deleted directory
    return Batch((), ordered.changes, any(batch.full_resync for batch in batches))


def _earliest(first: float | None, second: float | None) -> float | None:
    known = [value for value in (first, second) if value is not None]
    return min(known) if known else None
