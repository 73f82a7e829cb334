"""The direct backend's full sync, shared with a helper process.

The top of the tree is synced here until enough directories are found (or the tree has been
gone into deep enough); those subtrees are then shared with a helper process (see
`pylsyncd.transfer.helper`) when one can run beside us: it takes them from the end while we take
them from the front, until none is left.
"""

from __future__ import annotations

import logging
from collections import deque

from pylsyncd.coalesce import Change, ChangeKind
from pylsyncd.transfer import Progress
from pylsyncd.transfer.helper.client import Helper
from pylsyncd.transfer.helper_sharing import share_work, start_helper
from pylsyncd.transfer.run import TransferState
from pylsyncd.transfer.tree_sync import TreeSync
from pylsyncd.watch.first_walk import SPLIT_DEPTH, SPLIT_WANTED, FirstWalk

log = logging.getLogger(__name__)


class FullSync(TreeSync):
    """A full sync: the top of the tree here, then its subtrees, some by a helper process."""

    def __init__(self, state: TransferState, *, delete: bool, progress: Progress | None = None):
        super().__init__(state, delete=delete, progress=progress)
        # The helper process while one runs: `stop_helper` may stop it from another thread.
        self.helper: Helper | None = None

    def sync_all(self, walk: FirstWalk | None = None) -> None:
        """Compare the whole tree (size and mtime) and copy what differs. `walk`: the source
        watcher's first walk, which has watched the top of the tree and may still be watching
        the subtrees below it; each is read once covered (`watch.first_walk`)."""
        subtrees = self.sync_top(SPLIT_WANTED, SPLIT_DEPTH, walk)
        self._sync_subtrees(deque(subtrees), walk)

    def sync_subtrees(self, paths: list[str]) -> None:
        """Compare these subtrees (their parents exist in the destination) and copy what
        differs, shared with a helper process as a whole tree's are."""
        self._sync_subtrees(deque(paths))

    def stop_helper(self) -> None:
        """Stop the helper process now (TERM, then KILL), from any thread: cancelled at shutdown,
        it must not write on after the daemon has gone."""
        helper = self.helper
        if helper is not None:
            helper.stop()

    def sync_top(self, wanted: int, depth: int, walk: FirstWalk | None = None) -> list[str]:
        """Sync the top of the tree: files, and directories without their contents, one level
        after the other until a level has `wanted` directories or `depth` levels are done.
        `walk`: a level the first walk has not watched yet is read once the walk is over (the
        tree changed between its split and ours).

        Returns the directories of the last level: subtrees still to be synced.
        """
        level: list[str] = []
        self.defer = level.append
        try:
            self.attempt(self._sync_root, Change("", ChangeKind.SYNC_TREE))
            for number in range(1, depth):
                if len(level) >= wanted:
                    break
                if walk is not None and not walk.watched_level(number):
                    walk.wait_whole()
                above, level = level, []
                self.defer = level.append
                for path in above:
                    self.trim_descriptors("")
                    self.attempt(self.sync_tree, Change(path, ChangeKind.SYNC_TREE))
        finally:
            self.defer = None
        return level

    def _sync_root(self, change: Change) -> None:
        """The root, as a batch's change of it is synced (for the root, `forced` changes nothing:
        its entries are compared as in any tree)."""
        self.sync(change.path, recursive=True, forced=True)

    def _sync_subtrees(self, subtrees: deque[str], walk: FirstWalk | None = None) -> None:
        """Sync the subtrees, sharing them with a helper process when one can run beside us: it
        takes them from the end while we take them from the front, until none is left. While
        `walk` goes on, only the helper syncs, and only the subtrees it covers."""
        if len(subtrees) > 1:
            self.helper = start_helper(self.state, delete=self.delete)
        helped = share_work(
            self,
            self,
            subtrees,
            key=str,
            give=Helper.give,
            do_here=lambda path: self.attempt(self.sync_tree, Change(path, ChangeKind.SYNC_TREE)),
            walk=walk,
        )
        log.debug("full sync: %d of its subtrees synced by the helper process", helped)
