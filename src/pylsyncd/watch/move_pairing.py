"""Renames: the kernel reports one as two records joined by a cookie, paired here and only here.

An IN_MOVED_FROM leaves a provisional DELETED at the position the rename happened, and waits for
its IN_MOVED_TO, which turns it into a MOVED. A half left without its partner becomes a delete
(moved out) or a tree create (moved in), which is always a correct, if slower, description of
what happened. No kernel calls and no clock: the watcher decides how long a departure may wait
(`PAIR_WAIT`) and what each outcome means for its watches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pylsyncd.events import Event, EventKind, parent_of

PAIR_WAIT = 0.005  # how long a MOVED_FROM waits for its MOVED_TO after the queue ran dry
# Bound once: looking up an Enum member costs about as much as a call, and a storm of renames
# makes several per rename.
_CREATED, _DELETED, _MOVED = EventKind.CREATED, EventKind.DELETED, EventKind.MOVED


@dataclass(slots=True)
class Departure:
    """The first half of a rename (IN_MOVED_FROM), waiting for the second."""

    path: str
    is_dir: bool
    # A directory's watches and excluded directories at and below it when it left: by the time
    # the departure is settled, a new directory may have taken the name.
    watches: dict[str, int] = field(default_factory=dict)
    excluded_dirs: list[str] = field(default_factory=list)
    unwatched: list[str] = field(default_factory=list)  # below it, and without a watch


class MoveOutcome(Enum):
    """What the second half of a rename (IN_MOVED_TO) made of it, for the mirror."""

    ARRIVED = "arrived"  # new to the mirror: from outside the tree, or from an excluded name
    LEFT = "left"  # gone from the mirror: moved to an excluded name
    RENAMED = "renamed"  # from an included name to another


_ARRIVED, _LEFT, _RENAMED = MoveOutcome.ARRIVED, MoveOutcome.LEFT, MoveOutcome.RENAMED


@dataclass(slots=True)  # not frozen: made for every rename, and a frozen one takes twice as long
class Arrival:
    """An IN_MOVED_TO, paired (or not) with its departure."""

    outcome: MoveOutcome
    departure: Departure | None  # None: moved in from outside the tree (or an unwatched dir)


def directory_changed(out: list[Event | None], path: str) -> None:
    """An excluded name came or went: its directory's mtime changed all the same."""
    event = Event(EventKind.ATTRIB, path, True)
    if not out or out[-1] != event:
        out.append(event)


class MovePairing:
    """The halves of the renames read into one output list, paired by cookie.

    `out` holds the events in kernel order; a None is a slot that holds nothing (yet): the
    provisional place of a rename from an excluded name.
    """

    def __init__(self, out: list[Event | None]) -> None:
        self._out = out
        # By cookie: each departure with its place in the output, holding a provisional DELETED
        # (None: excluded).
        self._held: dict[int, tuple[int, Departure]] = {}

    @property
    def waiting(self) -> bool:
        """Whether a departure still waits for its partner."""
        return bool(self._held)

    def depart(self, cookie: int, departure: Departure, excluded: bool) -> None:
        """An IN_MOVED_FROM; `excluded` tells whether its old name is excluded."""
        # Provisionally a delete, at the position the rename happened.
        if excluded:
            directory_changed(self._out, parent_of(departure.path))
            self._out.append(None)
        else:
            self._out.append(Event(_DELETED, departure.path, departure.is_dir))
        self._held[cookie] = (len(self._out) - 1, departure)

    def arrive(self, cookie: int, target: str, is_dir: bool, excluded: bool) -> Arrival:
        """An IN_MOVED_TO at `target`; `excluded` tells whether `target` is excluded."""
        out = self._out
        held = self._held.pop(cookie, None)
        if excluded:
            directory_changed(out, parent_of(target))
        if held is None:  # moved in from outside the tree (or from an unwatched directory)
            if not excluded:
                out.append(Event(_CREATED, target, is_dir, tree=True))
            return Arrival(_ARRIVED, None)
        index, source = held
        if out[index] is None:  # from an excluded path: new to the destination
            if not excluded:
                out[index] = Event(_CREATED, target, is_dir, tree=True)
            return Arrival(_ARRIVED, source)
        if excluded:
            return Arrival(_LEFT, source)  # its provisional DELETED stands
        out[index] = Event(_MOVED, source.path, is_dir, target)
        return Arrival(_RENAMED, source)

    def moved_out(self) -> list[Departure]:
        """The departures that found no partner, now settled: moved out of the tree, so their
        provisional DELETED stands."""
        gone = [departure for _, departure in self._held.values()]
        self._held.clear()
        return gone
