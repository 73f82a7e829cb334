"""Both sides' events waiting for the two-way pair thread (`pair.two_sided_pending`), and the
events dropped while a union merge copies a subtree into a side (`quiet_below`)."""

from __future__ import annotations

from pylsyncd.entries import Side
from pylsyncd.events import Event, EventKind
from pylsyncd.pair.two_sided_pending import TwoSidedPending


def _paths(pending: TwoSidedPending) -> dict[Side, set[str]]:
    taken = pending.take()
    return {Side.A: {c.path for c in taken.a.changes}, Side.B: {c.path for c in taken.b.changes}}


def test_while_quiet_below_a_subtree_its_events_on_that_side_are_dropped() -> None:
    pending = TwoSidedPending()
    events = [
        Event(EventKind.CREATED, "g/copied", is_dir=True),
        Event(EventKind.MODIFIED, "g/copied/d/f"),
        Event(EventKind.ATTRIB, "g/copied/#123"),
        Event(EventKind.MODIFIED, "g/copied-not/f"),  # a sibling whose name starts alike
        Event(EventKind.ATTRIB, "g", is_dir=True),
        Event(EventKind.MODIFIED, "other"),
    ]
    with pending.quiet_below(Side.B, ["g/copied"]):
        pending.add(Side.B, events)
        pending.add(Side.A, events[1:2])  # the other side's events are its own
    assert _paths(pending) == {Side.A: {"g/copied/d/f"}, Side.B: {"g/copied-not/f", "g", "other"}}


def test_a_move_across_the_quiet_subtree_is_kept_and_quiet_ends_with_the_block() -> None:
    pending = TwoSidedPending()
    with pending.quiet_below(Side.A, ["c"]):
        pending.add(Side.A, [Event(EventKind.MOVED, "outside", target="c/inside")])
        pending.add(Side.A, [Event(EventKind.MOVED, "c/x", target="c/y")])  # all inside
        assert len(pending) == 1
    pending.add(Side.A, [Event(EventKind.MODIFIED, "c/after")])
    taken = pending.take()
    assert [(move.source, move.target) for move in taken.a.moves] == [("outside", "c/inside")]
    assert {change.path for change in taken.a.changes} == {"c/after"}
    assert taken.events == 2
