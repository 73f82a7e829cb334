"""Which watcher a pair's source gets: WATCH chooses, and `auto` asks the file system.

A pair asks again when it watches its source afresh (after the source went away and came back)
and when inotify runs out of watches, so the choice is an object it keeps, not a one-off call.
"""

from __future__ import annotations

import logging

from pylsyncd.config import PairConfig, WatchMode
from pylsyncd.watch import ExcludePredicate, Watcher
from pylsyncd.watch.hybrid import HybridWatcher
from pylsyncd.watch.inotify import InotifyWatcher
from pylsyncd.watch.mounts import filesystem_type, needs_polling
from pylsyncd.watch.poll import PollWatcher

log = logging.getLogger("pylsyncd")


class WatcherChoice:
    """Builds the watchers of one pair's source, as its WATCH and POLL_INTERVAL say."""

    def __init__(self, name: str, config: PairConfig, excludes: ExcludePredicate) -> None:
        self.name = name  # the pair's, for the log
        self.source = config.source
        self.mode = config.watch
        self.poll_interval = config.poll_interval
        self.poll_period = config.poll_period
        self.poll_hot_for = config.poll_hot_for
        self.excludes = excludes

    def chosen(self) -> Watcher:
        """A new, unstarted watcher of the mode WATCH names; `auto` decides now, and says why."""
        mode = self.mode
        if mode is WatchMode.AUTO:
            fstype = filesystem_type(self.source)
            if needs_polling(fstype):
                mode, reason = WatchMode.POLL, f"{fstype} does not report changes made elsewhere"
            else:
                mode, reason = WatchMode.INOTIFY, f"{fstype} reports changes through inotify"
            log.info("%s: watching with %s: %s", self.name, mode.value, reason)
        if mode is WatchMode.INOTIFY:
            return InotifyWatcher(self.source, self.excludes)
        if mode is WatchMode.POLL:
            return self._poll_watcher()
        return HybridWatcher(InotifyWatcher(self.source, self.excludes), self._poll_watcher())

    def polling(self) -> Watcher:
        """A new, unstarted polling watcher: instead of one that ran out of inotify watches."""
        return self._poll_watcher()

    def with_rescans(self, watcher: Watcher) -> Watcher:
        """`watcher`, which runs, plus periodic rescans, started: they find what the watches
        that no longer fit would have reported."""
        rescans = self._poll_watcher()
        rescans.start()
        return HybridWatcher(watcher, rescans)

    def _poll_watcher(self) -> PollWatcher:
        return PollWatcher(
            self.source,
            self.excludes,
            interval=self.poll_interval,
            period=self.poll_period,
            hot_for=self.poll_hot_for,
        )
