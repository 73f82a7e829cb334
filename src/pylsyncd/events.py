"""What a watcher reports: one filesystem change below a source root.

Paths are relative to the source root, `/`-separated, without a leading slash; the root itself
is ``""``. Names that are not valid UTF-8 travel as surrogate escapes (``os.fsdecode``), so every
byte sequence the kernel allows round-trips to the destination.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class EventKind(Enum):
    """The kinds of change a watcher reports, whatever its mechanism (inotify or rescans)."""

    CREATED = "created"
    MODIFIED = "modified"  # content written
    ATTRIB = "attrib"  # mode, owner or times changed
    DELETED = "deleted"
    MOVED = "moved"  # renamed within the tree: `path` -> `target`
    OVERFLOW = "overflow"  # the watcher lost events: the pair needs a full resync


@dataclass(frozen=True, slots=True)
class Event:
    """One change; a move out of the tree is a DELETED, a move into it a CREATED tree."""

    kind: EventKind
    path: str
    is_dir: bool = False
    target: str | None = None  # MOVED only: the new path
    tree: bool = False  # CREATED only: a whole subtree appeared at once (moved in from outside)


def parent_of(path: str) -> str:
    """The parent of a relative path; the root's children have the root ``""`` as parent."""
    return path.rpartition("/")[0]


def is_within(path: str, ancestor: str) -> bool:
    """True when `path` is `ancestor` or lies below it (the root contains every path)."""
    return ancestor == "" or path == ancestor or path.startswith(ancestor + "/")


def is_within_any(path: str, tops: frozenset[str]) -> bool:
    """True when `path` is one of `tops` or lies below one (none of them the root)."""
    if path in tops:
        return True
    cut = path.find("/")
    while cut != -1:
        if path[:cut] in tops:
            return True
        cut = path.find("/", cut + 1)
    return False


def rebase(path: str, old: str, new: str) -> str:
    """`path` below `old`, re-rooted below `new` (for a directory that was renamed)."""
    if path == old:
        return new
    rest = path[len(old) + 1 :] if old else path
    return f"{new}/{rest}" if new else rest
