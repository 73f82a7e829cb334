"""What a tick's listings say changed: arrivals, held departures, and the partial snapshots that
`snapshot_diff.diff` compares. Pure functions of the listings and the table (no I/O).

A tick's `Changes` map each directory whose listing differs from its record to (before, now),
name -> entry each.
"""

from __future__ import annotations

from pylsyncd.events import parent_of
from pylsyncd.watch.dir_table import DirectoryTable
from pylsyncd.watch.snapshot_diff import Entry, Snapshot

Listing = dict[str, Entry]
Changes = dict[str, tuple[Listing, Listing]]


def join(directory: str, name: str) -> str:
    """The path of `name` in `directory` ("" is the root)."""
    return directory + "/" + name if directory else name


def arrivals(changed: Changes) -> set[tuple[int, int]]:
    """(type, inode) of the entries that appeared and that no departure explains."""
    arrived: set[tuple[int, int]] = set()
    departed: set[tuple[int, int]] = set()
    for old, new in changed.values():
        for name, entry in new.items():
            was = old.get(name)
            if was is None or (was[0], was[3]) != (entry[0], entry[3]):
                arrived.add((entry[0], entry[3]))
                if was is not None:
                    departed.add((was[0], was[3]))
        departed.update((was[0], was[3]) for name, was in old.items() if name not in new)
    return arrived - departed


def hold_departures(changed: Changes, held: dict[str, float], hold_for: float, now: float) -> None:
    """Keep each vanished name that no arrival explains as last seen, until its hold ends."""
    arrived = {(e[0], e[3]) for _, new in changed.values() for e in new.values()}
    for directory, (old, new) in changed.items():
        for name, was in old.items():
            path = join(directory, name)
            if name in new:
                held.pop(path, None)
                continue
            until = held.get(path)
            if hold_for <= 0 or (was[0], was[3]) in arrived or (until is not None and until <= now):
                held.pop(path, None)
                continue
            if until is None:
                held[path] = now + hold_for
            new[name] = was


def partial_snapshots(
    table: DirectoryTable, changed: Changes, root_now: Entry | None
) -> tuple[Snapshot, Snapshot]:
    """The changed directories' entries before and now, and the directories themselves."""
    parents_old: Snapshot = {}
    parents_new: Snapshot = {}
    for directory, (before, now) in changed.items():
        parents_old.update((join(directory, name), entry) for name, entry in before.items())
        parents_new.update((join(directory, name), entry) for name, entry in now.items())
    old: Snapshot = {}
    new: Snapshot = {}
    root_before = table.root_entry or root_now
    for directory in list(changed):
        if not directory:
            was, now_entry = root_before, root_now or root_before
        else:
            was = table.entry(directory)
            now_entry = parents_new.get(directory, was) if parent_of(directory) in changed else was
        if was is None or now_entry is None:
            del changed[directory]
            continue
        if directory and (was[0], was[3]) != (now_entry[0], now_entry[3]):
            # Replaced or moved while its parent was listed: its listing is not of the entry
            # at its path now, and the events for its parent cover what became of it.
            del changed[directory]
            continue
        old[directory], new[directory] = was, now_entry
    for directory, (before, now) in changed.items():
        old.update((join(directory, name), entry) for name, entry in before.items())
        new.update((join(directory, name), entry) for name, entry in now.items())
    return old, new
