"""A polled tree as a table keyed by directory: what one listing of each directory saw.

Each directory's record is ONE bytes object: a header (the entry count, and the directory's own
mtime_ns and inode when it was listed), then (mode, size, mtime_ns, inode) per entry as packed
64-bit integers, then the names joined by "/" (which no name contains). A
tuple and a full path string per entry cost about 300 bytes; a record costs its names plus 32
bytes per entry, plus one key per directory. An idle rescan of a directory builds the same bytes
and compares them with the record, in C; only a directory that changed is ever decoded.

How a record is read from a directory at the fewest stats is `directory_listing`.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator

from pylsyncd.watch.snapshot_diff import DIRECTORY_TYPE, Entry, Snapshot

_TYPE, _PERMISSIONS = 0o170000, 0o7777
FIELDS = 4  # per entry: mode, size, mtime_ns, inode
HEADER = 3  # count, the directory's mtime_ns, its inode
HEADER_LAYOUT = struct.Struct(f"{HEADER}q")
Record = bytes
# The record of a directory that could never be listed (EACCES, EIO): no names, and an mtime no
# directory has, so its next rescan lists it.
UNLISTED: Record = HEADER_LAYOUT.pack(0, 0, 0)


def header(record: Record) -> tuple[int, int, int]:
    """The entry count, and the directory's mtime_ns and inode when it was listed."""
    count, mtime, inode = HEADER_LAYOUT.unpack_from(record)
    return count, mtime, inode


def encode(entries: dict[str, Entry], listed: Record) -> Record:
    """The record of a listing given as name -> entry, with the header of the `listed` record
    (the directory's mtime and inode when it was listed)."""
    _, mtime, inode = header(listed)
    stats = array("q", [len(entries), mtime, inode])
    for kind, size, mtime, inode, permissions in entries.values():
        stats.extend((kind | permissions, size, mtime, inode))
    return stats.tobytes() + "/".join(entries).encode("utf-8", "surrogateescape")


def decode(record: Record) -> dict[str, Entry]:
    """name -> (type, size, mtime_ns, inode, permissions), as in a `Snapshot`."""
    count = _count(record)
    if not count:
        return {}
    end = 8 * (HEADER + FIELDS * count)
    stats = array("q", record[8 * HEADER : end])
    names = record[end:].decode("utf-8", "surrogateescape").split("/")
    return {
        name: (
            stats[i] & _TYPE,
            stats[i + 1],
            stats[i + 2],
            stats[i + 3],
            stats[i + 0] & _PERMISSIONS,
        )
        for name, i in zip(names, range(0, FIELDS * count, FIELDS), strict=True)
    }


def inodes(record: Record) -> array[int]:
    """The inode of each entry in `record`."""
    count = _count(record)
    return array("q", record[8 * HEADER : 8 * (HEADER + FIELDS * count)])[3::FIELDS]


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
