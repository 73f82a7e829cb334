"""The rsync backend to a remote destination, over the target's one ssh master connection.

A batch's renames are replayed on the remote first, by one remote command over the master: a
constant POSIX `sh` script, run by `xargs -0` on the names it reads from stdin as NUL-separated
data (never in a command line), so a renamed 100 MB file or 10,000-file tree costs a few hundred
bytes, not its content. POSIX sh and xargs, not Python: every host that runs rsync has them, not
all have Python. Then one rsync carries the content and the deletions; rsync's own `--delete`
removes a deleted entry, and never follows a symlink to do it.

Nothing is written outside the destination: the script renames only when every directory from the
destination down to both parents is a real directory (`[ -L ]` on each component), and an entry
at the new name that is a symlink is removed, never followed. A rename it refuses, or whose old
name the remote lacks, is printed back and becomes a copy of both ends, as rsync alone would do.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Sequence

from pylsyncd.coalesce import Batch, Change, ChangeKind, Move
from pylsyncd.config.remote import RemoteDestination
from pylsyncd.events import parent_of
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome, Ownership, Progress
from pylsyncd.transfer.rsync import RsyncTransfer
from pylsyncd.transfer.ssh_master import SshMaster

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


class RemoteRsyncTransfer(RsyncTransfer):
    """Mirrors `source` into a remote destination with rsync over the target's ssh master."""

    local = False

    def __init__(
        self,
        source: str,
        remote: RemoteDestination,
        master: SshMaster,
        excludes: ExcludeRules,
        *,
        delete: bool,
        extra_args: Sequence[str] = (),
        ownership: Ownership | None = None,
        in_place_size: int = 16 * 1024 * 1024,
    ):
        super().__init__(
            source,
            str(remote),
            excludes,
            delete=delete,
            extra_args=extra_args,
            ownership=ownership,
            in_place_size=in_place_size,
        )
        self.remote = remote
        self.master = master

    def _command(self, *rules: str, delete: bool) -> list[str]:
        # `-e`: rsync splits it on spaces itself (quotes kept), never through a shell; --mkpath
        # makes a missing destination with its parents, as the daemon does for a local one.
        shell = shlex.join(self.master.client())
        return [*super()._command(*rules, delete=delete), "-e", shell, "--mkpath"]

    def _paths(self) -> list[str]:
        return ["--", self.source.rstrip("/") + "/", self.remote.rsync_path]

    def full_sync(self, *, delete: bool, progress: Progress | None = None) -> Outcome:
        error = self.master.connect()
        if error is not None:
            return Outcome(error=error)
        return super().full_sync(delete=delete, progress=progress)

    def apply(self, batch: Batch, *, final: bool = False) -> Outcome:
        error = self.master.connect()
        if error is not None:
            return Outcome(error=error, failed=batch)
        if not self.delete or not batch.moves:
            return super().apply(batch, final=final)  # a rename deletes its old name
        for move in batch.moves:
            self.hard_links.moved(move.source, move.target)
        result = self.master.run(
            shlex.join(RENAME_COMMAND), rename_input(self.remote.path, batch.moves)
        )
        if result.returncode != 0:
            line = result.stderr.decode(errors="replace").strip().splitlines()
            return Outcome(error=line[-1] if line else "renames failed", failed=batch)
        refused = {os.fsdecode(name) for name in result.stdout.split(b"\0") if name}
        changes = [change for move in batch.moves for change in self._after(move, refused)]
        outcome = super().apply(Batch((), (*changes, *batch.changes)), final=final)
        outcome.moved = len(batch.moves) - len(refused)
        log.debug(
            "renamed %d on the remote (%d refused) with %d bytes of input",
            outcome.moved,
            len(refused),
            len(rename_input(self.remote.path, batch.moves)),
        )
        return outcome

    def _after(self, move: Move, refused: set[str]) -> list[Change]:
        """What rsync still does for a rename: its parents' times and the renamed directory's
        own attributes; both ends in full when the remote did not rename it."""
        if move.source in refused:
            return [Change(end, ChangeKind.SYNC_TREE) for end in (move.target, move.source)]
        changes = [Change(parent_of(move.source), ChangeKind.SYNC)]
        changes.append(Change(parent_of(move.target), ChangeKind.SYNC))
        if move.is_dir:
            changes.append(Change(move.target, ChangeKind.SYNC))
        if os.path.lexists(os.path.join(self.source, move.source)):
            # The old name was made again since the rename: what is there now is copied.
            changes.append(Change(move.source, ChangeKind.SYNC_TREE))
        return changes
