"""A polled tree as a table keyed by directory: what one listing of each directory saw.

Each directory's record is ONE bytes object: a header (the entry count, and the directory's own
mtime_ns and inode when it was listed), then (mode, size, mtime_ns, inode) per entry as packed
64-bit integers, then the names joined by "/" (which no name contains). A
tuple and a full path string per entry cost about 300 bytes; a record costs its names plus 32
bytes per entry, plus one key per directory. An idle rescan of a directory builds the same bytes
and compares them with the record, in C; only a directory that changed is ever decoded.

A directory's mtime changes whenever an entry is added, removed or renamed in it, so when it is
the one its record was listed at, the names are those of the record: a rescan then stats them
(an edit in place changes a file's stat only) without listing the directory again, which on a
FUSE or network mount spares the open, the readdirs and the close. An mtime is trusted so only
when it lies well before the record was listed (`trusted_before_ns`): a change within the same
clock tick as the listing would leave it as it was.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from array import array
from collections.abc import Iterator

from pylsyncd.watch import ExcludePredicate
from pylsyncd.watch.snapshot_diff import DIRECTORY_TYPE, Entry, Snapshot

_TYPE, _PERMISSIONS = 0o170000, 0o7777
_OPEN_ROOT = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_OPEN_DIRECTORY = _OPEN_ROOT | os.O_NOFOLLOW  # replaced by a symlink since it was listed: skip it
_VANISHED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
_FIELDS = 4
_HEADER = 3  # count, the directory's mtime_ns, its inode
Record = bytes


def list_directory(
    root: str,
    relative: str,
    excluded: ExcludePredicate | None,
    known: Record | None = None,
    trusted_before_ns: int | None = None,
) -> tuple[Record, tuple[int, int, int, int]]:
    """The record of the directory `relative` below `root` ("" is the root), and its own
    (mode, size, mtime_ns, inode). Raises OSError when it cannot be listed; an entry that
    vanished between the listing and its stat is left out. With the `known` record of the
    directory, its names are reused when its mtime says they are still its names (see above)."""
    path = os.path.join(root, relative) if relative else root
    if known is not None and trusted_before_ns is not None:
        restatted = _restat(path, relative, known, trusted_before_ns)
        if restatted is not None:
            return restatted
    fd = os.open(path, _OPEN_DIRECTORY if relative else _OPEN_ROOT)
    try:
        own = os.fstat(fd)
        stats = array("q", [0, own.st_mtime_ns, own.st_ino])
        names: list[str] = []
        prefix = relative + "/" if relative else ""
        # The hot loop runs once per entry: what it uses is bound to local names. Listing an
        # open directory makes entry.stat() an fstatat() relative to it, which spares the kernel
        # a walk of the whole path for every entry.
        extend, add_name, directory_type, type_mask = (
            stats.extend,
            names.append,
            DIRECTORY_TYPE,
            _TYPE,
        )
        with os.scandir(fd) as entries:
            for entry in entries:
                name = entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as error:
                    if error.errno in _VANISHED:
                        continue
                    raise  # the directory as a whole keeps its last listing
                mode = st.st_mode
                if excluded is not None and excluded(
                    prefix + name, mode & type_mask == directory_type
                ):
                    continue
                extend((mode, st.st_size, st.st_mtime_ns, st.st_ino))
                add_name(name)
        stats[0] = len(names)
        record = stats.tobytes() + "/".join(names).encode("utf-8", "surrogateescape")
        return record, (own.st_mode, own.st_size, own.st_mtime_ns, own.st_ino)
    finally:
        os.close(fd)


def _restat(
    path: str, relative: str, known: Record, trusted_before_ns: int
) -> tuple[Record, tuple[int, int, int, int]] | None:
    """The record with fresh stats of the known names, or None when the directory's mtime does
    not vouch for them (or one of them is gone after all)."""
    own = os.stat(path, follow_symlinks=not relative)
    count, mtime, inode = _header(known)
    if (
        not stat.S_ISDIR(own.st_mode)
        or own.st_mtime_ns != mtime
        or own.st_ino != inode
        or mtime >= trusted_before_ns
    ):
        return None
    end = 8 * (_HEADER + _FIELDS * count)
    stats = array("q", [count, mtime, inode])
    if count:
        lstat, extend, below = os.lstat, stats.extend, path + "/"
        try:
            for name in known[end:].decode("utf-8", "surrogateescape").split("/"):
                st = lstat(below + name)
                extend((st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError as error:
            if error.errno in _VANISHED:
                return None
            raise
    record = stats.tobytes() + known[end:]
    return record, (own.st_mode, own.st_size, own.st_mtime_ns, own.st_ino)


def _header(record: Record) -> tuple[int, int, int]:
    header = array("q", record[: 8 * _HEADER])
    return header[0], header[1], header[2]


def encode(entries: dict[str, Entry], listed: Record) -> Record:
    """The record of a listing given as name -> entry, with the header of the `listed` record
    (the directory's mtime and inode when it was listed)."""
    _, mtime, inode = _header(listed)
    stats = array("q", [len(entries), mtime, inode])
    for kind, size, mtime, inode, permissions in entries.values():
        stats.extend((kind | permissions, size, mtime, inode))
    return stats.tobytes() + "/".join(entries).encode("utf-8", "surrogateescape")


def decode(record: Record) -> dict[str, Entry]:
    """name -> (type, size, mtime_ns, inode, permissions), as in a `Snapshot`."""
    count = _count(record)
    if not count:
        return {}
    end = 8 * (_HEADER + _FIELDS * count)
    stats = array("q", record[8 * _HEADER : end])
    names = record[end:].decode("utf-8", "surrogateescape").split("/")
    return {
        name: (
            stats[i] & _TYPE,
            stats[i + 1],
            stats[i + 2],
            stats[i + 3],
            stats[i + 0] & _PERMISSIONS,
        )
        for name, i in zip(names, range(0, _FIELDS * count, _FIELDS), strict=True)
    }


def inodes(record: Record) -> array[int]:
    """The inode of each entry in `record`."""
    count = _count(record)
    return array("q", record[8 * _HEADER : 8 * (_HEADER + _FIELDS * count)])[3::_FIELDS]


def _count(record: Record) -> int:
    return int.from_bytes(record[:8], sys.byteorder, signed=True)


def as_entry(own: tuple[int, int, int, int]) -> Entry:
    """A directory's own (mode, size, mtime_ns, inode) as a `Snapshot` entry."""
    mode, size, mtime, inode = own
    return (mode & _TYPE, size, mtime, inode, mode & _PERMISSIONS)


class DirectoryTable:
    """directory (relative path, "" the root) -> its record, plus the root's own entry."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self.root_entry: Entry | None = None

    def __len__(self) -> int:
        """Entries in the tree, the root included."""
        return 1 + sum(_count(record) for record in self.records.values())

    def subtree(self, top: str) -> Iterator[str]:
        """`top` and the recorded directories below it, parents first."""
        stack = [top] if top in self.records else []
        while stack:
            directory = stack.pop()
            yield directory
            prefix = directory + "/" if directory else ""
            for name, entry in decode(self.records[directory]).items():
                child = prefix + name
                if entry[0] == DIRECTORY_TYPE and child in self.records:
                    stack.append(child)

    def entry(self, path: str) -> Entry | None:
        """The entry at `path` as its directory's record has it."""
        if not path:
            return self.root_entry
        head, _, name = path.rpartition("/")
        record = self.records.get(head)
        return None if record is None else decode(record).get(name)

    def holding(self, identities: set[tuple[int, int]]) -> list[str]:
        """Directories whose records hold an entry of one of these (type, inode)."""
        wanted = {inode for _, inode in identities}
        found = []
        for directory, record in self.records.items():
            if not wanted.isdisjoint(inodes(record)):
                entries = decode(record).values()
                if any((entry[0], entry[3]) in identities for entry in entries):
                    found.append(directory)
        return found

    def snapshot(self) -> Snapshot:
        """The whole tree as a flat `Snapshot` (path -> entry)."""
        snapshot: Snapshot = {}
        if self.root_entry is not None:
            snapshot[""] = self.root_entry
        for directory, record in self.records.items():
            prefix = directory + "/" if directory else ""
            for name, entry in decode(record).items():
                snapshot[prefix + name] = entry
        return snapshot
