"""The `direct` backend: applies a batch with in-process file operations (no child process).

Renames are replayed as renames, so moving a directory of 10,000 files costs one syscall;
deleting a tree is one recursive removal; files are written through a temporary file and a
rename. All destination access goes through `DestinationTree`, which never follows symlinks.

The work is done by runs, one per batch or full sync, each over the transfer's `TransferState`:
`Replay` (replay.py) for a batch, `FullSync` (full_sync.py) for a full sync, both made of the tree
sync in tree_sync.py.
"""

from __future__ import annotations

from pylsyncd.coalesce import Batch
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome, Ownership, Progress
from pylsyncd.transfer.full_sync import FullSync
from pylsyncd.transfer.replay import Replay, expire_vanished
from pylsyncd.transfer.run import TransferState
from pylsyncd.watch.first_walk import FirstWalk


class DirectTransfer:
    """Mirrors `source` into `destination` on the same machine."""

    def __init__(
        self,
        source: str,
        destination: str,
        excludes: ExcludeRules,
        *,
        delete: bool,
        ownership: Ownership | None = None,
        in_place_size: int = 16 * 1024 * 1024,
    ):
        self.state = TransferState(
            source,
            destination,
            excludes,
            ownership or Ownership.for_daemon(None, None),
            in_place_size=in_place_size,
        )
        self.delete = delete  # deletions while running (DELETE=true or running)
        self._full_sync: FullSync | None = None  # the one in progress, for `cancel`
        self._replay: Replay | None = None  # likewise

    def cancel(self) -> None:
        """Stop the transfer in progress, from another thread: the shutdown grace ran out."""
        self.state.cancelled.set()
        full_sync = self._full_sync
        if full_sync is not None:
            # The helper now, from this thread: the pair's thread may be the one that is stuck.
            full_sync.stop_helper()
        replay = self._replay
        if replay is not None and replay.sharing is not None:
            replay.sharing.cancel()

    def apply(self, batch: Batch, *, final: bool = False) -> Outcome:
        if not self.delete and batch.moves:
            batch = batch.without_moves()  # a rename would remove the old name
        expire_vanished(self.state)
        run = self._replay = Replay(self.state, delete=self.delete, may_defer=not final)
        try:
            run.replay(batch)
        finally:
            self._replay = None
            run.finish()
        return run.outcome

    def full_sync(
        self, *, delete: bool, progress: Progress | None = None, walk: FirstWalk | None = None
    ) -> Outcome:
        run = self._full_sync = FullSync(self.state, delete=delete, progress=progress)
        try:
            run.sync_all(walk)
        finally:
            self._full_sync = None
            run.finish()
        return run.outcome
