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


@dataclass(frozen=True, slots=True)
class Arrival:
    """An IN_MOVED_TO, paired (or not) with its departure."""

    outcome: MoveOutcome
    departure: Departure | None  # None: moved in from outside the tree (or an unwatched dir)


@dataclass(slots=True)
class _Held:
    index: int  # its place in the output, holding a provisional DELETED (None: excluded)
    departure: Departure


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
        self._held: dict[int, _Held] = {}  # by cookie

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
            self._out.append(Event(EventKind.DELETED, departure.path, departure.is_dir))
        self._held[cookie] = _Held(len(self._out) - 1, departure)

    def arrive(self, cookie: int, target: str, is_dir: bool, excluded: bool) -> Arrival:
        """An IN_MOVED_TO at `target`; `excluded` tells whether `target` is excluded."""
        out = self._out
        held = self._held.pop(cookie, None)
        if excluded:
            directory_changed(out, parent_of(target))
        if held is None:  # moved in from outside the tree (or from an unwatched directory)
            if not excluded:
                out.append(Event(EventKind.CREATED, target, is_dir, tree=True))
            return Arrival(MoveOutcome.ARRIVED, None)
        source = held.departure
        if out[held.index] is None:  # from an excluded path: new to the destination
            if not excluded:
                out[held.index] = Event(EventKind.CREATED, target, is_dir, tree=True)
            return Arrival(MoveOutcome.ARRIVED, source)
        if excluded:
            return Arrival(MoveOutcome.LEFT, source)  # its provisional DELETED stands
        out[held.index] = Event(EventKind.MOVED, source.path, is_dir, target)
        return Arrival(MoveOutcome.RENAMED, source)

    def moved_out(self) -> list[Departure]:
        """The departures that found no partner, now settled: moved out of the tree, so their
        provisional DELETED stands."""
        gone = [held.departure for held in self._held.values()]
        self._held.clear()
        return gone
