"""The hybrid watcher's dedupe and learning, driven by fake inotify and rescan watchers over a
real tree (the hybrid takes the entries' states itself): no daemon, no sleeps."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pylsyncd.events import Event, EventKind
from pylsyncd.watch.hybrid import CONFIRMATIONS, Forwarding, HybridWatcher, Reports, Verdict
from pylsyncd.watch.inotify import InotifyWatcher
from pylsyncd.watch.poll import PollWatcher

C, M, A, D, MV, OV = (
    EventKind.CREATED,
    EventKind.MODIFIED,
    EventKind.ATTRIB,
    EventKind.DELETED,
    EventKind.MOVED,
    EventKind.OVERFLOW,
)


@dataclass
class FakeInotify:
    """Hands out the events queued for it, one list per read."""

    queued: list[list[Event]] = field(default_factory=list)

    def start(self) -> None:
        pass

    def read(self, timeout: float | None) -> list[Event]:
        return self.queued.pop(0) if self.queued else []

    def wake(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class FakeRescans:
    """A rescan is due whenever events are queued for it; records `settle` calls."""

    queued: list[list[Event]] = field(default_factory=list)
    settled: list[bool] = field(default_factory=list)
    heated: list[Event] = field(default_factory=list)

    def start(self) -> None:
        pass

    def due_in(self) -> float:
        return 0.0 if self.queued else 1.0

    def read(self, timeout: float | None) -> list[Event]:
        return self.queued.pop(0) if self.queued else []

    def settle(self, forwarded: bool) -> None:
        self.settled.append(forwarded)

    def heat(self, events: list[Event]) -> None:
        self.heated.extend(events)

    def wake(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Rig:
    root: Path
    inotify: FakeInotify
    rescans: FakeRescans
    hybrid: HybridWatcher
    clock: list[float]

    def reported(self, *events: Event) -> list[Event]:
        """inotify reports `events`; what the hybrid passes on."""
        self.inotify.queued.append(list(events))
        return self.hybrid.read(0)

    def rescan(self, *events: Event, late: tuple[Event, ...] = ()) -> list[Event]:
        """A rescan finds `events` (inotify queued `late` meanwhile); what the hybrid passes on."""
        self.rescans.queued.append(list(events))
        self.inotify.queued.extend([[], list(late)])
        return self.hybrid.read(0)


def make_rig(root: Path, *, learn: bool = True, limit: int = 1000) -> Rig:
    inotify, rescans, clock = FakeInotify(), FakeRescans(), [0.0]
    hybrid = HybridWatcher(
        inotify,
        rescans,  # type: ignore[arg-type]
        str(root),
        learn=learn,
        clock=lambda: clock[0],
        limit=limit,
    )
    hybrid.start()
    return Rig(root, inotify, rescans, hybrid, clock)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


def write(path: Path, text: str) -> None:
    path.write_text(text)


# --- no double report ------------------------------------------------------------------------


def test_a_change_inotify_reported_is_not_reported_again_by_the_rescan(rig: Rig) -> None:
    write(rig.root / "f", "through the mount")
    assert rig.reported(Event(C, "f"), Event(M, "f")) == [Event(C, "f"), Event(M, "f")]
    assert rig.rescan(Event(C, "f")) == []


def test_what_inotify_reports_heats_the_rescans_there(rig: Rig) -> None:
    # Where someone works through the mount is where the host may write next (an editor on the
    # host, a generator in the container): rescanned at the hot rate from now.
    (rig.root / "d").mkdir()
    write(rig.root / "d" / "f", "x")
    rig.reported(Event(M, "d/f"))
    rig.rescan(Event(M, "d/f"), late=(Event(C, "e"),))
    assert rig.rescans.heated == [Event(M, "d/f"), Event(C, "e")]


def test_a_change_after_the_report_is_kept(rig: Rig) -> None:
    # Reported once, then changed again where inotify does not see it: the rescan event is the
    # only news of the second change, so it must pass.
    write(rig.root / "f", "through the mount")
    rig.reported(Event(C, "f"))
    write(rig.root / "f", "then on the host, longer")
    assert rig.rescan(Event(C, "f")) == [Event(C, "f")]


def test_a_report_matches_one_rescan_only(rig: Rig) -> None:
    write(rig.root / "f", "one")
    rig.reported(Event(C, "f"))
    assert rig.rescan(Event(C, "f")) == []
    # A later rescan event for the same entry is a new change: inotify did not report it.
    os.utime(rig.root / "f", ns=(1, 1))
    assert rig.rescan(Event(A, "f")) == [Event(A, "f")]


def test_an_inotify_event_is_never_dropped(rig: Rig) -> None:
    write(rig.root / "f", "x")
    rig.rescans.queued.append([Event(C, "f")])
    rig.inotify.queued.extend([[Event(C, "f")], []])
    # Reported by both at once: inotify's passes, the rescan's is dropped.
    assert rig.hybrid.read(0) == [Event(C, "f")]


def test_what_inotify_queued_during_the_rescan_covers_it(rig: Rig) -> None:
    write(rig.root / "f", "written while the rescan ran")
    assert rig.rescan(Event(C, "f"), late=(Event(C, "f"),)) == [Event(C, "f")]


def test_a_deletion_and_a_rename_reported_are_dropped(rig: Rig) -> None:
    write(rig.root / "gone", "x")
    write(rig.root / "old", "y")
    (rig.root / "gone").unlink()
    (rig.root / "old").rename(rig.root / "new")
    rig.reported(Event(D, "gone"), Event(MV, "old", target="new"))
    assert rig.rescan(Event(D, "gone"), Event(MV, "old", target="new")) == []


def test_a_file_recreated_on_the_host_after_a_reported_deletion_is_kept(rig: Rig) -> None:
    write(rig.root / "f", "x")
    (rig.root / "f").unlink()
    rig.reported(Event(C, "f"), Event(D, "f"))
    write(rig.root / "f", "created again on the host")
    assert rig.rescan(Event(C, "f")) == [Event(C, "f")]


def test_a_renamed_directory_carries_what_was_reported_inside_it(rig: Rig) -> None:
    (rig.root / "d").mkdir()
    rig.reported(Event(C, "d", True))
    write(rig.root / "d" / "f", "x")
    rig.reported(Event(C, "d/f"))
    (rig.root / "d").rename(rig.root / "e")
    rig.reported(Event(MV, "d", True, target="e"))
    assert rig.rescan(Event(C, "e", True, tree=True)) == []


def test_a_new_tree_is_dropped_only_when_inotify_reported_every_entry(rig: Rig) -> None:
    (rig.root / "d").mkdir()
    write(rig.root / "d" / "f", "through the mount")
    rig.reported(Event(C, "d", True), Event(C, "d/f"))
    write(rig.root / "d" / "g", "on the host: never reported")
    tree = Event(C, "d", True, tree=True)
    assert rig.rescan(tree) == [tree]
    assert rig.hybrid.forwarding is Forwarding.DOES_NOT_FORWARD


def test_a_tree_moved_in_is_remembered_whole(rig: Rig) -> None:
    (rig.root / "in" / "sub").mkdir(parents=True)
    write(rig.root / "in" / "sub" / "f", "x")
    rig.reported(Event(C, "in", True, tree=True))
    assert rig.rescan(Event(C, "in", True, tree=True)) == []


def test_a_file_moved_in_from_outside_is_remembered(rig: Rig) -> None:
    write(rig.root / "f", "renamed in from an unwatched place")
    rig.reported(Event(C, "f", tree=True))
    assert rig.rescan(Event(C, "f")) == []
    for name in ("g", "h"):
        confirm(rig, name)
    assert rig.hybrid.forwarding is Forwarding.FORWARDS  # and it left learning on


def test_a_directory_mtime_from_a_reported_entry_is_kept_but_proves_nothing(rig: Rig) -> None:
    # inotify reports the new entry, never its directory; the rescan sees the directory's mtime
    # change. Its mode was never reported, so the event stays (a chmod on the host would be in
    # it), but it is no sign of a missed change.
    write(rig.root / "f", "x")
    rig.reported(Event(C, "f"))
    assert rig.rescan(Event(A, "", True), Event(C, "f")) == [Event(A, "", True)]
    assert rig.hybrid.forwarding is Forwarding.LEARNING


def test_a_directory_reported_itself_then_given_entries_is_dropped(rig: Rig) -> None:
    (rig.root / "d").mkdir()
    rig.reported(Event(C, "d", True))
    write(rig.root / "d" / "f", "x")
    rig.reported(Event(C, "d/f"))
    assert rig.rescan(Event(A, "d", True), Event(C, "d/f")) == []


def test_a_directory_touched_on_the_host_after_its_entries_were_reported_is_kept(
    rig: Rig,
) -> None:
    (rig.root / "d").mkdir()
    rig.reported(Event(C, "d", True))
    write(rig.root / "d" / "f", "x")
    rig.reported(Event(C, "d/f"))
    os.utime(rig.root / "d", ns=(5, 5))
    assert rig.rescan(Event(A, "d", True)) == [Event(A, "d", True)]


def test_reports_are_bounded_and_forgetting_one_pauses_learning(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, limit=2)
    for name in "abc":
        write(tmp_path / name, name)
    rig.reported(Event(C, "a"), Event(C, "b"), Event(C, "c"))
    # "a" was forgotten: its rescan event passes, and proves nothing while reports are missing.
    assert rig.rescan(Event(C, "a"), Event(C, "b")) == [Event(C, "a")]
    assert rig.hybrid.forwarding is Forwarding.LEARNING


def test_reports_older_than_their_time_are_forgotten(tmp_path: Path) -> None:
    clock = [0.0]
    reports = Reports(str(tmp_path), clock=lambda: clock[0], remember_for=10)
    write(tmp_path / "f", "x")
    reports.record([Event(C, "f")])
    clock[0] = 11
    reports.record([])
    assert len(reports) == 0
    assert reports.verdict(Event(C, "f")) is Verdict.MISSED


def test_excluded_entries_do_not_keep_a_new_tree(tmp_path: Path) -> None:
    reports = Reports(str(tmp_path), lambda path, is_dir: path.endswith(".tmp"))
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "f", "x")
    write(tmp_path / "d" / "x.tmp", "excluded: neither watched nor rescanned")
    reports.record([Event(C, "d", True), Event(C, "d/f")])
    assert reports.verdict(Event(C, "d", True, tree=True)) is Verdict.COVERED


# --- learning --------------------------------------------------------------------------------


def confirm(rig: Rig, name: str) -> None:
    write(rig.root / name, name)
    rig.reported(Event(C, name))
    assert rig.rescan(Event(C, name)) == []


def test_rescans_that_find_only_reported_changes_settle_the_safety_net_rate(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pylsyncd")
    assert rig.hybrid.description == "inotify+poll (learning)"
    for number in range(CONFIRMATIONS - 1):
        confirm(rig, f"f{number}")
    assert rig.rescans.settled == [] and rig.hybrid.forwarding is Forwarding.LEARNING
    confirm(rig, "last")
    assert rig.rescans.settled == [True]
    assert rig.hybrid.description == "inotify+poll (mount forwards events)"
    confirm(rig, "more")
    assert rig.rescans.settled == [True]  # concluded once
    assert [r.message for r in caplog.records].count(caplog.records[-1].message) == 1
    assert "the mount forwards events" in caplog.records[-1].message


def test_a_change_inotify_never_reported_settles_the_hot_rate_for_good(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pylsyncd")
    write(rig.root / "host", "written on the host")
    assert rig.rescan(Event(C, "host")) == [Event(C, "host")]
    assert rig.rescans.settled == [False]
    assert rig.hybrid.description == "inotify+poll (mount does not forward events)"
    for number in range(CONFIRMATIONS + 1):
        confirm(rig, f"f{number}")  # changes through the mount keep being deduplicated
    write(rig.root / "host2", "again")
    rig.rescan(Event(C, "host2"))
    assert rig.rescans.settled == [False]
    assert rig.hybrid.forwarding is Forwarding.DOES_NOT_FORWARD
    logged = [r.message for r in caplog.records if "forward" in r.message]
    assert len(logged) == 1 and "does not forward events" in logged[0]


def test_a_miss_after_concluding_forwarding_flips_it_once(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pylsyncd")
    for number in range(CONFIRMATIONS):
        confirm(rig, f"f{number}")
    write(rig.root / "host", "seen only by a rescan")
    assert rig.rescan(Event(C, "host")) == [Event(C, "host")]
    assert rig.rescans.settled == [True, False]
    assert rig.hybrid.forwarding is Forwarding.DOES_NOT_FORWARD
    logged = [r.message for r in caplog.records if "forward" in r.message]
    assert len(logged) == 2 and "after all, the mount does not forward" in logged[1]


def test_a_miss_among_confirmations_wins(rig: Rig) -> None:
    write(rig.root / "f", "through the mount")
    rig.reported(Event(C, "f"))
    write(rig.root / "host", "on the host")
    assert rig.rescan(Event(C, "f"), Event(C, "host")) == [Event(C, "host")]
    assert rig.rescans.settled == [False]


def test_after_inotify_lost_events_a_rescan_proves_nothing(rig: Rig) -> None:
    rig.reported(Event(OV, ""))
    write(rig.root / "f", "its event was lost")
    assert rig.rescan(Event(C, "f")) == [Event(C, "f")]
    assert rig.hybrid.forwarding is Forwarding.LEARNING
    rig.clock[0] = 1000.0  # long after: learning resumes
    write(rig.root / "g", "on the host")
    rig.rescan(Event(C, "g"))
    assert rig.hybrid.forwarding is Forwarding.DOES_NOT_FORWARD


def test_rescans_added_for_lack_of_watches_deduplicate_but_do_not_learn(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, learn=False)
    write(tmp_path / "f", "x")
    rig.reported(Event(C, "f"))
    assert rig.rescan(Event(C, "f")) == []
    write(tmp_path / "g", "below a directory without a watch")
    assert rig.rescan(Event(C, "g")) == [Event(C, "g")]
    assert rig.rescans.settled == [] and rig.hybrid.description == "inotify+poll"


def test_without_a_root_every_event_passes(tmp_path: Path) -> None:
    inotify, rescans = FakeInotify([[Event(C, "f")]]), FakeRescans([[Event(C, "f")]])
    hybrid = HybridWatcher(inotify, rescans)  # type: ignore[arg-type]
    assert hybrid.read(0) == [Event(C, "f"), Event(C, "f")]


def test_inotify_and_the_rescans_hold_each_directory_path_once(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    root = str(tmp_path)
    hybrid = HybridWatcher(InotifyWatcher(root), PollWatcher(root), root)
    hybrid.start()
    try:
        polled = next(path for path in hybrid.rescans.directories() if path == "a/b")
        table = hybrid.fast._table  # type: ignore[attr-defined]
        assert table.path_of(table.wd_of("a/b")) is polled  # one string, not two
    finally:
        hybrid.close()
