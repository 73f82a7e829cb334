"""The difference between two snapshots of a tree, as the `Event`s inotify would have given.

A snapshot maps each path to (type, size, mtime_ns, inode, permissions). A path that vanished and
one that appeared with the same inode and type are a rename, followed by MODIFIED when the
content differs; a new directory is one tree create, a vanished one a single delete. Inode numbers
are reused, so a pairing is only trusted as far as size and mtime go: a file written within two
seconds before the previous scan and renamed since is also reported MODIFIED.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from pylsyncd.events import Event, EventKind, is_within, parent_of, rebase

# (type, size, mtime_ns, inode, permissions): a tuple, not a dataclass, because a rescan builds
# 100,000 of them. Type and permissions are the two halves of st_mode.
Entry = tuple[int, int, int, int, int]
Snapshot = dict[str, Entry]

DIRECTORY_TYPE = 0o040000
# How far before a scan a file's mtime may lie and still be of a write the scan did not see
# whole: coarse timestamps (FAT: 2 s) and a file server's clock a little behind ours.
_RACY_MARGIN_NS = 2_000_000_000


def diff(old: Snapshot, new: Snapshot, old_scanned_ns: int | None = None) -> list[Event]:
    """The events that turn the tree `old` describes into the tree `new` describes.

    Renames come first, each naming its source as it is after the renames before it, the order
    the coalescer replays them in. Every other event names a path as it is after all renames:
    deletions (the top of each vanished tree), then creations (the top of each new tree) and
    changes, parents before children.

    `old_scanned_ns` is when the scan of `old` began (`time.time_ns()`). A file deleted after
    it and a new one given its inode within the same clock tick, with the same size, would pass
    for a rename; so a renamed file written since then (less a margin) is also MODIFIED.
    """
    if old == new:  # an idle rescan: one comparison in C
        return []
    added: list[str] = []  # new paths that held nothing
    replaced: list[str] = []  # paths that hold another entry (inode or type) than before
    changed: list[str] = []  # the same entry with other attributes
    old_get = old.get
    for path, entry in new.items():
        before = old_get(path)
        if before is None:
            added.append(path)
        elif before != entry:
            if before[0] != entry[0] or before[3] != entry[3]:
                replaced.append(path)
            else:
                changed.append(path)
    removed = [path for path in old if path not in new] if len(old) > len(new) - len(added) else []
    racy_from = None if old_scanned_ns is None else old_scanned_ns - _RACY_MARGIN_NS
    moves, places, unproven = _renames(old, new, added + replaced, removed + replaced, racy_from)
    if places is None:
        vanished = [(path, old[path]) for path in removed]
        return _changes(old, new, added + replaced + changed, vanished, {}, unproven)
    occupied = places.occupied
    check = {*added, *replaced, *changed, *(occupied.keys() & new.keys())}
    moved = places.moved
    vanished = [(path, old[path]) for path in removed if path not in moved]
    vanished += [
        (now, old[path]) for path, now in moved.items() if now is not None and now not in new
    ]
    return moves + _changes(old, new, check, vanished, occupied, unproven)


def _changes(
    old: Snapshot,
    new: Snapshot,
    check: Iterable[str],
    vanished: list[tuple[str, Entry]],
    occupied: dict[str, str | None],
    unproven: set[str],
) -> list[Event]:
    """Events for the paths in `check`, compared with the old entry now at each (`occupied`
    overrides the path itself), and for the `vanished` entries, named where they are now.
    Files in `unproven` are MODIFIED even when they look the same."""
    deleted = {path: entry[0] == DIRECTORY_TYPE for path, entry in vanished}
    new_dirs: set[str] = set()  # created or replaced: a tree create covers what is below
    found: dict[str, Event] = {}
    for path in check:
        entry = new[path]
        is_dir = entry[0] == DIRECTORY_TYPE
        origin = occupied.get(path, path)
        before = old.get(origin) if origin is not None else None
        if before is None or before[0] != entry[0]:
            if before is not None:
                deleted[path] = before[0] == DIRECTORY_TYPE
            if is_dir:
                new_dirs.add(path)
            found[path] = Event(EventKind.CREATED, path, is_dir, tree=is_dir)
        elif is_dir:  # a directory's size says nothing the mirror needs; its mtime does
            if before[2:] != entry[2:]:
                found[path] = Event(EventKind.ATTRIB, path, True)
        elif before[1:4] != entry[1:4] or path in unproven:
            found[path] = Event(EventKind.MODIFIED, path)
        elif before[4] != entry[4]:
            found[path] = Event(EventKind.ATTRIB, path)
    events = [
        Event(EventKind.DELETED, path, deleted[path])
        for path in sorted(deleted, key=_components)
        if parent_of(path) not in deleted
    ]
    events += [
        found[path] for path in sorted(found, key=_components) if parent_of(path) not in new_dirs
    ]
    return events


def _renames(
    old: Snapshot, new: Snapshot, fresh: list[str], gone: list[str], racy_from: int | None
) -> tuple[list[Event], _Places | None, set[str]]:
    """Pair `gone` old paths with `fresh` new ones holding the same entry, as MOVED events.

    New paths are visited shallow first, so a directory is in place before its entries; an entry
    whose directory was renamed with it is carried along, not renamed again. A rename must be
    replayable in the destination: its source still there, not inside its target nor around
    it, the target's directory in place. Renames are an optimisation only: whatever they leave
    different, the events after them repair, so an unpaired entry is just created or deleted.
    Also returns the renamed files whose mtime is `racy_from` or later (see `diff`).
    """
    unproven: set[str] = set()
    if not fresh or not gone:
        return [], None, unproven
    sources: dict[tuple[int, int], list[str]] = {}
    for path in gone:
        if path:
            entry = old[path]
            sources.setdefault((entry[0], entry[3]), []).append(path)
    if not any((new[path][0], new[path][3]) in sources for path in fresh):
        return [], None, unproven
    places = _Places(old)
    origin: dict[str, str] = {}  # new path -> the old path of the entry that is now there
    unpaired: set[str] = set()  # fresh paths without an origin, and all below them
    used: set[str] = set()
    moves: list[Event] = []
    for path in sorted(fresh, key=_depth):
        parent = parent_of(path)
        if not path or parent in unpaired or places.occupant(parent) != origin.get(parent, parent):
            unpaired.add(path)
            continue
        entry = new[path]
        identity = (entry[0], entry[3])
        racy = racy_from is not None and identity[0] != DIRECTORY_TYPE and entry[2] >= racy_from
        parent_origin = origin.get(parent)
        if parent_origin is not None:
            carried = rebase(path, parent, parent_origin)
            was = old.get(carried)
            if (
                was is not None
                and (was[0], was[3]) == identity
                and carried not in used
                and places.location(carried) == path
            ):
                origin[path] = carried
                used.add(carried)
                if racy:
                    unproven.add(path)
                continue
        for source in sources.get(identity, ()):
            now = places.location(source)
            if (
                source not in used
                and now is not None
                and not is_within(now, path)
                and not is_within(path, now)
            ):
                moves.append(
                    Event(EventKind.MOVED, now, identity[0] == DIRECTORY_TYPE, target=path)
                )
                places.move(now, path)
                origin[path] = source
                used.add(source)
                if racy:
                    unproven.add(path)
                break
        else:
            unpaired.add(path)
    return moves, places if moves else None, unproven


class _Places:
    """Which old entry is at which path while renames are replayed; only touched paths are
    recorded, everything else is where the old snapshot has it."""

    def __init__(self, old: Snapshot) -> None:
        self.old = old
        self.occupied: dict[str, str | None] = {}  # path -> old path of its entry now, or empty
        self.moved: dict[str, str | None] = {}  # old path -> its path now (None: replaced)
        self._sorted: list[str] | None = None  # old paths in order, to find a directory's entries

    def occupant(self, path: str) -> str | None:
        """The old path of the entry at `path` now (None: nothing there)."""
        if path in self.occupied:
            return self.occupied[path]
        return path if path in self.old else None

    def location(self, old_path: str) -> str | None:
        """Where the entry that was at `old_path` is now (None: a rename replaced it)."""
        return self.moved.get(old_path, old_path)

    def move(self, source: str, target: str) -> None:
        """Rename the tree at `source` to `target`, replacing whatever stands there."""
        moving = self._tree(source)
        for path, old_path in self._tree(target):
            self.occupied[path] = None
            self.moved[old_path] = None
        for path, _ in moving:
            self.occupied[path] = None
        for path, old_path in moving:
            now = rebase(path, source, target)
            self.occupied[now] = old_path
            self.moved[old_path] = now

    def _tree(self, top: str) -> list[tuple[str, str]]:
        """(path now, old path) of the entry at `top` and everything below it."""
        top_origin = self.occupant(top)
        if top_origin is None:
            return []
        found = [(top, top_origin)]
        if self.old[top_origin][0] != DIRECTORY_TYPE:
            return found
        if self._sorted is None:
            self._sorted = sorted(self.old)
        paths, below, occupied = self._sorted, top + "/", self.occupied
        # Everything below `top` sorts between "top/" and "top0" ('0' follows '/').
        first = bisect_left(paths, below)
        end = bisect_left(paths, top + "0", first)
        found += [(path, path) for path in paths[first:end] if path not in occupied]
        found += [
            (path, old_path)
            for path, old_path in occupied.items()
            if old_path is not None and path.startswith(below)
        ]
        return found


def _depth(path: str) -> tuple[int, str]:
    # Shallow first (a directory in place before its entries), then by name: reproducible.
    return path.count("/"), path


def _components(path: str) -> list[str]:
    # Component-wise order puts every directory right before its contents ("a" < "a/b" < "a b").
    return path.split("/")
