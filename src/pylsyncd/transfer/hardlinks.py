"""The other names of a hard-linked source file, so that a change made through one name reaches
the copies of all of them.

A write (or chmod, or touch) through one name raises an event for that name only, yet every name
of the inode now has the new content, mode and mtime. The destination holds one separate copy per
name (as rsync without -H), so each of them must be copied again.

Names are remembered as transfers meet them, and follow the renames a transfer replays. When a
multiply-linked file has more links than known names, the tree is searched once for all such
files of a batch (one walk, not one per file: a `pnpm install` links thousands), and once per
inode and link count: files linked from outside the tree (pnpm's store) are not looked for at
every change. A known name found stale (renamed by a rename not replayed) brings a new search.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass

from pylsyncd.events import is_within, rebase
from pylsyncd.excludes import ExcludeRules

log = logging.getLogger(__name__)

Inode = tuple[int, int]  # (st_dev, st_ino)


@dataclass
class _Wanted:
    """An inode whose names must be searched for at the end of the batch."""

    links: int  # its link count when met
    changed: bool  # changed in place: the names found must be copied too


class HardLinks:
    """Names of multiply-linked regular files below one source root."""

    def __init__(self, root: str, excludes: ExcludeRules) -> None:
        self.root = root
        self.excludes = excludes
        self._names: dict[Inode, set[str]] = {}
        self._inode_of: dict[str, Inode] = {}
        self._searched: dict[Inode, int] = {}  # inode -> link count when the tree was searched
        self._wanted: dict[Inode, _Wanted] = {}

    def others(self, path: str, source: os.stat_result, *, changed: bool) -> list[str]:
        """The known other names of the file at `path` (whose lstat is `source`).

        `changed`: the destination had this name already, so the content or attributes changed
        in place (rather than a new link made) and every other name must be copied. Names not
        known yet are looked for by `search()` at the end of the batch.
        """
        if not stat.S_ISREG(source.st_mode) or source.st_nlink < 2:
            return []
        inode = (source.st_dev, source.st_ino)
        names = self._names.setdefault(inode, set())
        stale = {name for name in names if name != path and not self._is(name, inode)}
        if stale:
            names -= stale
            for name in stale:
                self._inode_of.pop(name, None)
            self._searched.pop(inode, None)  # renamed somewhere: look again
        names.add(path)
        self._inode_of[path] = inode
        if len(names) < source.st_nlink and self._searched.get(inode) != source.st_nlink:
            wanted = self._wanted.setdefault(inode, _Wanted(source.st_nlink, changed))
            wanted.changed |= changed
        return sorted(names - {path})

    def others_of_vanished(self, path: str) -> list[str]:
        """The other names of the file last known at `path`, which is gone: a change made
        through it before it went (an event for `path` only) may not have reached them."""
        inode = self._inode_of.pop(path, None)
        if inode is None:
            return []
        names = self._names.get(inode, set())
        names.discard(path)
        return sorted(name for name in names if self._is(name, inode))

    def moved(self, source: str, target: str) -> list[str]:
        """A rename replayed in the destination: the names at or below `source` follow it.

        Returns the names known at or below `target` before it: a search reads the source as it
        is now, past renames whose events later batches carry, so a name found there may have
        been written ahead where this rename now puts the older tree. They must be synced again.
        """
        ahead = [
            name
            for name in self._inode_of
            if is_within(name, target) and not is_within(name, source)
        ]
        for name in [name for name in self._inode_of if is_within(name, source)]:
            inode = self._inode_of.pop(name)
            new = rebase(name, source, target)
            self._inode_of[new] = inode
            names = self._names.get(inode)
            if names is not None:
                names.discard(name)
                names.add(new)
        return ahead

    def search(self) -> list[tuple[str, bool]]:
        """Find the unknown names of the files met since the last search, in one walk.

        Returns each name found, and whether it must be copied whatever its size and mtime say
        (its file changed in place) or only compared (a new link, maybe changed meanwhile too).
        """
        if not self._wanted:
            return []
        wanted, self._wanted = self._wanted, {}
        found = self._walk(set(wanted))
        found_names: list[tuple[str, bool]] = []
        for inode, want in wanted.items():
            names = self._names.setdefault(inode, set())
            new = found.get(inode, set()) - names
            names |= new
            self._inode_of.update(dict.fromkeys(new, inode))
            self._searched[inode] = want.links
            found_names += [(name, want.changed) for name in sorted(new)]
        log.debug("searched names of %d hard-linked files: %d found", len(wanted), len(found_names))
        return found_names

    def _is(self, path: str, inode: Inode) -> bool:
        try:
            status = os.lstat(os.path.join(self.root, path))
        except OSError:
            return False
        return (status.st_dev, status.st_ino) == inode

    def _walk(self, inodes: set[Inode]) -> dict[Inode, set[str]]:
        """Every name of `inodes` below the root (never through a symlink, nor into excluded
        directories)."""
        numbers = {number for _, number in inodes}
        found: dict[Inode, set[str]] = {}
        pending = [""]
        while pending:
            directory = pending.pop()
            try:
                with os.scandir(os.path.join(self.root, directory)) as entries:
                    for entry in entries:
                        path = f"{directory}/{entry.name}" if directory else entry.name
                        is_dir = entry.is_dir(follow_symlinks=False)
                        if self.excludes and self.excludes.excludes(path, is_dir):
                            continue
                        if is_dir:
                            pending.append(path)
                        elif entry.inode() in numbers:
                            status = entry.stat(follow_symlinks=False)
                            inode = (status.st_dev, status.st_ino)
                            if inode in inodes:
                                found.setdefault(inode, set()).add(path)
            except OSError:
                continue  # vanished or unreadable: its names, if any, stay unknown
        return found
