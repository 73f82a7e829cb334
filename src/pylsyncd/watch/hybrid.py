"""inotify for speed, plus rescans for what inotify never reports (a share that does not forward
changes made on the host), without reporting one change twice, learning whether the mount
needs the rescans at all.

No double report. Whatever inotify reports is passed on at once, never held back nor dropped.
Right after each report the entry's state is taken (lstat: type, size, mtime, inode, mode), and
remembered for a while (`Reports`). A rescan's event is dropped when inotify reported that entry
and the entry is now exactly in the state it was in just after that report: the transfer of the
reported event runs after the report, so it copied that state or a later one, and a change since
the report would have changed the state. What a state cannot tell apart the rescan cannot see
either (a rewrite with the same size, mtime and inode). The rule needs no knowledge of when the
poller looked at which directory, so it holds however the poller schedules its rescans. In detail:
- a file, symlink or deletion: its remembered state equals its state now (absent for a deletion);
- a rename: its source is remembered absent and its target as it is now;
- a new directory (a tree): every entry in it, walked now, is remembered as it is;
- a directory's attributes: type, inode and mode as remembered, and its mtime either as
  remembered or as it was right after inotify reported an entry added, removed or renamed in it
  (the transfer of that entry copies the directory's times). A directory whose mode inotify never
  reported keeps its rescan event: a chmod made on the host just before an entry was added
  through the mount must not be lost. That costs one listing of the directory and copies nothing.

Learning. A rescan event inotify reported is a confirmation; one about an entry inotify reported
nothing about at all (nor, for a directory, about its entries) is a miss: the mount does not
forward events. A miss settles the poller at its hot rate for good (`settle(False)`), even after a
conclusion that the mount forwards (each conclusion is logged once). Three rescans with
confirmations and no miss settle it at the safety-net rate (`settle(True)`): one edit often
shows in one rescan only, and a handful of separate rescans that inotify fully explained is cheap
to wait for where events are forwarded (every edit gives one) while making a coincidence unlikely;
a wrong conclusion costs one change seen at the safety-net rate, then the miss corrects it.
After inotify lost events (an overflow), or when remembered reports had to be forgotten early
(more than `limit`), a rescan event without a report proves nothing, so learning pauses.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from enum import Enum

from pylsyncd.events import Event, EventKind, is_within, parent_of, rebase
from pylsyncd.watch import ExcludePredicate, Watcher
from pylsyncd.watch.inotify import InotifyWatcher
from pylsyncd.watch.poll import PollWatcher

log = logging.getLogger("pylsyncd")

# (type, size, mtime_ns, inode, permissions) as the poller's snapshot has it; None: absent.
State = tuple[int, int, int, int, int] | None

_TYPE, _PERMISSIONS, _DIRECTORY = 0o170000, 0o7777, 0o040000
CONFIRMATIONS = 3  # rescans inotify fully explained before concluding the mount forwards events
REMEMBER_FOR = 120.0  # seconds a report is kept: longer than a full cold pass of the rescans
LIMIT = 65_536  # reports kept at most (about 150 bytes each)
_WALK_LIMIT = 10_000  # a new tree larger than this keeps its rescan event


class Forwarding(Enum):
    """What the hybrid concluded about the mount; the value is how `status` shows it."""

    LEARNING = "inotify+poll (learning)"
    FORWARDS = "inotify+poll (mount forwards events)"
    DOES_NOT_FORWARD = "inotify+poll (mount does not forward events)"
    NOT_LEARNING = "inotify+poll"  # rescans added because inotify ran out of watches


class Verdict(Enum):
    """What a rescan event is, next to what inotify reported."""

    COVERED = "covered"  # inotify reported it: dropped, and a confirmation
    UNCERTAIN = "uncertain"  # kept; inotify reported something there, so no evidence either way
    MISSED = "missed"  # kept; inotify reported nothing about it: the mount does not forward


def entry_state(root: str, path: str) -> State:
    """The state of `path` below `root`, symlinks not followed (except a root that is one, as the
    rescans do); None when it is not there."""
    try:
        st = os.lstat(os.path.join(root, path)) if path else os.stat(root)
    except OSError:
        return None
    mode = st.st_mode
    return (mode & _TYPE, st.st_size, st.st_mtime_ns, st.st_ino, mode & _PERMISSIONS)


class Reports:
    """What inotify reported lately: each entry's state right after its report, and each
    directory's mtime right after an entry in it was reported added, removed or renamed."""

    def __init__(
        self,
        root: str,
        excludes: ExcludePredicate | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        remember_for: float = REMEMBER_FOR,
        limit: int = LIMIT,
    ) -> None:
        self.root = root
        self._excluded = excludes
        self._clock = clock
        self._remember_for = remember_for
        self._limit = limit
        # Insertion-ordered: a report is re-inserted, so the oldest are first to be forgotten.
        self._seen: dict[str, tuple[State, float]] = {}
        self._entries_changed: dict[str, tuple[int, float]] = {}
        self._blind_until = float("-inf")  # learning pauses until then

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def complete(self) -> bool:
        """Whether every report of the last `remember_for` seconds is remembered."""
        return self._clock() >= self._blind_until

    def record(self, events: Iterable[Event]) -> None:
        """Remember what these inotify events reported, as the entries are now."""
        now = self._clock()
        touched: dict[str, None] = {}
        parents: dict[str, None] = {}
        for event in events:
            if event.kind is EventKind.OVERFLOW:
                self._blind_until = now + self._remember_for
                continue
            if event.kind is EventKind.MOVED and event.target is not None:
                if event.is_dir:
                    self._carry(event.path, event.target)
                touched[event.target] = None
                parents[parent_of(event.target)] = None
            if event.kind in (EventKind.CREATED, EventKind.DELETED, EventKind.MOVED) and event.path:
                parents[parent_of(event.path)] = None
            touched[event.path] = None
            if event.kind is EventKind.CREATED and event.tree:
                self._record_tree(event.path, now)
        for path in touched:
            self._remember(path, entry_state(self.root, path), now)
        for directory in parents:
            state = entry_state(self.root, directory)
            if state is not None:
                self._entries_changed.pop(directory, None)
                self._entries_changed[directory] = (state[2], now)
        self._forget_old(now)

    def verdict(self, event: Event) -> Verdict:
        """Whether inotify already reported what this rescan event says (see the module)."""
        if event.kind is EventKind.MOVED and event.target is not None:
            source = self._compare(event.path)
            target = self._compare(event.target)
            if source is target:
                return source
            return Verdict.UNCERTAIN
        if event.kind is EventKind.CREATED and event.tree:
            return self._compare_tree(event.path)
        if event.kind is EventKind.OVERFLOW:
            return Verdict.UNCERTAIN
        return self._compare(event.path)

    def forget(self, paths: Iterable[str]) -> None:
        """These reports were matched by a rescan: a later rescan event there is a new change."""
        for path in paths:
            self._seen.pop(path, None)

    def _compare(self, path: str) -> Verdict:
        seen = self._seen.get(path)
        now = entry_state(self.root, path)
        changed = self._entries_changed.get(path)
        if seen is None:
            if changed is not None and now is not None and now[0] == _DIRECTORY:
                return Verdict.UNCERTAIN  # its entries were reported, its mode never was
            return Verdict.MISSED
        before = seen[0]
        if before == now:
            return Verdict.COVERED
        if (
            before is not None
            and now is not None
            and before[0] == now[0] == _DIRECTORY
            and (before[3], before[4]) == (now[3], now[4])
            and changed is not None
            and changed[0] == now[2]
        ):
            return Verdict.COVERED  # only its mtime differs, as the reported entries left it
        return Verdict.UNCERTAIN

    def _compare_tree(self, top: str) -> Verdict:
        below = self._walk(top)
        if below is None:
            return Verdict.UNCERTAIN
        verdicts = {self._compare(top), *(self._compare(path) for path, _ in below)}
        if Verdict.MISSED in verdicts:
            return Verdict.MISSED  # an entry inotify never reported: worth knowing even so
        return Verdict.COVERED if verdicts == {Verdict.COVERED} else Verdict.UNCERTAIN

    def _walk(self, top: str) -> list[tuple[str, State]] | None:
        """The entries below `top` now, not excluded; None past `_WALK_LIMIT`, or when a directory
        cannot be listed (EACCES, EIO: what it holds is unknown, so none of it is vouched for)."""
        found: list[tuple[str, State]] = []
        stack = [top]
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(os.path.join(self.root, directory)) as entries:
                    names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone, or not a directory (any more): nothing below it
            except OSError:
                return None
            for name, is_dir in names:
                path = f"{directory}/{name}" if directory else name
                if self._excluded is not None and self._excluded(path, is_dir):
                    continue
                found.append((path, entry_state(self.root, path)))
                if len(found) > _WALK_LIMIT:
                    return None
                if is_dir:
                    stack.append(path)
        return found

    def _record_tree(self, top: str, now: float) -> None:
        """A tree moved in: the transfer copies it whole, so each entry is reported as it is."""
        below = self._walk(top)
        if below is None:
            self._blind_until = now + self._remember_for  # too big to remember entry by entry
            return
        for path, state in below:
            self._remember(path, state, now)

    def _carry(self, source: str, target: str) -> None:
        """A directory was renamed: what was reported below it is now below its new name (the
        rescans name entries as they are after renames). One pass over the reports, which
        `limit` bounds; directory renames are rare next to other events."""
        below = [path for path in self._seen if path != source and is_within(path, source)]
        for path in below:
            self._seen[rebase(path, source, target)] = self._seen.pop(path)
        below = [path for path in self._entries_changed if is_within(path, source)]
        for path in below:
            self._entries_changed[rebase(path, source, target)] = self._entries_changed.pop(path)

    def _remember(self, path: str, state: State, now: float) -> None:
        self._seen.pop(path, None)
        self._seen[path] = (state, now)
        if len(self._seen) > self._limit:
            del self._seen[next(iter(self._seen))]
            self._blind_until = now + self._remember_for

    def _forget_old(self, now: float) -> None:
        horizon = now - self._remember_for
        for table in (self._seen, self._entries_changed):
            while table:
                oldest = next(iter(table))
                if table[oldest][1] >= horizon:
                    break
                del table[oldest]


