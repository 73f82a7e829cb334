"""Which watcher a pair's source gets: WATCH chooses, and `auto` asks the file system.

A pair asks again when it watches its source afresh (after the source went away and came back)
and when inotify runs out of watches, so the choice is an object it keeps, not a one-off call.
"""

from __future__ import annotations

import logging

from pylsyncd.config import PairConfig, WatchMode
from pylsyncd.watch import ExcludePredicate, Watcher
from pylsyncd.watch.hybrid import REMEMBER_FOR, HybridWatcher
from pylsyncd.watch.inotify import InotifyWatcher
from pylsyncd.watch.mounts import filesystem_type, needs_polling
from pylsyncd.watch.poll import PollWatcher

log = logging.getLogger("pylsyncd")

_NAMES = {WatchMode.INOTIFY: "inotify", WatchMode.POLL: "poll", WatchMode.HYBRID: "inotify+poll"}


class WatcherChoice:
    """Builds the watchers of one pair's source, as its WATCH and POLL_INTERVAL say."""

    def __init__(self, name: str, config: PairConfig, excludes: ExcludePredicate) -> None:
        self.name = name  # the pair's, for the log
        self.source = config.source
        self.mode = config.watch
        self.poll_interval = config.poll_interval
        self.poll_period = config.poll_period
        self.poll_hot_for = config.poll_hot_for
        self.poll_safety_period = config.poll_safety_period
        self.excludes = excludes

    def chosen(self) -> Watcher:
        """A new, unstarted watcher of the mode WATCH names; `auto` decides now, and says why."""
        mode = self.mode
        if mode is WatchMode.AUTO:
            fstype = filesystem_type(self.source)
            if needs_polling(fstype):
                # Some such mounts do forward changes made elsewhere (Docker Desktop for Mac's
                # file sharing does): inotify then sees them at once, and the rescans, which
                # catch what it misses elsewhere, learn to slow down (`HybridWatcher`).
                mode = WatchMode.HYBRID
                reason = f"{fstype} may not report changes made elsewhere; learning whether it does"
            else:
                mode, reason = WatchMode.INOTIFY, f"{fstype} reports changes through inotify"
            log.info("%s: watching with %s: %s", self.name, _NAMES[mode], reason)
        if mode is WatchMode.INOTIFY:
            return InotifyWatcher(self.source, self.excludes)
        if mode is WatchMode.POLL:
            return self._poll_watcher()
        fast = InotifyWatcher(self.source, self.excludes)
        return HybridWatcher(
            fast,
            self._poll_watcher(),
            self.source,
            self.excludes,
            remember_for=self._remember_for(),
        )

    def polling(self) -> Watcher:
        """A new, unstarted polling watcher: instead of one that ran out of inotify watches."""
        return self._poll_watcher()

    def with_rescans(self, watcher: Watcher) -> Watcher:
        """`watcher`, which runs, plus periodic rescans, started: they find what the watches
        that no longer fit would have reported."""
        rescans = self._poll_watcher()
        rescans.start()
        # No learning: inotify is known to miss what the missing watches would have reported.
        return HybridWatcher(
            watcher,
            rescans,
            self.source,
            self.excludes,
            learn=False,
            remember_for=self._remember_for(),
        )

    def _remember_for(self) -> float:
        """How long the hybrid keeps what inotify reported: past the rescans' next look at it,
        which a cold pass (of POLL_PERIOD, or of POLL_SAFETY_PERIOD on a mount that forwards
        events) and a held departure may both delay."""
        longest = max(self.poll_period, self.poll_safety_period)
        return max(REMEMBER_FOR, 2 * longest + 2 * self.poll_interval)

    def _poll_watcher(self) -> PollWatcher:
        return PollWatcher(
            self.source,
            self.excludes,
            interval=self.poll_interval,
            period=self.poll_period,
            hot_for=self.poll_hot_for,
            safety_period=self.poll_safety_period,
        )


def describe_watcher(watcher: Watcher) -> str:
    """How `status` names a watcher: "inotify", "poll", or the hybrid's conclusion so far."""
    if isinstance(watcher, HybridWatcher):
        return watcher.description
    if isinstance(watcher, PollWatcher):
        return "poll"
    if isinstance(watcher, InotifyWatcher):
        return "inotify"
    return type(watcher).__name__


def count_watches(watcher: Watcher) -> int:
    """How many inotify watches `watcher` holds (for the metrics); 0 for polling alone."""
    if isinstance(watcher, HybridWatcher):
        watcher = watcher.fast
    return watcher.watch_count if isinstance(watcher, InotifyWatcher) else 0


def entries_found(watcher: Watcher) -> int | None:
    """How many entries below the root `watcher` found when it first looked at the whole tree
    (None when it did not): the initial sync's progress total without a walk of its own."""
    if isinstance(watcher, HybridWatcher):
        watcher = watcher.rescans
    if isinstance(watcher, PollWatcher):
        return watcher.entries()
    return watcher.entries_found if isinstance(watcher, InotifyWatcher) else None
