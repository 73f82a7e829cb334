"""How far a watcher's first walk of the tree has got, for an initial sync that runs beside it.

The initial sync may read a directory only once it is watched: a change made after the read
then raises an event. Watching 100,000 directories took 0.84 s of a 3.4 s start, time in which
the sync's helper process, a second core, could copy. So the inotify watcher watches the top of
the tree first, split as the sync splits it (`SPLIT_WANTED`, `SPLIT_DEPTH`: the levels
`FullSync.sync_top` syncs itself), then the subtrees below that, one at a time, each `covered`
once every directory in it is watched. The helper may sync a covered subtree; the pair's own
process waits for the whole walk, since two busy threads in one process are slower than one
after the other (benchmarks/notes.md).

A walk that runs out of inotify watches after the top was released is `abandoned`: the source
is then polled from a fresh scan, and what the sync copied meanwhile was watched by watches
now gone, so the sync runs once more.
"""

from __future__ import annotations

import threading

# The initial sync syncs the top of the tree itself, level by level until a level holds this
# many directories or this many levels are done; it shares the subtrees below with its helper.
SPLIT_WANTED = 8
SPLIT_DEPTH = 3


class FirstWalk:
    """The first walk's progress, told by the watching thread, asked by the syncing ones."""

    def __init__(self) -> None:
        self.top = threading.Event()  # the levels above the subtrees are watched
        self.top_levels = 0  # how many: the root's, and those below it
        self._changed = threading.Condition()
        self._covered: set[str] = set()
        self._whole = False
        self.abandoned = False

    @classmethod
    def done(cls) -> FirstWalk:
        """A walk already over: the whole tree is watched (or no walk gates the sync)."""
        walk = cls()
        walk.finish()
        return walk

    @property
    def whole(self) -> bool:
        """Whether the walk is over: every directory may be read."""
        return self._whole

    def covers(self, subtree: str) -> bool:
        """Whether every directory of `subtree` (a directory of the split level) is watched."""
        return self._whole or subtree in self._covered

    def top_watched(self, levels: int) -> None:
        """The root and the `levels` - 1 levels below it are watched: the sync may begin."""
        self.top_levels = levels
        self.top.set()

    def watched_level(self, level: int) -> bool:
        """Whether every directory at `level` below the root (the root's is 0) is watched."""
        return self._whole or level < self.top_levels

    def cover(self, subtree: str) -> None:
        """Every directory of `subtree` is watched now."""
        with self._changed:
            self._covered.add(subtree)
            self._changed.notify_all()

    def finish(self, *, abandoned: bool = False) -> None:
        """The walk is over (`abandoned`: its watches were given up, see the module's doc)."""
        with self._changed:
            self.abandoned = abandoned and self.top.is_set()
            self._whole = True
            self._covered = set()
            self._changed.notify_all()
        self.top.set()

    def wait(self, timeout: float) -> None:
        """Until the next subtree is covered or the walk ends, at most `timeout` seconds."""
        with self._changed:
            if not self._whole:
                self._changed.wait(timeout)

    def wait_whole(self) -> None:
        """Until the walk is over (it ends by itself, failed or not)."""
        while not self._whole:
            self.wait(1.0)
