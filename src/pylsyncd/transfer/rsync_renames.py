"""The rsync backend's renames, replayed as renames: one command per batch, local or remote.

rsync cannot rename: on its own, a renamed tree is a deletion and a copy of every file (5.1 s
for a 10,000-file tree on the local rsync backend; its whole content again over ssh). So a batch's
renames run first as one command: a constant POSIX `sh` script run by `xargs -0` on the names,
which it reads from stdin as NUL-separated data (never in a command line, so no name is parsed
by a shell or read as an option). On a remote destination it runs there, over the target's ssh
master: POSIX sh and xargs, not Python, since every host that runs rsync has them and not all
have Python. Then rsync carries the content and the deletions; rsync's own `--delete` removes a
deleted entry, and never follows a symlink to do it.

Nothing is written outside the destination: the script renames only when every directory from
the destination down to both parents is a real directory (`[ -L ]` on each component), and an
entry at the new name that is a symlink is removed, never followed. A rename it refuses, or whose
old name the destination lacks, is printed back and becomes a copy of both ends, as rsync alone
would do.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence

from pylsyncd.coalesce import Batch, Change, ChangeKind, Move
from pylsyncd.events import is_within, parent_of

log = logging.getLogger(__name__)

# Run once per rename with $1 the destination, $2 the old name, $3 the new one (relative), $4 `d`
# when a directory was renamed. `safe` says whether every directory from the destination down
# to the parent of its argument is a real directory, not a symlink. A directory's rename needs a
# real directory at the old name (renaming a symlink put there would leave its content unsent).
# A rename not made prints its old name, NUL-terminated.
_RENAME_ONE = r"""
d=$1 s=$2 t=$3
if [ "$4" = d ] && { [ -L "$d/$s" ] || [ ! -d "$d/$s" ]; }; then printf '%s\0' "$s"; exit 0; fi
safe() {
    case $1 in */*) r=${1%/*} ;; *) return 0 ;; esac
    p=$d
    while :; do
        p=$p/${r%%/*}
        if [ -L "$p" ] || [ ! -d "$p" ]; then return 1; fi
        case $r in */*) r=${r#*/} ;; *) return 0 ;; esac
    done
}
if safe "$s" && safe "$t" && { [ -e "$d/$s" ] || [ -L "$d/$s" ]; }; then
    if [ -L "$d/$t" ]; then rm -f -- "$d/$t"; elif [ -d "$d/$t" ]; then rm -rf -- "$d/$t"; fi
    mv -f -- "$d/$s" "$d/$t" && exit 0
fi
printf '%s\0' "$s"
"""
# The remote command: constant, so no name is ever parsed by a shell.
RENAME_COMMAND = ("xargs", "-0", "-n", "4", "sh", "-c", _RENAME_ONE, "sh")


def rename_input(destination: str, moves: Sequence[Move]) -> bytes:
    """The rename command's stdin, NUL-separated: per move the destination, the old name, the
    new name, and `d` for a directory or `-`."""
    root = os.fsencode(destination)
    return b"".join(
        b"\0".join(
            (
                root,
                os.fsencode(move.source),
                os.fsencode(move.target),
                b"d" if move.is_dir else b"-",
            )
        )
        + b"\0"
        for move in moves
    )


def run_here(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """The rename command on this host, for a local destination."""
    return subprocess.run(
        RENAME_COMMAND, input=stdin, capture_output=True, start_new_session=True, check=False
    )


def refused(stdout: bytes) -> set[str]:
    """The old names of the renames the command did not make."""
    return {os.fsdecode(name) for name in stdout.split(b"\0") if name}


# How long the paths of a batch's events stay recent (see `RecentPaths`): the move that
# explains a file rsync did not find comes in the next batch or so, milliseconds later.
_RECENT_SECONDS = 5.0


class RecentPaths:
    """The events of the batches that ended in the last few seconds. A rename of a tree such a
    batch touched is followed by a full copy of its new name; a rename of a quiet tree, the
    user's usual one, stays a rename. Two races leave the destination's copy short:

    - a file made in the tree just before the rename is not found by the batch that names it
      (the tree has its new name already), and the destination's tree lacks it;
    - a tree sync of a directory that holds the tree ran while the tree was renamed: rsync
      listed the tree and then found its files gone (vanished, no failure), so the destination
      holds the tree with part of its files (the churn to a remote, whose rsync runs longer,
      met it)."""

    def __init__(self) -> None:
        self._batches: deque[tuple[float, tuple[Change, ...]]] = deque()

    def add(self, events: Sequence[Change]) -> None:
        """Remember a batch's events, once rsync has run for them."""
        now = time.monotonic()
        if events:
            self._batches.append((now, tuple(events)))
        while self._batches and self._batches[0][0] < now - _RECENT_SECONDS:
            self._batches.popleft()

    def doubtful(self, move: Move) -> bool:
        """Whether the destination's copy at the move's old name may lack what it carried."""
        since = time.monotonic() - _RECENT_SECONDS
        return any(
            is_within(change.path, move.source)
            or (change.kind is ChangeKind.SYNC_TREE and is_within(move.source, change.path))
            for ended, changes in self._batches
            if ended >= since
            for change in changes
        )


def replay_renames(
    batch: Batch,
    root: str,
    source_root: str,
    run: Callable[[bytes], subprocess.CompletedProcess[bytes]],
    recent: RecentPaths,
) -> tuple[int, Batch]:
    """The batch's renames replayed by `run` (the command here or on the remote) in the
    destination at `root`: how many were made, and what rsync still has to do. A failed run
    leaves both ends of every rename to rsync."""
    if not batch.moves:
        return 0, batch
    stdin = rename_input(root, batch.moves)
    result = run(stdin)
    if result.returncode != 0:
        log.debug("renames failed (%d): %r", result.returncode, result.stderr[-500:])
        return 0, batch.without_moves()
    not_made = refused(result.stdout)
    moved = len(batch.moves) - len(not_made)
    log.debug("renamed %d (%d refused) with %d bytes of input", moved, len(not_made), len(stdin))
    return moved, after_renames(batch, not_made, source_root, recent)


def after_renames(batch: Batch, not_made: set[str], source_root: str, recent: RecentPaths) -> Batch:
    """What rsync still does once the renames ran: the parents' times, a renamed directory's own
    attributes (all of it, when its copy may be stale), an old name made again since; both ends
    in full for a rename not made."""
    changes: list[Change] = []
    doubted: list[str] = []  # new names of doubtful trees: renamed on in this batch, still doubtful
    for move in batch.moves:
        if move.source in not_made:
            changes += [Change(end, ChangeKind.SYNC_TREE) for end in (move.target, move.source)]
            continue
        changes.append(Change(parent_of(move.source), ChangeKind.SYNC))
        changes.append(Change(parent_of(move.target), ChangeKind.SYNC))
        if recent.doubtful(move) or any(is_within(move.source, tree) for tree in doubted):
            doubted.append(move.target)
            changes.append(Change(move.target, ChangeKind.SYNC_TREE))
        elif move.is_dir:
            changes.append(Change(move.target, ChangeKind.SYNC))
        if os.path.lexists(os.path.join(source_root, move.source)):
            changes.append(Change(move.source, ChangeKind.SYNC_TREE))
    # A path twice is harmless: rsync's rules are a set, and a tree sync's rule covers a sync's.
    return Batch((), (*changes, *batch.changes))
