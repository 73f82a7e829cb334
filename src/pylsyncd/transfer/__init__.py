"""Transfers apply a batch of changes to a destination: in-process (`direct`) or with `rsync`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pylsyncd.coalesce import Batch

# Called during a full sync with the number of source entries handled so far.
Progress = Callable[[int], None]


@dataclass
class Outcome:
    """What applying a batch (or a full sync) did, for the log and the retry logic."""

    copied: int = 0  # regular files written
    bytes: int = 0  # bytes of those files
    dirs: int = 0  # directories created or updated
    links: int = 0  # symlinks created
    deleted: int = 0  # entries removed (a directory tree counts once)
    moved: int = 0  # renames replayed
    failed: Batch = field(default_factory=Batch)  # what must be retried
    error: str | None = None  # the first failure, for the log

    @property
    def ok(self) -> bool:
        return self.error is None


class Transfer(Protocol):
    """Makes destination paths equal to the source paths as they are now."""

    def apply(self, batch: Batch) -> Outcome:
        """Apply moves, then changes; failures end up in `Outcome.failed`, never raised."""

    def full_sync(self, *, delete: bool, progress: Progress | None = None) -> Outcome:
        """Compare the whole tree (size and mtime) and copy what differs; delete extras if asked."""

    def cancel(self) -> None:
        """Stop the transfer in progress, from another thread; it then fails and is retried."""
