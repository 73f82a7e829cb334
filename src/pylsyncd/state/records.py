"""The binary encoding of ancestor records, and the mapping that decodes them only when read.

One record is a fixed little-endian head followed by the path, the symlink target and the digest
as raw bytes (names are bytes on Linux: `os.fsencode`, so any name round-trips, newlines and
invalid UTF-8 included). Length prefixes make a record splittable with one `struct.unpack_from`,
no escaping, no parsing. Loading 100,000 entries only splits them: each stays its bytes until
reconcile reads it, and an entry never read is saved again as the same bytes. A line format
would need escaping for odd names, and JSON a dict per entry (several times slower both ways).
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Iterable, Iterator, MutableMapping

from pylsyncd.entries import Ancestor, Entry, Kind
from pylsyncd.events import parent_of
from pylsyncd.plan import Record

# op, kind, path length, target length, digest length, size, mtime_ns, mode, inode A, inode B
_HEAD = struct.Struct("<BBHHBqqIQQ")
_LENGTHS = struct.Struct("<BBHHB")  # the head's first fields: enough to split records
_SET, _FORGET = 1, 2
_KINDS = {kind.value.encode()[0]: kind for kind in Kind}
_CODES = {kind: code for code, kind in _KINDS.items()}


class CorruptRecord(ValueError):
    """A record that cannot be decoded: the bytes are not what this module wrote."""


class AncestorEntries(MutableMapping[str, Ancestor]):
    """The ancestor's entries by path; loaded entries are decoded on first read.

    `within` lists a directory's known subtree (what reconcile needs for a touched directory)
    from an index of children built on first use and kept up to date after, so that a batch of
    directory events does not scan 100,000 paths for each.
    """

    def __init__(self, entries: Iterable[tuple[str, Ancestor]] = ()) -> None:
        self._values: dict[str, Ancestor | bytes] = dict(entries)
        self._children: dict[str, set[str]] | None = None

    def __getitem__(self, path: str) -> Ancestor:
        value = self._values[path]
        if isinstance(value, bytes):
            value = self._values[path] = _decode_one(value)
        return value

    def __setitem__(self, path: str, known: Ancestor) -> None:
        if self._children is not None and path not in self._values:
            self._index(path)
        self._values[path] = known

    def __delitem__(self, path: str) -> None:
        del self._values[path]
        if self._children is not None:
            self._children[parent_of(path)].discard(path)

    def within(self, directory: str) -> list[str]:
        """`directory` itself (when known) and every known path below it ("" is the root)."""
        if self._children is None:
            self._children = {}
            for path in self._values:
                self._index(path)
        found = [directory] if directory in self._values else []
        pending = [directory]
        while pending:
            for child in self._children.get(pending.pop(), ()):
                if child in self._values:
                    found.append(child)
                pending.append(child)
        return found

    def _index(self, path: str) -> None:
        """Enter `path` under its parent, and any unknown parent under its own (so that a path
        whose directory has no entry of its own is still found below the root)."""
        assert self._children is not None
        while path:
            parent = parent_of(path)
            known = parent in self._children
            self._children.setdefault(parent, set()).add(path)
            if known:
                return
            path = parent

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, path: object) -> bool:
        return path in self._values

    def encoded(self) -> bytes:
        """Every entry as records (an entry never read keeps the bytes it was loaded from)."""
        return b"".join(
            value if isinstance(value, bytes) else encode_record(path, value)
            for path, value in self._values.items()
        )

    def load(self, data: bytes) -> int:
        """Apply the records in `data` in order; how many there were. CorruptRecord if malformed.

        The loop is written out (no generator, no per-record function call): it runs once per
        entry at every start.
        """
        values, unpack, head, end = self._values, _LENGTHS.unpack_from, _HEAD.size, len(data)
        encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
        count = offset = 0
        while offset < end:
            if offset + head > end:
                raise CorruptRecord(f"a record cut short at byte {offset}")
            op, code, path_length, target_length, digest_length = unpack(data, offset)
            start = offset + head
            stop = start + path_length + target_length + digest_length
            if stop > end or not path_length or op not in (_SET, _FORGET):
                raise CorruptRecord(f"a malformed record at byte {offset}")
            path = data[start : start + path_length].decode(encoding, errors)
            if op == _SET and code not in _KINDS:
                raise CorruptRecord(f"an unknown entry kind {code} at byte {offset}")
            if self._children is not None:  # an append after `within` was used: keep the index
                if op == _FORGET and path in values:
                    self._children[parent_of(path)].discard(path)
                elif op == _SET and path not in values:
                    self._index(path)
            if op == _FORGET:
                values.pop(path, None)
            else:
                values[path] = data[offset:stop]
            offset = stop
            count += 1
        return count


def encode_record(path: str, known: Ancestor | None) -> bytes:
    """One record: set `path` to `known`, or forget it (None)."""
    name = os.fsencode(path)
    if known is None:
        return _HEAD.pack(_FORGET, 0, len(name), 0, 0, 0, 0, 0, 0, 0) + name
    entry = known.entry
    target = os.fsencode(entry.target)
    digest = entry.digest or b""
    head = _HEAD.pack(
        _SET,
        _CODES[entry.kind],
        len(name),
        len(target),
        len(digest),
        entry.size,
        entry.mtime_ns,
        entry.mode,
        known.inode_a,
        known.inode_b,
    )
    return b"".join((head, name, target, digest))


def encode(records: Iterable[Record]) -> bytes:
    """Records as bytes, in order (a later record for a path replaces an earlier one)."""
    return b"".join(encode_record(record.path, record.ancestor) for record in records)


def _decode_one(record: bytes) -> Ancestor:
    """The ancestor in one SET record (already checked by `_split`)."""
    _, code, path_length, target_length, digest_length, size, mtime, mode, inode_a, inode_b = (
        _HEAD.unpack_from(record)
    )
    offset = _HEAD.size + path_length
    target = os.fsdecode(record[offset : offset + target_length]) if target_length else ""
    offset += target_length
    digest = record[offset : offset + digest_length] if digest_length else None
    entry = Entry(_KINDS[code], size, mtime, mode, target, 0, digest)
    return Ancestor(entry, inode_a, inode_b)
