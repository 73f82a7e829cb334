"""One tick of a polling watcher: rescan some directories and turn what changed into events.

A directory's rescan lists it and stats its entries. Its mtime alone cannot spare that: an edit in
place changes a file's stat, not its directory's. What the mtimes do give: when a rescanned
directory lists a subdirectory whose mtime changed (an entry was added, removed or renamed in
it), that subdirectory is rescanned in the same tick, whether it was due or not.

Renames across directories that are rescanned at different ticks stay renames (by inode):
- the arrival seen first: an entry that appeared, whose (type, inode) no departure of this tick
  explains, is looked up in the table at once (memory only), and the directories that hold it
  are rescanned in the same tick, so `snapshot_diff` sees both ends;
- the departure seen first: a name that vanished is held (kept as last seen, no event) until the
  cold pass has been round the whole tree (`hold_for`, one period); an arrival meanwhile makes it
  a rename, else it is deleted then. So a deletion is reported within one period, not at once.

Each tick's changed directories become two partial snapshots (their entries before and now, plus
the directories themselves) for `snapshot_diff.diff`, whose rules are unchanged.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Collection

from pylsyncd.events import Event, EventKind, parent_of, rebase
from pylsyncd.watch import ExcludePredicate
from pylsyncd.watch.dir_table import UNLISTED, DirectoryTable, as_entry, decode, encode
from pylsyncd.watch.directory_listing import DirectoryLister
from pylsyncd.watch.listing_changes import (
    Changes,
    arrivals,
    hold_departures,
    join,
    partial_snapshots,
)
from pylsyncd.watch.scan_schedule import Clock, ScanSchedule
from pylsyncd.watch.snapshot_diff import DIRECTORY_TYPE, Entry, diff

log = logging.getLogger("pylsyncd.watch.poll")

_VANISHED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
# A directory's mtime vouches for its names when it lies this far before the listing: coarse
# timestamps (FAT: 2 s) and a file server's clock a little behind ours.
_TRUST_MARGIN_NS = 2_000_000_000
_SEARCH_ROUNDS = 3  # arrivals found by one search may lead to another; bounded all the same


class TreeRescan:
    """The table of a tree, and the rescans of parts of it that keep it current."""

    def __init__(
        self,
        root: str,
        excluded: ExcludePredicate | None,
        schedule: ScanSchedule,
        clock: Clock,
        hold_for: float,
        table: DirectoryTable | None = None,
    ) -> None:
        """`table`: the one `schedule` takes its ring from (its records' keys), if it does."""
        self.root = root
        self.excluded = excluded
        self.schedule = schedule
        self.clock = clock
        self.hold_for = hold_for
        self.table = table if table is not None else DirectoryTable()
        self.held: dict[str, float] = {}  # vanished path -> when it may be reported deleted
        self.soon: set[str] = set()  # directories to rescan at the next tick, once
        self.unlisted: set[str] = set()  # directories whose listing fails (EACCES, EIO)
        self._moved: list[str] = []  # directories renamed by this tick's events
        self._listed: dict[str, bytes] = {}  # this tick's listings of the changed directories
        self.lister = DirectoryLister(root, excluded)
        self._hot: Collection[str] = ()  # this tick's hot set
        self.hot_seconds = 0.0  # how long this tick's rescans of the hot set took

    def load(self, top: str) -> list[str]:
        """Record `top` and everything below it as it is now (no events); its directories
        join the schedule. Raises OSError when `top` is the root and cannot be listed."""
        found: list[str] = []
        stack = [top]
        while stack:
            directory = stack.pop()
            try:
                record, own = self.lister.list(directory)
            except OSError as error:
                if not directory:
                    raise
                if error.errno not in _VANISHED:
                    self._cannot_list(directory, error)
                    self.table.records[directory] = UNLISTED  # rescanned all the same
                    found.append(directory)
                continue
            if not directory:
                self.table.root_entry = as_entry(own)
            self.table.records[directory] = record
            found.append(directory)
            stack += [
                join(directory, name)
                for name, entry in decode(record).items()
                if entry[0] == DIRECTORY_TYPE
            ]
        self.schedule.add(found)
        return found

    def rescan(
        self, due: list[str], racy_from_ns: int | None, hot: Collection[str] = ()
    ) -> list[Event]:
        """Rescan `due` (and what their listings show must be) and return the events; the `hot`
        directories with fresh stats, past the kernel's attribute cache."""
        now = self.clock()
        self._hot = hot
        self.hot_seconds = 0.0
        for path in [path for path in self.held if parent_of(path) not in self.schedule]:
            del self.held[path]  # its directory went away, or moved: no longer a candidate
        due = [*due, *self.soon, *(parent_of(p) for p, until in self.held.items() if until <= now)]
        self.soon = set()
        self.lister.begin_tick(None if racy_from_ns is None else racy_from_ns - _TRUST_MARGIN_NS)
        try:
            events = self._rescan_once(due, racy_from_ns, now)
            for _ in range(_SEARCH_ROUNDS):  # renamed directories: what changed inside them, now
                moved, self._moved = self._moved, []
                if not moved:
                    break
                events += self._rescan_once(moved, racy_from_ns, now)
        finally:
            self.lister.end_tick()
        return events

    def _rescan_once(self, due: list[str], racy_from_ns: int | None, now: float) -> list[Event]:
        changed: Changes = {}
        self._listed = {}
        root_now = self._list(due, changed)
        searched: set[tuple[int, int]] = set()
        for _ in range(_SEARCH_ROUNDS):
            unexplained = arrivals(changed) - searched
            if not unexplained:
                break
            searched |= unexplained
            more = [d for d in self.table.holding(unexplained) if d not in changed]
            root_now = self._list(more, changed) or root_now
        root = self.table.root_entry
        # Another directory at the root (a share unmounted, or mounted again): nothing in it can
        # have moved from the old one, so nothing is held; the pair decides what that means.
        remounted = root_now is not None and root is not None and root_now[3] != root[3]
        hold_departures(changed, self.held, 0.0 if remounted else self.hold_for, now)
        old, new = partial_snapshots(self.table, changed, root_now)
        events = diff(old, new, racy_from_ns)
        self._apply(changed, root_now, events)
        return events

    def _list(self, due: list[str], changed: Changes) -> Entry | None:
        """List the `due` directories; those that differ from their record go into `changed`
        (before, now). Returns the root's own entry when it was listed and changed."""
        queue, seen, root_now = list(reversed(due)), set(changed), None
        records = self.table.records
        while queue:
            directory = queue.pop()
            if directory in seen or directory not in self.schedule:
                continue
            seen.add(directory)
            hot = directory in self._hot
            started = self.clock() if hot else 0.0
            try:
                record, own = self.lister.list(directory, records.get(directory), fresh=hot)
            except OSError as error:
                if not directory:
                    raise
                if error.errno in _VANISHED:  # its parent's listing tells what became of it
                    queue.append(parent_of(directory))
                else:
                    self._cannot_list(directory, error)
                continue
            if hot:
                self.hot_seconds += self.clock() - started
            if directory in self.unlisted:
                self.unlisted.discard(directory)
                log.info("can read again below %s: %s", self.root, directory)
            before = records.get(directory)
            if not directory and as_entry(own) != self.table.root_entry:
                root_now = as_entry(own)
            elif record == before:
                continue
            old = decode(before) if before is not None else {}
            now = decode(record)
            changed[directory] = (old, now)
            self._listed[directory] = record
            for name, entry in now.items():
                was = old.get(name)
                if (
                    entry[0] == DIRECTORY_TYPE
                    and was is not None
                    and was[3] == entry[3]
                    and was[2] != entry[2]
                ):
                    queue.append(join(directory, name))  # its names changed: list it now
        return root_now

    def _apply(self, changed: Changes, root_now: Entry | None, events: list[Event]) -> None:
        """Bring the table and the schedule to the state the events describe."""
        records = self.table.records
        for directory, (_, now) in changed.items():
            records[directory] = encode(now, self._listed[directory])
        if root_now is not None:
            self.table.root_entry = root_now
        touched: set[str] = set(changed)
        for event in events:
            touched.add(parent_of(event.path))
            if event.kind is EventKind.MOVED and event.target is not None:
                touched.add(parent_of(event.target))
                if event.is_dir:
                    self._drop(event.target)
                    self._rebase(event.path, event.target)
            elif event.is_dir and event.kind in (EventKind.DELETED, EventKind.CREATED):
                self._drop(event.path)
                if event.kind is EventKind.CREATED:
                    self.soon.update(self.load(event.path))
        for directory, (_, now) in changed.items():  # what no event covered: a safety net
            for name, entry in now.items():
                child = join(directory, name)
                if entry[0] == DIRECTORY_TYPE and child not in self.schedule:
                    self.soon.update(self.load(child))
        self.schedule.touch(touched)

    def _drop(self, top: str) -> None:
        gone = list(self.table.subtree(top))
        for directory in gone:
            del self.table.records[directory]
        self.schedule.remove([top, *gone])
        self.unlisted.discard(top)

    def _rebase(self, source: str, target: str) -> None:
        moving = list(self.table.subtree(source))
        records = self.table.records
        moved = [rebase(directory, source, target) for directory in moving]
        for directory, now in zip(moving, moved, strict=True):
            records[now] = records.pop(directory)
        self.schedule.remove(moving)
        self.schedule.add(moved)
        self._moved += moved  # what changed inside since its last rescan: rescanned at once

    def _cannot_list(self, directory: str, error: OSError) -> None:
        if directory not in self.unlisted:
            self.unlisted.add(directory)
            log.warning(
                "cannot read %s/%s: %s; its entries stay as last seen", self.root, directory, error
            )
