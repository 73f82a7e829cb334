"""Rename pairing alone, without a kernel: IN_MOVED_FROM and IN_MOVED_TO records by cookie."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pylsyncd.events import Event, EventKind
from pylsyncd.watch.move_pairing import (
    Departure,
    MoveOutcome,
    MovePairing,
    directory_changed,
)

C, M, A, D, MV = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.ATTRIB,
    EventKind.DELETED,
    EventKind.MOVED,
)
ARRIVED, LEFT, RENAMED = MoveOutcome.ARRIVED, MoveOutcome.LEFT, MoveOutcome.RENAMED


@dataclass(frozen=True)
class From:
    """An IN_MOVED_FROM record."""

    cookie: int
    path: str
    is_dir: bool = False
    excluded: bool = False


@dataclass(frozen=True)
class To:
    """An IN_MOVED_TO record."""

    cookie: int
    path: str
    is_dir: bool = False
    excluded: bool = False


Record = From | To | Event  # an Event: any other record, translated by the watcher


def tree(path: str, is_dir: bool = False) -> Event:
    return Event(C, path, is_dir, tree=True)


def attrib_dir(path: str) -> Event:
    return Event(A, path, True)


# name, records in kernel order, then: the events, each arrival's outcome and whether it found
# its departure, and the paths that never found their partner (moved out).
CASES: list[tuple[str, list[Record], list[Event], list[tuple[MoveOutcome, bool]], list[str]]] = [
    ("a rename", [From(1, "a"), To(1, "b")], [Event(MV, "a", target="b")], [(RENAMED, True)], []),
    (
        "a directory renamed into a subdirectory",
        [From(1, "d", True), To(1, "x/d", True)],
        [Event(MV, "d", True, "x/d")],
        [(RENAMED, True)],
        [],
    ),
    (
        # The move stays where it happened: a later write to the new name follows it.
        "a rename keeps its place among other events",
        [Event(M, "f"), From(1, "a"), Event(C, "g"), To(1, "b"), Event(M, "b")],
        [Event(M, "f"), Event(MV, "a", target="b"), Event(C, "g"), Event(M, "b")],
        [(RENAMED, True)],
        [],
    ),
    (
        "moved out of the tree",
        [From(1, "d", True)],
        [Event(D, "d", True)],
        [],
        ["d"],
    ),
    (
        "moved into the tree",
        [To(1, "d", True)],
        [tree("d", True)],
        [(ARRIVED, False)],
        [],
    ),
    (
        "moved in under an excluded name",
        [To(1, "sub/cache", True, excluded=True)],
        [attrib_dir("sub")],
        [(ARRIVED, False)],
        [],
    ),
    (
        # A backup name the excludes leave out ("*~"): gone from the mirror.
        "vim's backup: renamed to an excluded name",
        [From(1, "notes.txt"), To(1, "notes.txt~", excluded=True), Event(C, "notes.txt")],
        [Event(D, "notes.txt"), attrib_dir(""), Event(C, "notes.txt")],
        [(LEFT, True)],
        [],
    ),
    (
        # A temporary name the excludes leave out, renamed over the real one: new to the mirror.
        "a download renamed from its excluded temporary name",
        [From(1, "f.part", excluded=True), To(1, "f")],
        [attrib_dir(""), tree("f")],
        [(ARRIVED, True)],
        [],
    ),
    (
        "from one excluded name to another",
        [From(1, "a/x.tmp", excluded=True), To(1, "b/x.tmp", excluded=True)],
        [attrib_dir("a"), attrib_dir("b")],
        [(ARRIVED, True)],
        [],
    ),
    (
        "moved out from an excluded name",
        [From(1, "cache", True, excluded=True)],
        [attrib_dir("")],
        [],
        ["cache"],
    ),
    (
        "two renames interleaved, paired by cookie",
        [From(1, "a"), From(2, "b"), To(2, "c"), To(1, "d")],
        [Event(MV, "a", target="d"), Event(MV, "b", target="c")],
        [(RENAMED, True), (RENAMED, True)],
        [],
    ),
    (
        # Halves that do not belong together: a delete and a tree create describe it all the same.
        "cookies that do not match",
        [From(1, "a"), To(2, "b")],
        [Event(D, "a"), tree("b")],
        [(ARRIVED, False)],
        ["a"],
    ),
    (
        # Each half is used once: a second arrival with the same cookie came from outside.
        "an arrival pairs once",
        [From(1, "a"), To(1, "b"), To(1, "c")],
        [Event(MV, "a", target="b"), tree("c")],
        [(RENAMED, True), (ARRIVED, False)],
        [],
    ),
    (
        # git checkout, rsync and sed -i: write a temporary file, rename it over the target.
        "a temporary file renamed over its target",
        [Event(C, ".f.XYZ"), From(1, ".f.XYZ"), To(1, "f")],
        [Event(C, ".f.XYZ"), Event(MV, ".f.XYZ", target="f")],
        [(RENAMED, True)],
        [],
    ),
]


@pytest.mark.parametrize(
    ("records", "events", "arrivals", "moved_out"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_pairing(
    records: list[Record],
    events: list[Event],
    arrivals: list[tuple[MoveOutcome, bool]],
    moved_out: list[str],
) -> None:
    out: list[Event | None] = []
    pairing = MovePairing(out)
    departures: dict[int, Departure] = {}
    outcomes = []
    for record in records:
        if isinstance(record, From):
            departures[record.cookie] = Departure(record.path, record.is_dir)
            pairing.depart(record.cookie, departures[record.cookie], record.excluded)
        elif isinstance(record, To):
            arrival = pairing.arrive(record.cookie, record.path, record.is_dir, record.excluded)
            outcomes.append((arrival.outcome, arrival.departure is not None))
            if arrival.departure is not None:
                assert arrival.departure is departures[record.cookie]
        else:
            out.append(record)
    assert pairing.waiting == bool(moved_out)
    assert [departure.path for departure in pairing.moved_out()] == moved_out
    assert not pairing.waiting
    assert pairing.moved_out() == []
    assert [event for event in out if event is not None] == events
    assert outcomes == arrivals


def test_a_departure_hands_back_what_it_took_along() -> None:
    """The watcher settles a directory's watches from what it held when it left."""
    out: list[Event | None] = []
    pairing = MovePairing(out)
    left = Departure("d", True, {"d": 4, "d/sub": 5}, ["d/cache"], ["d/new"])
    pairing.depart(9, left, False)
    arrival = pairing.arrive(9, "e", True, False)
    assert arrival.outcome is RENAMED
    assert arrival.departure == Departure("d", True, {"d": 4, "d/sub": 5}, ["d/cache"], ["d/new"])


def test_waiting_until_the_partner_arrives() -> None:
    pairing = MovePairing([])
    assert not pairing.waiting
    pairing.depart(1, Departure("a", False), False)
    pairing.depart(2, Departure("b", False), False)
    pairing.arrive(1, "c", False, False)
    assert pairing.waiting
    pairing.arrive(2, "d", False, False)
    assert not pairing.waiting


def test_directory_changed_once_for_consecutive_excluded_names() -> None:
    out: list[Event | None] = []
    directory_changed(out, "a")
    directory_changed(out, "a")
    directory_changed(out, "b")
    directory_changed(out, "a")
    assert out == [attrib_dir("a"), attrib_dir("b"), attrib_dir("a")]
