"""Which directory each inotify watch stands for, and what below the root has no watch.

Pure bookkeeping: no kernel calls and no I/O. The watcher adds and removes the kernel's watches
and tells this table what it did; the table answers which directory a record's watch descriptor
names, and which watches, excluded directories and unwatched directories lie below a path.

Paths are relative to the source root (the root is ``""``), as in `pylsyncd.events`. The two
directions of the map can disagree on purpose: when a new directory takes the name of one that
left while the old one's records are still queued, the name maps to the new watch and the old
watch still maps to the name until it is renamed, dropped or forgotten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pylsyncd.events import is_within, rebase
from pylsyncd.watch.watch_maps import PathsByWatch, WatchesByPath


class WatchTable:
    """The watched directories by watch descriptor and by path, the excluded directories seen,
    and the directories still waiting for a watch."""

    def __init__(self) -> None:
        self._path_of = PathsByWatch()  # wd -> relative path of the watched directory
        self._wd_of = WatchesByPath(self._path_of)  # relative path -> wd
        # Excluded directories seen so far: a rename can make their new path included.
        self._excluded_dirs: set[str] = set()
        # Directories that vanished before their watch was added: renamed, or below a directory
        # renamed, before their IN_CREATE was read. The rename, once read, watches them.
        self._unwatched: set[str] = set()
        # Watches a listing found under a new name, with their subdirectories: listed again,
        # since what they hold is new at that name (wd -> new path).
        self._carried: dict[int, str] = {}

    def path_of(self, wd: int) -> str | None:
        """The directory a watch descriptor watches; None when it is not (or no longer) in the
        table. Asked once per kernel record."""
        return self._path_of.get(wd)

    def __len__(self) -> int:
        """How many directories are watched."""
        return len(self._path_of)

    def wd_of(self, path: str) -> int | None:
        """The watch on the directory at `path`; None when it has none."""
        return self._wd_of.get(path)

    def is_watched(self, path: str) -> bool:
        """Whether the directory at `path` has a watch."""
        return self._wd_of.get(path) is not None

    def wds(self) -> set[int]:
        """Every watch descriptor in the table."""
        return self._path_of.wds()

    def add(self, wd: int, path: str) -> None:
        """The kernel watches the directory at `path` with `wd` (new, or the same wd again)."""
        previous = self._path_of.get(wd)
        if previous is not None and previous != path and self._wd_of.get(previous) == wd:
            # The same directory under a new name: listed after an overflow, or ahead of the
            # queued records of its rename. The watches below it go along, so that the records
            # about them (a subdirectory moved away meanwhile) name them below the new name.
            moved = self.watches_below(previous)
            for below in moved.values():
                self.forget(below)
            for old, below in moved.items():
                self._path_of[below] = self._carried[below] = rebase(old, previous, path)
                self._wd_of.put(rebase(old, previous, path), below)
        self._path_of[wd] = path
        self._wd_of.put(path, wd)
        self._unwatched.discard(path)

    def forget(self, wd: int) -> None:
        """Drop a watch the kernel removed (IN_IGNORED), or that is being removed."""
        path = self._path_of.get(wd)
        if path is not None:
            self._wd_of.discard(path, wd)  # unless a new directory took the name meanwhile
        self._path_of.pop(wd)

    def watches_below(self, top: str) -> dict[str, int]:
        """The watches at and below `top`, by path."""
        return {path: wd for path, wd in self._wd_of.items() if is_within(path, top)}

    def rename(self, watches: Mapping[str, int], old: str, new: str) -> dict[str, int]:
        """Move `watches` (taken at and below `old`) to their paths below `new`; returns the
        ones still in the table, by new path."""
        renamed: dict[str, int] = {}
        for path, wd in watches.items():
            if self._path_of.get(wd) == path:  # not dropped meanwhile
                self.forget(wd)
                renamed[rebase(path, old, new)] = wd
        for path, wd in renamed.items():
            self._path_of[wd] = path
            self._wd_of.put(path, wd)
        return renamed

    def drop(self, watches: Mapping[str, int], excluded_dirs: Iterable[str]) -> list[int]:
        """Forget `watches` and `excluded_dirs` (a directory left the tree, or is excluded now);
        returns the watches that were still in the table, for the kernel to remove."""
        removed = []
        for path, wd in watches.items():
            if self._path_of.get(wd) == path:
                self.forget(wd)
                removed.append(wd)
        self._excluded_dirs.difference_update(excluded_dirs)
        return removed

    def exclude(self, path: str) -> None:
        """The directory at `path` is excluded (and so has no watch)."""
        self._excluded_dirs.add(path)

    def include(self, *paths: str) -> None:
        """The directories at `paths` are no longer excluded ones: deleted, or moved away."""
        self._excluded_dirs.difference_update(paths)

    def excluded_below(self, top: str) -> list[str]:
        """The excluded directories seen at and below `top`."""
        return [path for path in self._excluded_dirs if is_within(path, top)]

    def mark_unwatched(self, path: str) -> None:
        """The directory at `path` vanished before its watch could be added."""
        self._unwatched.add(path)

    def take_unwatched_below(self, top: str) -> list[str]:
        """The directories at and below `top` that vanished before their watch was added, no
        longer remembered: the caller settles them (watches them, or they are gone)."""
        if not self._unwatched:  # the common case, on the hot path of a deletion storm
            return []
        taken = [path for path in self._unwatched if is_within(path, top)]
        self._unwatched.difference_update(taken)
        return taken

    def begin_listing(self) -> None:
        """A walk of a new tree starts: forget which watches earlier walks carried."""
        self._carried.clear()

    def carried_to(self, wd: int) -> str | None:
        """The path `wd` was carried to by `add` during this walk, if any (asked once)."""
        return self._carried.pop(wd, None)

    def forget_notes(self) -> None:
        """Forget the excluded and unwatched directories: a fresh walk finds them again."""
        self._excluded_dirs.clear()
        self._unwatched.clear()

    def clear(self) -> None:
        """Forget everything: the kernel dropped every watch at once."""
        self._path_of.clear()
        self._wd_of.clear()
        self._excluded_dirs.clear()
        self._unwatched.clear()
        self._carried.clear()
