"""What two-way sync knows of a path: an entry as one side holds it, and the ancestor's entry.

Shared by reconcile (which compares them), the union merge at first start, and the persisted
ancestor state. Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """The type of an entry (anything else, a socket or a device, is not synchronised)."""

    FILE = "f"
    DIR = "d"
    SYMLINK = "l"


class Side(Enum):
    """One end of a pair; the value is the name a conflict copy carries."""

    A = "source"
    B = "destination"

    @property
    def other(self) -> Side:
        """The opposite end."""
        return Side.B if self is Side.A else Side.A


class Mode(Enum):
    """Which way changes flow (the `MODE` setting)."""

    ONE_WAY = "one-way"  # A -> B; B's own changes are overwritten or deleted (a mirror)
    ONE_WAY_SAFE = "one-way-safe"  # A -> B; B's own creations and edits are never lost
    TWO_WAY = "two-way"


class ConflictPolicy(Enum):
    """Who takes a path both sides changed differently (the `CONFLICT` setting)."""

    NEWER = "newer"
    SOURCE = "source"
    DESTINATION = "destination"


@dataclass(frozen=True, slots=True)
class Entry:
    """One path as one side holds it (`inode` is that side's; it is not part of the content).

    A directory's size and mtime are not compared: its mtime moves with every entry created or
    removed inside it, which would turn each new file into a change of its directory.
    """

    kind: Kind
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0o644
    target: str = ""  # a symlink's target
    inode: int = 0
    digest: bytes | None = None  # content digest where size and mtime cannot be trusted

    def same(self, other: Entry | None) -> bool:
        """Whether `other` holds the same content (type, size, mtime, mode, target, digest)."""
        if other is None or self.kind is not other.kind or self.mode != other.mode:
            return False
        if self.kind is Kind.DIR:
            return True
        if self.digest is not None and other.digest is not None and self.digest != other.digest:
            return False
        return (self.size, self.mtime_ns, self.target) == (
            other.size,
            other.mtime_ns,
            other.target,
        )

    def same_bytes(self, other: Entry | None) -> bool:
        """Whether both are files whose digests prove the same content (times or mode aside)."""
        return (
            other is not None
            and self.kind is Kind.FILE is other.kind
            and self.size == other.size
            and self.digest is not None
            and self.digest == other.digest
        )

    def with_mode(self, mode: int) -> Entry:
        """The same entry with another mode."""
        return Entry(
            self.kind, self.size, self.mtime_ns, mode, self.target, self.inode, self.digest
        )

    def with_inode(self, inode: int) -> Entry:
        """The same content as another side (or a new write) holds it."""
        # Not dataclasses.replace: this runs for every path of a large scope, and is 5x faster.
        return Entry(
            self.kind, self.size, self.mtime_ns, self.mode, self.target, inode, self.digest
        )


def same(left: Entry | None, right: Entry | None) -> bool:
    """Equality of content where either may be absent (both absent: equal)."""
    if left is None:
        return right is None
    return left.same(right)


@dataclass(frozen=True, slots=True)
class Ancestor:
    """What both sides last agreed on for a path, with the inode each side held it under."""

    entry: Entry  # its `inode` is unused: see `inode_a` and `inode_b`
    inode_a: int
    inode_b: int

    def inode(self, side: Side) -> int:
        """The inode the path had on `side` when both agreed."""
        return self.inode_a if side is Side.A else self.inode_b
