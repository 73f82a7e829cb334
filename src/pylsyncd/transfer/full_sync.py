"""The direct backend's full sync, shared with a helper process.

The top of the tree is synced here until enough directories are found (or the tree has been
gone into deep enough); those subtrees are then shared with a helper process (see
`pylsyncd.transfer.helper`) when one can run beside us: it takes them from the end while we take
them from the front, until none is left.
"""

from __future__ import annotations

import errno
import logging
from collections import deque

from pylsyncd.coalesce import Change, ChangeKind
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.transfer import Progress
from pylsyncd.transfer.helper.client import Helper, can_help
from pylsyncd.transfer.helper.protocol import Settings, SubtreeReport
from pylsyncd.transfer.run import Run, TransferState
from pylsyncd.transfer.tree_sync import TreeSync

log = logging.getLogger(__name__)

# A full sync syncs the top of the tree itself until it finds this many directories (or has gone
# this deep), then shares those subtrees with a helper process.
_SUBTREES_WANTED = 8
_SPLIT_DEPTH = 3


class FullSync(TreeSync):
    """A full sync: the top of the tree here, then its subtrees, some by a helper process."""

    def __init__(self, state: TransferState, *, delete: bool, progress: Progress | None = None):
        super().__init__(state, delete=delete, progress=progress)
        # The helper process while one runs: `stop_helper` may stop it from another thread.
        self.helper: Helper | None = None

    def sync_all(self) -> None:
        """Compare the whole tree (size and mtime) and copy what differs."""
        subtrees = self.sync_top(_SUBTREES_WANTED, _SPLIT_DEPTH)
        self._sync_subtrees(deque(subtrees))

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

    def sync_top(self, wanted: int, depth: int) -> list[str]:
        """Sync the top of the tree: files, and directories without their contents, one level
        after the other until a level has `wanted` directories or `depth` levels are done.

        Returns the directories of the last level: subtrees still to be synced.
        """
        level: list[str] = []
        self.defer = level.append
        try:
            self.attempt(self._sync_root, Change("", ChangeKind.SYNC_TREE))
            for _ in range(depth - 1):
                if len(level) >= wanted:
                    break
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

    def _sync_subtrees(self, subtrees: deque[str]) -> None:
        """Sync the subtrees, sharing them with a helper process when one can run beside us: it
        takes them from the end while we take them from the front, until none is left."""
        helper = self.helper = self._start_helper() if len(subtrees) > 1 else None
        given: set[str] = set()  # to the helper, not reported yet
        helped = 0
        try:
            while subtrees or given:
                if helper is not None:
                    try:
                        for report in helper.reports(0 if subtrees else 0.1):
                            given.discard(report.path)
                            self.add_report(report)
                            helped += 1
                        while helper.wants_work() and len(subtrees) > 1:
                            given.add(subtrees[-1])
                            helper.give(subtrees.pop())
                    except ChildProcessError as error:
                        if self.state.cancelled.is_set():  # `stop_helper` stopped it
                            raise InterruptedError(errno.EINTR, "cancelled at shutdown") from None
                        log.warning("%s; syncing its part here", error)
                        helper.close()
                        helper = self.helper = None
                        subtrees.extend(sorted(given))
                        given.clear()
                    if not subtrees and helper is not None and not helper.ready:
                        break  # it is not even started: this tree was small, we are done
                if self.state.cancelled.is_set():
                    raise InterruptedError(errno.EINTR, "cancelled at shutdown")
                if subtrees:
                    self.attempt(self.sync_tree, Change(subtrees.popleft(), ChangeKind.SYNC_TREE))
        except InterruptedError as error:
            self.fail(Change("", ChangeKind.SYNC_TREE), error)
        finally:
            if helper is not None:
                helper.close()
                self.helper = None
        log.debug("full sync: %d of its subtrees synced by the helper process", helped)

    def _start_helper(self) -> Helper | None:
        return start_helper(self.state, delete=self.delete)

    def add_report(self, report: SubtreeReport) -> None:
        """Count what the helper process did in one subtree as done by this run."""
        count_report(self, report)


def start_helper(state: TransferState, *, delete: bool, nice: int = 0) -> Helper | None:
    """A helper process with the same settings as `state`'s transfer, at niceness `nice`; None
    when it cannot run beside us (one core) or would not start."""
    if not can_help():
        return None
    settings = Settings(
        state.source,
        state.destination,
        list(state.excludes.patterns),
        delete,
        state.ownership.uid,
        state.ownership.gid,
        state.ownership.preserve,
        sorted(state.reported_unreadable),
        logging.getLogger("pylsyncd").getEffectiveLevel(),
        state.in_place_size,
        gitignore=isinstance(state.excludes, GitExcludes),
        create_only=state.create_only,
        nice=nice,
    )
    try:
        return Helper(settings)
    except OSError as error:
        log.debug("no helper process: %s", error)
        return None


def count_report(run: Run, report: SubtreeReport) -> None:
    """Count what the helper process did in one part of `run`'s work as done by `run`."""
    run.outcome.copied += report.copied
    run.outcome.bytes += report.bytes
    run.outcome.dirs += report.dirs
    run.outcome.links += report.links
    run.outcome.deleted += report.deleted
    run.failed += report.failed_changes()
    if run.outcome.error is None:
        run.outcome.error = report.error
    run.state.reported_unreadable.update(report.unreadable)
    run.entries += report.entries
    if run.progress is not None:
        run.progress(run.entries)
