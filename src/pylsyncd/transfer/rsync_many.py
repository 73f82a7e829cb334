"""A batch too big for one include list: its files listed for rsync, its trees fewer and wider.

rsync matches every name it walks against the include rules one after another, so a batch of n
paths costs about n * n: 2,000 files took 0.35 s, 8,000 2.9 s, 16,000 9.5 s, and the 55,000
entries of `cp -a /usr/share` over a minute. Past `MOST_RULES` the batch goes in two runs whose
cost grows with n alone:
- every path the batch syncs on its own (a file, a symlink, a directory's attributes) that the
  source still has, named in `--files-from` (no recursion: `-a` does not imply `-r` there), still
  copied regardless of size and mtime, as every event is;
- everything else (tree syncs, deletions, paths gone since) as tree syncs of their ancestors,
  raised one level at a time until at most `MOST_RULES` remain, compared by size and mtime with
  `--delete`, as a full sync compares.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from pylsyncd.coalesce import Batch, Change, ChangeKind
from pylsyncd.events import parent_of
from pylsyncd.transfer.source import SourceTree

# More include rules than this and rsync's matching costs more than a wider walk.
MOST_RULES = 1000


@dataclass(frozen=True)
class ManyChanges:
    """A big batch as two rsync runs."""

    listed: list[str]  # paths for --files-from, copied regardless
    trees: Batch  # tree syncs of ancestors, compared


def split_many(batch: Batch, source: SourceTree, most: int = MOST_RULES) -> ManyChanges:
    """The batch's syncs of paths the source has, and tree syncs covering all the rest."""
    listed: list[str] = []
    rest: set[str] = set()
    for change in batch.changes:
        if change.kind is ChangeKind.SYNC and change.path and _present(source, change.path):
            listed.append(change.path)
        else:
            rest.add(change.path)
    while len(rest) > most:
        rest = {parent_of(path) for path in rest}
    trees = tuple(Change(path, ChangeKind.SYNC_TREE) for path in sorted(_outermost(rest)))
    return ManyChanges(listed, Batch((), trees))


def _present(source: SourceTree, path: str) -> bool:
    try:
        found = source.lstat(path)
    except OSError:
        return False  # the tree run says what is wrong with it
    return found is not None and not stat.S_ISSOCK(found.st_mode)


def _outermost(paths: set[str]) -> set[str]:
    """`paths` without those below another of them (their tree sync covers them)."""
    if "" in paths:
        return {""}
    return {path for path in paths if not any(ancestor in paths for ancestor in _ancestors(path))}


def _ancestors(path: str) -> list[str]:
    found = []
    while path:
        path = parent_of(path)
        if path:
            found.append(path)
    return found
