"""The two maps of a watch table: wd -> path and path -> wd, both compact.

On 100,000 directories a watch is most of what the daemon holds: a dict from path to wd costs
about 70 bytes a watch (its slot, and an int object for the wd), a dict from wd to path about
50. Here a wd's path costs a list slot (8 bytes) and a path's wd a slot of an array of 32-bit
numbers (8 bytes at most, at half full), found by the path's hash and checked against the
first map, which holds the path strings once for both.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator

_EMPTY, _DELETED = 0, -1  # the kernel numbers watches from 1
# Slots are probed as CPython's dicts probe theirs: the hash's higher bits join in one after
# the other, so that paths whose hashes share their low bits part soon.
_HASH_BITS = (1 << 64) - 1


class PathsByWatch:
    """wd -> path. The kernel numbers one inotify instance's watches 1, 2, 3, ... and reuses
    none until the numbers wrap, so a list indexed by wd costs 8 bytes a watch where a dict
    costs about 50 (5 MiB on 100,000 directories). After many directories came and went the
    list is mostly holes: then a dict serves, for good."""

    def __init__(self) -> None:
        self._list: list[str | None] = []
        self._dict: dict[int, str] | None = None
        self._count = 0
        self.get: Callable[[int], str | None] = self._from_list

    def __len__(self) -> int:
        return self._count

    def _from_list(self, wd: int) -> str | None:
        paths = self._list
        return paths[wd] if 0 <= wd < len(paths) else None  # an overflow's wd is -1

    def __setitem__(self, wd: int, path: str) -> None:
        if self._dict is not None:
            self._count += wd not in self._dict
            self._dict[wd] = path
            return
        paths = self._list
        if wd >= len(paths):
            if wd > 4 * self._count + 4096:  # mostly holes: a dict from now on
                self._to_dict()
                self[wd] = path
                return
            paths.extend([None] * (wd + 1 - len(paths)))
        self._count += paths[wd] is None
        paths[wd] = path

    def pop(self, wd: int) -> str | None:
        if self._dict is not None:
            path = self._dict.pop(wd, None)
        else:
            path = self._from_list(wd)
            if path is not None:
                self._list[wd] = None
        self._count -= path is not None
        return path

    def lookup(self) -> Callable[[int], str | None]:
        """`get` without its range check, for a wd this map was given since it was cleared
        (the list only grows): a C call instead of a Python one, on the hot path."""
        return self._list.__getitem__ if self._dict is None else self._dict.get

    def wds(self) -> set[int]:
        if self._dict is not None:
            return set(self._dict)
        return {wd for wd, path in enumerate(self._list) if path is not None}

    def clear(self) -> None:
        self._list, self._dict, self._count, self.get = [], None, 0, self._from_list

    def _to_dict(self) -> None:
        self._dict = {wd: path for wd, path in enumerate(self._list) if path is not None}
        self._list = []
        self.get = self._dict.get


class WatchesByPath:
    """path -> wd for watches whose path `paths` holds: an open-addressing table of wds.

    The caller keeps one rule: a wd is put here under the path `paths` gives it, and taken out
    (`discard`) before that path changes. A slot then names its path through `paths`.
    """

    def __init__(self, paths: PathsByWatch) -> None:
        self._paths = paths
        self._slots = array("i", bytes(4 * 8))
        self._count = 0  # wds held
        self._used = 0  # slots not empty: wds held and deleted ones

    def get(self, path: str) -> int | None:
        """The wd put under `path`; None when there is none."""
        slots, paths_get = self._slots, self._paths.lookup()
        mask = len(slots) - 1
        perturb = hash(path) & _HASH_BITS
        i = perturb & mask
        while (wd := slots[i]) != _EMPTY:
            if wd != _DELETED and paths_get(wd) == path:
                return wd
            perturb >>= 5
            i = (5 * i + perturb + 1) & mask
        return None

    def put(self, path: str, wd: int) -> None:
        """`path` -> `wd` (whose path `paths` already says is `path`), replacing the wd that
        had it."""
        slots, paths_get = self._slots, self._paths.lookup()
        mask = len(slots) - 1
        perturb = hash(path) & _HASH_BITS
        i = perturb & mask
        free = -1
        while (held := slots[i]) != _EMPTY:
            if held == _DELETED:
                free = i if free < 0 else free
            elif held == wd or paths_get(held) == path:
                slots[i] = wd
                return
            perturb >>= 5
            i = (5 * i + perturb + 1) & mask
        if free < 0:
            free = i
            self._used += 1
        slots[free] = wd
        self._count += 1
        if 2 * self._used > len(slots):
            self._resize()

    def discard(self, path: str, wd: int) -> None:
        """Take `wd` out from under `path`, if it is there (another wd may have the path)."""
        slots = self._slots
        mask = len(slots) - 1
        perturb = hash(path) & _HASH_BITS
        i = perturb & mask
        while (held := slots[i]) != _EMPTY:
            if held == wd:
                slots[i] = _DELETED
                self._count -= 1
                return
            perturb >>= 5
            i = (5 * i + perturb + 1) & mask

    def items(self) -> Iterator[tuple[str, int]]:
        """Every (path, wd) held."""
        paths_get = self._paths.lookup()
        for wd in self._slots:
            if wd > 0:
                path = paths_get(wd)
                if path is not None:
                    yield path, wd

    def clear(self) -> None:
        self._slots = array("i", bytes(4 * 8))
        self._count = self._used = 0

    def _resize(self) -> None:
        # At most half full, so that a path is found within two probes or so. Moved one by one,
        # with no search for a wd that had the path (each is there once): a list of them all
        # would be freed into memory the paths made after it fragment, and stay resident.
        old, paths_get = self._slots, self._paths.lookup()
        size = 8
        while size < 3 * self._count:
            size *= 2
        slots = self._slots = array("i", bytes(4 * size))
        mask = size - 1
        for wd in old:
            if wd > 0 and (path := paths_get(wd)) is not None:
                perturb = hash(path) & _HASH_BITS
                i = perturb & mask
                while slots[i] != _EMPTY:
                    perturb >>= 5
                    i = (5 * i + perturb + 1) & mask
                slots[i] = wd
        self._used = self._count
