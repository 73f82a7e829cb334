"""A big live batch shared with a helper process: its files and symlinks, not its directories.

A storm (a tree copied in, a checkout) comes as batches of tens of thousands of changes, and
one Python thread syncs about 15,000 files a second: the batch after `cp -a` of /usr/share took
3.7 s alone. A batch of at least `TransferState.helper_batch_min` changes is replayed in two
steps. First, in order, everything as usual but the changed regular files and symlinks, which
are only looked at (lstat) and set aside, each one's destination directory made sure of: the
directories (their creation, their extras' removal), deletions, big, hot and hard-linked files
stay in this process, with the state they need. Then the set-aside entries are synced in parts,
this process taking them from the front and the helper process from the end, each synced as
`Replay.change` syncs one (copied even when size and mtime match).

Nothing is lost by the split: the two processes write different names, each through its own
temporary files; a directory's times are set by whichever wrote in it last, and this process
sets them all again at the end of the batch (`Run.finish`), after every report is in. What the
helper finds gone is remembered here as vanished, as this process would have. If the helper
dies, its parts are synced here.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import deque

from pylsyncd.coalesce import Change, ChangeKind
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.transfer.directories import split
from pylsyncd.transfer.file_copy import TIMED_SIZE
from pylsyncd.transfer.helper.client import Helper, can_help
from pylsyncd.transfer.helper.protocol import ChangedEntries, SubtreeReport
from pylsyncd.transfer.helper_sharing import share_work, start_helper
from pylsyncd.transfer.tree_sync import TreeSync

log = logging.getLogger(__name__)

# The helper's niceness: a storm's batches come while the program that makes the storm runs (a
# `cp -a`, an install), and the helper is to take the core that program leaves, not its own.
HELPER_NICE = 10
# Entries per part handed out: big enough that a report's cost is small beside the part's
# (about 10 ms of work), small enough that the two processes end close together.
_PART = 200


class BatchReplay(TreeSync):
    """What sharing needs of a batch's replay (`replay.Replay` is one)."""

    def change(self, change: Change) -> None:
        """Sync one change of the batch, as a replay does."""
        raise NotImplementedError

    def vanished_elsewhere(self, path: str) -> None:
        """The helper process found `path` gone: remember it as the replay would."""
        raise NotImplementedError


class BatchSharing:
    """The entries of one big batch set aside for sharing, and the helper process that shares
    them."""

    def __init__(self, replay: BatchReplay, helper: Helper) -> None:
        self._replay = replay
        self.helper: Helper | None = helper  # started at once: it boots while we look
        self._set_aside: list[str] = []
        self._parent: str | None = None  # the last destination directory made sure of

    @classmethod
    def for_batch(cls, replay: BatchReplay, changes: int) -> BatchSharing | None:
        """Sharing for a batch of `changes` changes, when it is worth a helper process and one
        can run beside us."""
        state = replay.state
        if (
            changes < state.helper_batch_min
            or state.create_only
            # Git's rules are this process's, read again live; the helper would read its own.
            or isinstance(state.excludes, GitExcludes)
            or not can_help()
        ):
            return None
        helper = start_helper(state, delete=replay.delete, nice=HELPER_NICE)
        return None if helper is None else cls(replay, helper)

    def set_aside(self, change: Change) -> bool:
        """Whether `change` is set aside for sharing: a changed regular file (small, of one
        name) or symlink whose destination directory is there. Otherwise the caller syncs it
        now, as usual."""
        if change.kind is not ChangeKind.SYNC or change.path == "":
            return False
        replay = self._replay
        try:
            found = replay.source_tree.lstat(change.path)
            if found is None or not _shareable(found):
                return False
            parent = split(change.path)[0]
            if parent != self._parent:
                replay.tree.ensure_dir(parent)  # here: never made by both processes at once
                self._parent = parent
        except OSError:
            return False  # the usual sync tells what it is
        self._set_aside.append(change.path)
        return True

    def sync_set_aside(self) -> None:
        """Sync what was set aside: parts from the front here, from the end by the helper."""
        paths = self._set_aside
        parts = deque(
            ChangedEntries(str(number), paths[start : start + _PART])
            for number, start in enumerate(range(0, len(paths), _PART))
        )
        total, replay = len(parts), self._replay

        def here(part: ChangedEntries) -> None:
            for path in part.paths:
                replay.trim_descriptors("")
                replay.attempt(replay.change, Change(path, ChangeKind.SYNC))

        helped = share_work(
            replay,
            self,
            parts,
            key=lambda part: part.key,
            give=Helper.give_changed,
            do_here=here,
            reported=self._vanished,
        )
        log.debug("batch: %d of its %d parts synced by the helper process", helped, total)

    def stop(self) -> None:
        """Stop the helper process and close the pipes to it (the pair's thread)."""
        helper = self.helper
        if helper is not None:
            helper.close()
            self.helper = None

    def cancel(self) -> None:
        """Stop the helper process now, from any thread: cancelled at shutdown, it must not
        write on after the daemon has gone (its pipes are left to `stop`)."""
        helper = self.helper
        if helper is not None:
            helper.stop()

    def _vanished(self, report: SubtreeReport) -> None:
        for path in report.vanished:
            self._replay.vanished_elsewhere(path)


def _shareable(found: os.stat_result) -> bool:
    """A small regular file of one name (what the hot-file and hard-link rules need not know
    of), or a symlink."""
    mode = found.st_mode
    if stat.S_ISLNK(mode):
        return True
    return stat.S_ISREG(mode) and found.st_nlink == 1 and found.st_size < TIMED_SIZE
