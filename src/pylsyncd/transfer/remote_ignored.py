"""What git ignores in a remote destination, so that rsync neither copies it nor deletes it.

With GITIGNORE the rsync backend gives rsync each ignored path as an anchored exclude
(`rsync_ignored`), found by walking both trees where rsync will walk. A remote destination
cannot be walked here: without its list, rsync's `--delete` removed what git ignores there and
the source lacks (a build output, a local `.env`), which a local destination keeps. So the
remote lists the entries below the same tops itself, over the target's master connection, and
the daemon's own matcher picks the ignored ones, as `rsync_ignored` does for a local tree.

The listing is one constant command, as the rename replay (`rsync_renames`): POSIX `find`
(which never follows a symlink by default) and `printf`, the destination and the tops on stdin
as NUL-separated data. `find` cannot leave out what only the daemon's matcher knows, so the
remote lists all of each top; the listing runs only with GITIGNORE, for a full comparison and
for a batch's tree syncs and deletions.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
from collections.abc import Callable, Iterable

from pylsyncd.coalesce import Batch, ChangeKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.git_excludes import GitExcludes

# Run once per top, $1 the destination, $2 the top (relative, '' for the whole tree). Each
# entry is printed as `d` or `f` and its path from the destination, NUL-terminated.
_LIST_ONE = r"""
cd -- "$1" || exit 0
find "./$2" \( -type d -exec printf 'd%s\0' {} + \) -o -exec printf 'f%s\0' {} +
"""
LIST_COMMAND = ("xargs", "-0", "-n", "2", "sh", "-c", _LIST_ONE, "sh")
# ssh's own status when it could not run the command at all; find says 1 for a missing top.
_SSH_FAILED = 255


class RemoteListingError(OSError):
    """The remote could not be listed: what git ignores there is unknown."""


def remote_ignored(
    excludes: ExcludeRules,
    root: str,
    batch: Batch | None,
    run: Callable[[bytes], subprocess.CompletedProcess[bytes]],
) -> list[tuple[str, bool]]:
    """(path, is_dir) of every topmost entry git ignores in the remote destination at `root`,
    below the batch's tree syncs and deletions (None: the whole tree); empty without GITIGNORE.

    Raises RemoteListingError when ssh could not list it."""
    if not isinstance(excludes, GitExcludes):
        return []
    # The same tops as `rsync_ignored.ignored_paths`: where rsync walks.
    tops = sorted(
        {""} if batch is None else {c.path for c in batch.changes if c.kind is not ChangeKind.SYNC}
    )
    if not tops:
        return []
    result = run(b"".join(os.fsencode(root) + b"\0" + os.fsencode(top) + b"\0" for top in tops))
    if result.returncode == _SSH_FAILED:
        said = result.stderr.decode(errors="replace").strip().splitlines()
        raise RemoteListingError(said[-1] if said else "the remote destination was not listed")
    found: dict[tuple[str, bool], None] = {}
    for top in tops:
        found.update(dict.fromkeys(_ignored_below(excludes, top, _entries(result.stdout, top))))
    return list(found)


def _entries(listing: bytes, top: str) -> Iterable[tuple[str, bool]]:
    """(path, is_dir) of the listing's entries strictly below `top`."""
    for item in listing.split(b"\0"):
        if not item:
            continue
        # `./top/x`, or `.//x` for the whole tree: no component is `.` or `..` but the first.
        path = posixpath.normpath(os.fsdecode(item[1:]))
        if path != "." and (not top or path.startswith(top + "/")):
            yield path, item[:1] == b"d"


def _ignored_below(
    excludes: GitExcludes, top: str, entries: Iterable[tuple[str, bool]]
) -> list[tuple[str, bool]]:
    """The topmost entries git ignores, never looking below an excluded or ignored directory
    (as `rsync_ignored` walks a local tree)."""
    found: list[tuple[str, bool]] = []
    closed: set[str] = set()  # directories whose contents are left out already
    # Sorted, a directory comes before everything below it (its path is their prefix).
    for path, is_dir in sorted(entries):
        if _below(path, top, closed):
            continue
        if ExcludeRules.excludes(excludes, path, is_dir):
            closed.add(path)
        elif excludes.git.ignores(path, is_dir):
            found.append((path, is_dir))
            closed.add(path)
    return found


def _below(path: str, top: str, closed: set[str]) -> bool:
    """Whether an ancestor of `path` below `top` is in `closed`."""
    parent = path.rpartition("/")[0]
    while parent and parent != top:
        if parent in closed:
            return True
        parent = parent.rpartition("/")[0]
    return False
