"""What git ignores, in the terms rsync understands: the ignored paths themselves.

rsync's own ``--filter=':- .gitignore'`` reads each file as rsync patterns, which is not git: a
pattern with a slash inside matches at any depth in rsync (``doc/*.html`` leaves out
``src/doc/a.html``, which git keeps: the pattern is anchored at its file's directory), ``a/**/b``
needs a directory between ``a`` and ``b``, and a ``!`` line re-includes nothing. So the daemon,
which knows the tree, lists what its own matcher ignores where rsync will look, and gives each
path to rsync as an anchored exclude: rsync then neither copies it nor deletes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from pylsyncd.coalesce import Batch, ChangeKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.git_excludes import GitExcludes


def ignored_paths(
    excludes: ExcludeRules, roots: tuple[str, ...], batch: Batch | None
) -> list[tuple[str, bool]]:
    """(path, is_dir) of every topmost entry git ignores where rsync walks: below the batch's
    tree syncs and deletions (None: the whole tree), in the source and in the destination.

    Entries the rsync patterns exclude are not listed (their own `--filter` rules exclude
    them), nor looked into. Empty without GITIGNORE.
    """
    if not isinstance(excludes, GitExcludes):
        return []
    tops: Iterable[str] = (
        [""] if batch is None else {c.path for c in batch.changes if c.kind is not ChangeKind.SYNC}
    )
    found: dict[tuple[str, bool], None] = {}
    for top in sorted(tops):
        for root in roots:
            _walk(excludes, root, top, found)
    return list(found)


def _walk(excludes: GitExcludes, root: str, top: str, found: dict[tuple[str, bool], None]) -> None:
    """Add what git ignores below `top` in the tree at `root` (not through a symlink)."""
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            entries = os.scandir(os.path.join(root, directory) if directory else root)
        except OSError:
            continue  # not a directory there, or gone: nothing below it to list
        with entries:
            for entry in entries:
                path = f"{directory}/{entry.name}" if directory else entry.name
                is_dir = entry.is_dir(follow_symlinks=False)
                if ExcludeRules.excludes(excludes, path, is_dir):
                    continue
                if excludes.git.ignores(path, is_dir):
                    found[(path, is_dir)] = None
                elif is_dir:
                    stack.append(path)
