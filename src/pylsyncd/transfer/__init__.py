"""Transfers apply a batch of changes to a destination: in-process (`direct`) or with `rsync`."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pylsyncd.coalesce import Batch, Change
from pylsyncd.watch.first_walk import FirstWalk

# Called during a full sync with the number of source entries handled so far.
Progress = Callable[[int], None]


@dataclass
class Outcome:
    """What applying a batch (or a full sync) did, for the log and the retry logic."""

    copied: int = 0  # regular files written
    bytes: int = 0  # bytes written into those files (only what changed, for a big file)
    dirs: int = 0  # directories created or updated
    links: int = 0  # symlinks created
    deleted: int = 0  # entries removed (a directory tree counts once)
    moved: int = 0  # renames replayed
    failed: Batch = field(default_factory=Batch)  # what must be retried
    error: str | None = None  # the first failure, for the log
    # Changes held back, not failed: a hot file's copy not paid back yet, an appended file's
    # whole comparison (see `hot_files`). Applied again from `deferred_until` (monotonic).
    deferred: Batch = field(default_factory=Batch)
    deferred_until: float = 0.0

    def defer(self, change: Change, until: float) -> None:
        """Hold `change` back until `until`; the earliest such time is the one kept."""
        first = not self.deferred.changes
        self.deferred = Batch((), (*self.deferred.changes, change))
        self.deferred_until = until if first else min(self.deferred_until, until)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Ownership:
    """Who owns what a transfer writes: PUID/PGID when given, else the source's owner when we
    are root (as `rsync -a` does), else whoever runs the daemon."""

    uid: int | None = None
    gid: int | None = None
    preserve: bool = False  # copy the source's owner where uid or gid is not given

    @classmethod
    def for_daemon(cls, uid: int | None, gid: int | None) -> Ownership:
        return cls(uid, gid, preserve=os.geteuid() == 0)

    def of(self, source: os.stat_result) -> tuple[int, int] | None:
        """(uid, gid) to give an entry copied from `source` (-1: leave as created); None: none."""
        uid = self.uid if self.uid is not None else (source.st_uid if self.preserve else -1)
        gid = self.gid if self.gid is not None else (source.st_gid if self.preserve else -1)
        return None if uid == gid == -1 else (uid, gid)

    def matches(self, existing: os.stat_result, source: os.stat_result) -> bool:
        """Whether `existing` already has the owner a copy of `source` would get."""
        owner = self.of(source)
        if owner is None:
            return True
        uid, gid = owner  # no generator: this runs once per file copied
        return uid in (-1, existing.st_uid) and gid in (-1, existing.st_gid)


class Transfer(Protocol):
    """Makes destination paths equal to the source paths as they are now."""

    def apply(self, batch: Batch, *, final: bool = False) -> Outcome:
        """Apply moves, then changes; failures end up in `Outcome.failed`, never raised.

        `final`: the last batch before the daemon exits; nothing is deferred.
        """

    def full_sync(
        self, *, delete: bool, progress: Progress | None = None, walk: FirstWalk | None = None
    ) -> Outcome:
        """Compare the whole tree (size and mtime) and copy what differs; delete extras if asked.

        `walk`: the source watcher's first walk, still under way: a directory is read only once
        it covers it (`watch.first_walk`)."""

    def cancel(self) -> None:
        """Stop the transfer in progress, from another thread; it then fails and is retried."""