class HybridWatcher:
    """Events from `fast` as they come, and from `rescans` whenever a rescan is due, less what
    `fast` already reported (given the `root` both watch; without it, every rescan event passes).
    With `learn`, the rescans' rate follows what the mount turns out to need (see the module)."""

    def __init__(
        self,
        fast: Watcher,
        rescans: PollWatcher,
        root: str | None = None,
        excludes: ExcludePredicate | None = None,
        *,
        learn: bool = True,
        clock: Callable[[], float] = time.monotonic,
        limit: int = LIMIT,
        remember_for: float = REMEMBER_FOR,
    ) -> None:
        self.fast = fast
        self.rescans = rescans
        self.root = root
        self._reports: Reports | None = None
        if root is not None:
            self._reports = Reports(
                root, excludes, clock=clock, limit=limit, remember_for=remember_for
            )
        self.forwarding = Forwarding.LEARNING if learn else Forwarding.NOT_LEARNING
        self._confirmations = 0

    @property
    def description(self) -> str:
        """How `status` names this watch."""
        return self.forwarding.value

    def start(self) -> None:
        self.rescans.start()  # the snapshot first: a change between the two shows up in both
        if isinstance(self.fast, InotifyWatcher):
            # Both hold every directory's path: one string each, not two (5 MiB on 100,000).
            shared = {path: path for path in self.rescans.directories()}
            self.fast.start(shared)
        else:
            self.fast.start()

    def read(self, timeout: float | None) -> list[Event]:
        # Wait for inotify no longer than until the next rescan is due.
        due = self.rescans.due_in()
        events = self.fast.read(due if timeout is None else min(timeout, due))
        reports = self._reports
        if reports is None:
            return events + self.rescans.read(0)
        reports.record(events)
        self.rescans.heat(events)
        polled = self.rescans.read(0)
        if not polled:
            return events
        # What inotify queued during the rescan goes with it: its transfer runs after the
        # rescan, so it covers whatever the rescan saw of the same entries.
        late = self.fast.read(0)
        reports.record(late)
        self.rescans.heat(late)
        verdicts = [(event, reports.verdict(event)) for event in polled]
        kept = [event for event, verdict in verdicts if verdict is not Verdict.COVERED]
        covered = [event for event, verdict in verdicts if verdict is Verdict.COVERED]
        reports.forget(path for event in covered for path in (event.path, event.target) if path)
        log.debug(
            "%s: rescan found %d changes, %d of them already reported by inotify (dropped)",
            self.root,
            len(polled),
            len(covered),
        )
        if reports.complete and self.forwarding is not Forwarding.NOT_LEARNING:
            self._learn({verdict for _, verdict in verdicts})
        return events + late + kept

    def _learn(self, verdicts: set[Verdict]) -> None:
        if Verdict.MISSED in verdicts:
            if self.forwarding is not Forwarding.DOES_NOT_FORWARD:
                flipped = self.forwarding is Forwarding.FORWARDS
                self.forwarding = Forwarding.DOES_NOT_FORWARD
                self.rescans.settle(False)
                log.info(
                    "%s: %sthe mount does not forward events: a rescan found a change inotify "
                    "never reported; rescanning where changes happen at the hot rate",
                    self.root,
                    "after all, " if flipped else "",
                )
            return
        if Verdict.COVERED in verdicts and self.forwarding is Forwarding.LEARNING:
            self._confirmations += 1
            if self._confirmations >= CONFIRMATIONS:
                self.forwarding = Forwarding.FORWARDS
                self.rescans.settle(True)
                log.info(
                    "%s: the mount forwards events: %d rescans found only changes inotify had "
                    "reported; rescans slow to a safety net",
                    self.root,
                    self._confirmations,
                )

    def wake(self) -> None:
        self.fast.wake()
        self.rescans.wake()

    def close(self) -> None:
        self.fast.close()
        self.rescans.close()
