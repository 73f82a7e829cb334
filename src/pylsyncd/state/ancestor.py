"""A pair's persisted ancestor: a snapshot file plus an append-only journal of applied batches.

Files, side by side in STATE_DIR (see `pylsyncd.state.identity.state_path`):
- `NAME.state`: magic, version, generation, a small JSON header (the pair's paths and both roots'
  identities), the records of every entry (`pylsyncd.state.records`), and a CRC-32 of it all.
  Written whole, atomically: a temporary file, fsync, rename over, fsync of the directory.
- `NAME.state.journal`: magic, version, the generation of the snapshot it extends, then one
  frame per applied batch (length, CRC-32, records), appended and fsynced. After a small batch
  only its records are written, not 100,000 entries. Once the journal outgrows a quarter of the
  snapshot it is folded in: a new snapshot of the next generation, then an empty journal. A crash
  between the two leaves a journal of the old generation, which is ignored (its records are in
  the new snapshot).

A kill -9 in the middle of an append leaves a torn last frame: it is dropped (the batch it
described was applied, so the sides agree there and the next reconcile records it again). Any
other damage makes the state unusable, with the reason, never a wrong state.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from pylsyncd.plan import Record
from pylsyncd.state.identity import PairIdentity, RootIdentity, identity_change
from pylsyncd.state.records import AncestorEntries, CorruptRecord, encode

SNAPSHOT_MAGIC = b"pylsyncd-ancestor\n"
JOURNAL_MAGIC = b"pylsyncd-journal\n"
VERSION = 1
_SNAPSHOT_HEAD = struct.Struct("<HQI")  # version, generation, header length
_BODY_LENGTH = struct.Struct("<Q")
_JOURNAL_HEAD = struct.Struct("<HQ")  # version, generation
_FRAME = struct.Struct("<II")  # payload length, CRC-32 of the payload
_CRC = struct.Struct("<I")
MIN_JOURNAL_BYTES = 64 * 1024  # below this a journal is never folded into the snapshot


class StateProblem(Enum):
    """Why a pair's state cannot be used (the pair then starts with a union merge)."""

    MISSING = "missing"
    UNREADABLE = "unreadable"
    CORRUPTED = "corrupted"
    OTHER_PAIR = "another pair's"
    ROOT_CHANGED = "root changed"


@dataclass(frozen=True)
class Unusable:
    """A state that cannot be used, with the one line that says why."""

    problem: StateProblem
    reason: str


@dataclass
class PairState:
    """What a pair's two sides last agreed on, and who the pair and its roots are."""

    pair: PairIdentity
    source_root: RootIdentity
    destination_root: RootIdentity
    entries: AncestorEntries = field(default_factory=AncestorEntries)


class _Corrupted(Exception):
    """The bytes on disk are not a state this module wrote."""


