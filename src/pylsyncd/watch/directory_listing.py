"""Reading one directory of a polled tree into its `dir_table` record, at the fewest system calls.

On a FUSE, network or VM share every stat is a round trip to the file server (about 10 us of this
process's CPU on bindfs, see docs/design.md), so a rescan's cost is its count of stats:

- A directory's mtime changes whenever an entry is added, removed or renamed in it, so when it is
  the one its record was listed at, the names are those of the record: a rescan then stats them
  (an edit in place changes a file's stat only) without listing the directory again, which
  spares the open, the readdirs and the close. An mtime is trusted so only when it lies well
  before the record was listed (`trusted_before_ns`): a change within the same clock tick as the
  listing would leave it as it was.
- The directory's own mtime need not cost a stat either: its parent's rescan in the same tick
  has just stat-ed it as one of its entries (the cold pass goes round parents before children).
  So a pass over an unchanged tree stats each entry once, as `find` does, and lists nothing.
  Only a stat of this tick is used: a change made between the parent's stat and this rescan
  changes the mtime the parent sees at its next rescan, which lists the directory then.
"""

from __future__ import annotations

import errno
import os
from array import array

from pylsyncd.watch import ExcludePredicate
from pylsyncd.watch.dir_table import FIELDS, HEADER, HEADER_LAYOUT, Record
from pylsyncd.watch.fresh_stat import FreshStat, Stats, stats_of
from pylsyncd.watch.snapshot_diff import DIRECTORY_TYPE

Own = Stats  # a directory's own (mode, size, mtime_ns, inode)
_TYPE = 0o170000
_OPEN_ROOT = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_OPEN_DIRECTORY = _OPEN_ROOT | os.O_NOFOLLOW  # replaced by a symlink since it was listed: skip it
_VANISHED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


class DirectoryLister:
    """Lists or restats the directories of the tree at `root`, relative paths ("" the root)."""

    def __init__(self, root: str, excluded: ExcludePredicate | None) -> None:
        self.root = root
        self.excluded = excluded
        self.trusted_before_ns: int | None = None
        # relative path -> own stat of each subdirectory met by this tick's listings and
        # restats: what spares the directory's own stat when its turn comes in the same tick.
        # None between ticks (a whole-tree load remembers nothing).
        self.seen: dict[str, Own] | None = None
        self._fresh = FreshStat()

    def begin_tick(self, trusted_before_ns: int | None) -> None:
        """A tick starts: only what it sees of directories spares a stat."""
        self.trusted_before_ns = trusted_before_ns
        self.seen = {}

    def end_tick(self) -> None:
        self.seen = None

    def list(
        self, relative: str, known: Record | None = None, *, fresh: bool = False
    ) -> tuple[Record, Own]:
        """The record of the directory `relative`, and its own (mode, size, mtime_ns, inode).
        Raises OSError when it cannot be listed; an entry that vanished between the listing and
        its stat is left out. With the `known` record of the directory, its names are reused
        when its mtime says they are still its names (see above). `fresh` (the hot set) asks
        the file server for every stat, past the kernel's attribute cache (`fresh_stat`)."""
        path = self.root + "/" + relative if relative else self.root
        if known is not None and self.trusted_before_ns is not None:
            restatted = self._restat(path, relative, known, self.trusted_before_ns, fresh)
            if restatted is not None:
                return restatted
        fd = os.open(path, _OPEN_DIRECTORY if relative else _OPEN_ROOT)
        try:
            own = self._fresh.fstat(fd) if fresh else stats_of(os.fstat(fd))
            stats = array("q", [0, own[2], own[3]])
            names: list[str] = []
            prefix = relative + "/" if relative else ""
            excluded, seen, stat_at = self.excluded, self.seen, self._fresh.stat_at
            # The hot loop runs once per entry: what it uses is bound to local names. Listing
            # an open directory makes entry.stat() an fstatat() relative to it, which spares the
            # kernel a walk of the whole path for every entry.
            extend, add_name, directory_type = stats.extend, names.append, DIRECTORY_TYPE
            with os.scandir(fd) as entries:
                for entry in entries:
                    name = entry.name
                    try:
                        if fresh:
                            entry_stats = stat_at(fd, name)
                        else:
                            st = entry.stat(follow_symlinks=False)
                            entry_stats = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)
                    except OSError as error:
                        if error.errno in _VANISHED:
                            continue
                        raise  # the directory as a whole keeps its last listing
                    is_directory = entry_stats[0] & _TYPE == directory_type
                    if excluded is not None and excluded(prefix + name, is_directory):
                        continue
                    extend(entry_stats)
                    add_name(name)
                    if is_directory and seen is not None:
                        seen[prefix + name] = entry_stats
            stats[0] = len(names)
            record = stats.tobytes() + "/".join(names).encode("utf-8", "surrogateescape")
            return record, own
        finally:
            os.close(fd)

    def _restat(
        self, path: str, relative: str, known: Record, trusted_before_ns: int, fresh: bool
    ) -> tuple[Record, Own] | None:
        """The record with fresh stats of the known names, or None when the directory's mtime
        does not vouch for them (or one of them is gone after all)."""
        # This runs once per directory of every pass: no call it can do without.
        count, mtime, inode = HEADER_LAYOUT.unpack_from(known)
        if mtime >= trusted_before_ns:
            return None
        seen = self.seen
        # A hot directory's own stat is fresh too: the parent's may come from the cache.
        own = None if seen is None or fresh else seen.get(relative)
        if own is None:
            if fresh:
                own = self._fresh.lstat(path) if relative else self._fresh.stat(path)
            else:
                own = stats_of(os.stat(path, follow_symlinks=not relative))
        if own[2] != mtime or own[3] != inode or own[0] & _TYPE != DIRECTORY_TYPE:
            return None
        end = 8 * (HEADER + FIELDS * count)
        stats = array("q", [count, mtime, inode])
        if count:
            extend, below = stats.extend, path + "/"
            prefix, directory_type = relative + "/" if relative else "", DIRECTORY_TYPE
            try:
                for name in known[end:].decode("utf-8", "surrogateescape").split("/"):
                    if fresh:
                        entry_stats = self._fresh.lstat(below + name)
                    else:
                        st = os.lstat(below + name)
                        entry_stats = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)
                    extend(entry_stats)
                    if entry_stats[0] & _TYPE == directory_type and seen is not None:
                        seen[prefix + name] = entry_stats
            except OSError as error:
                if error.errno in _VANISHED:
                    return None
                raise
        return stats.tobytes() + known[end:], own
