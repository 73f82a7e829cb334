"""A polled tree as a table keyed by directory: what one listing of each directory saw.

Each directory's record is ONE bytes object: the entry count, then (mode, size, mtime_ns, inode)
per entry as packed 64-bit integers, then the names joined by "/" (which no name contains). A
tuple and a full path string per entry cost about 300 bytes; a record costs its names plus 32
bytes per entry, plus one key per directory. An idle rescan of a directory builds the same bytes
and compares them with the record, in C; only a directory that changed is ever decoded.
"""

from __future__ import annotations

import errno
import os
from array import array
from collections.abc import Iterator

from pylsyncd.watch import ExcludePredicate
from pylsyncd.watch.snapshot_diff import DIRECTORY_TYPE, Entry, Snapshot

_TYPE, _PERMISSIONS = 0o170000, 0o7777
_OPEN_ROOT = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_OPEN_DIRECTORY = _OPEN_ROOT | os.O_NOFOLLOW  # replaced by a symlink since it was listed: skip it
_VANISHED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
_FIELDS = 4
Record = bytes


def list_directory(
    root: str, relative: str, excluded: ExcludePredicate | None
) -> tuple[Record, tuple[int, int, int, int]]:
    """The record of the directory `relative` below `root` ("" is the root), and its own
    (mode, size, mtime_ns, inode). Raises OSError when it cannot be listed; an entry that
    vanished between the listing and its stat is left out."""
    path = os.path.join(root, relative) if relative else root
    fd = os.open(path, _OPEN_DIRECTORY if relative else _OPEN_ROOT)
    try:
        own = os.fstat(fd)
        stats = array("q", [0])
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


def encode(entries: dict[str, Entry]) -> Record:
    """The record of a listing given as name -> entry."""
    stats = array("q", [len(entries)])
    for kind, size, mtime, inode, permissions in entries.values():
        stats.extend((kind | permissions, size, mtime, inode))
    return stats.tobytes() + "/".join(entries).encode("utf-8", "surrogateescape")


def decode(record: Record) -> dict[str, Entry]:
    """name -> (type, size, mtime_ns, inode, permissions), as in a `Snapshot`."""
    count = int.from_bytes(record[:8], "little", signed=True)
    if not count:
        return {}
    end = 8 * (1 + _FIELDS * count)
    stats = array("q", record[8:end])
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
    count = int.from_bytes(record[:8], "little", signed=True)
    return array("q", record[8 : 8 * (1 + _FIELDS * count)])[3::_FIELDS]


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
        return 1 + sum(int.from_bytes(record[:8], "little") for record in self.records.values())

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