class AncestorStore:
    """Loads and saves one pair's state file and its journal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal = path.with_name(path.name + ".journal")
        self._generation = 0
        self._snapshot_bytes = 0
        self._journal_bytes = 0
        self._torn = False  # the journal ends in a torn frame: the next write starts afresh

    def load(
        self, pair: PairIdentity, source_root: RootIdentity, destination_root: RootIdentity
    ) -> PairState | Unusable:
        """The saved state, or why it cannot be used for this pair and these roots."""
        try:
            state = self._read()
        except FileNotFoundError:
            return self._unusable(StateProblem.MISSING, "no state yet")
        except OSError as error:
            return self._unusable(StateProblem.UNREADABLE, error.strerror or str(error))
        except (_Corrupted, CorruptRecord) as error:
            return self._unusable(StateProblem.CORRUPTED, f"corrupted ({error})")
        if state.pair != pair:
            other = f"{state.pair.source} -> {state.pair.destination}"
            return self._unusable(StateProblem.OTHER_PAIR, f"it belongs to the pair {other}")
        for name, before, now in (
            ("source", state.source_root, source_root),
            ("destination", state.destination_root, destination_root),
        ):
            change = identity_change(name, before, now)
            if change is not None:
                return self._unusable(StateProblem.ROOT_CHANGED, change)
        return state

    def save(self, state: PairState) -> None:
        """Write the whole state as a new snapshot and start an empty journal."""
        header = json.dumps(
            {
                "source": state.pair.source,
                "destination": state.pair.destination,
                "roots": [_root_fields(state.source_root), _root_fields(state.destination_root)],
            }
        ).encode()
        body = state.entries.encoded()
        generation = self._generation + 1
        data = b"".join(
            (
                SNAPSHOT_MAGIC,
                _SNAPSHOT_HEAD.pack(VERSION, generation, len(header)),
                header,
                _BODY_LENGTH.pack(len(body)),
                body,
            )
        )
        _write_atomically(self.path, data + _CRC.pack(zlib.crc32(data)))
        _write_atomically(self.journal, JOURNAL_MAGIC + _JOURNAL_HEAD.pack(VERSION, generation))
        self._generation, self._snapshot_bytes, self._journal_bytes = generation, len(body), 0
        self._torn = False

    def remember(self, state: PairState, records: Iterable[Record]) -> None:
        """Apply records to `state` in memory only: `save` makes them durable, all at once."""
        state.entries.load(encode(list(records)))

    def append(self, state: PairState, records: Iterable[Record]) -> None:
        """Apply one batch's records to `state` and make them durable (one journal frame)."""
        batch = list(records)
        if not batch:
            return
        state.entries.load(payload := encode(batch))
        if self._generation == 0 or self._torn or not self.journal.exists():
            self.save(state)
            return
        with open(self.journal, "ab") as journal:
            journal.write(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
            journal.flush()
            os.fdatasync(journal.fileno())
        self._journal_bytes += _FRAME.size + len(payload)
        if self._journal_bytes > max(MIN_JOURNAL_BYTES, self._snapshot_bytes // 4):
            self.save(state)

    def _unusable(self, problem: StateProblem, why: str) -> Unusable:
        return Unusable(
            problem, f"state {self.path}: {why}; starting with a union merge that deletes nothing"
        )

    def _read(self) -> PairState:
        data = self.path.read_bytes()
        if not data.startswith(SNAPSHOT_MAGIC):
            raise _Corrupted("not a pylsyncd state file")
        if len(data) < len(SNAPSHOT_MAGIC) + _SNAPSHOT_HEAD.size + _CRC.size:
            raise _Corrupted("cut short")
        (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
        if zlib.crc32(memoryview(data)[: -_CRC.size]) != crc:
            raise _Corrupted("checksum mismatch: a write was cut short or the file was altered")
        offset = len(SNAPSHOT_MAGIC)
        version, generation, header_length = _SNAPSHOT_HEAD.unpack_from(data, offset)
        if version != VERSION:
            raise _Corrupted(f"format version {version}, this pylsyncd reads {VERSION}")
        offset += _SNAPSHOT_HEAD.size
        try:
            header = json.loads(data[offset : offset + header_length])
            pair = PairIdentity(header["source"], header["destination"])
            roots = [RootIdentity(*fields) for fields in header["roots"]]
        except (ValueError, KeyError, TypeError) as error:
            raise _Corrupted(f"unreadable header: {error}") from error
        offset += header_length
        (body_length,) = _BODY_LENGTH.unpack_from(data, offset)
        offset += _BODY_LENGTH.size
        state = PairState(pair, roots[0], roots[1])
        state.entries.load(data[offset : offset + body_length])
        self._generation, self._snapshot_bytes = generation, body_length
        self._journal_bytes = self._replay_journal(state, generation)
        return state

    def _replay_journal(self, state: PairState, generation: int) -> int:
        """Apply the journal's frames; its length in bytes (0 when it is stale or missing)."""
        try:
            data = self.journal.read_bytes()
        except FileNotFoundError:
            return 0
        start = len(JOURNAL_MAGIC) + _JOURNAL_HEAD.size
        if not data.startswith(JOURNAL_MAGIC) or len(data) < start:
            raise _Corrupted("the journal is not a pylsyncd journal")
        version, journal_generation = _JOURNAL_HEAD.unpack_from(data, len(JOURNAL_MAGIC))
        if version != VERSION:
            raise _Corrupted(f"journal format version {version}, this pylsyncd reads {VERSION}")
        if journal_generation != generation:
            return 0  # written before the last snapshot, which holds its records
        offset = start
        while offset + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, offset)
            payload = data[offset + _FRAME.size : offset + _FRAME.size + length]
            last = offset + _FRAME.size + length >= len(data)
            if len(payload) < length or zlib.crc32(payload) != crc:
                if last:
                    self._torn = True  # the tail of an append cut short by a crash
                    break
                raise _Corrupted(f"journal frame at byte {offset} damaged")
            state.entries.load(payload)
            offset += _FRAME.size + length
        self._torn = self._torn or offset != len(data)
        return offset - start


def _root_fields(root: RootIdentity) -> list[int]:
    return [root.device, root.inode, root.filesystem]


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: whole or not at all, also across a power cut."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
