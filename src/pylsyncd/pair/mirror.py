"""One source -> one destination, as a unit: a `SourceGroup` with a single `Target`.

The supervisor builds groups and targets itself (several targets may share a source, see
`fan_out`); this is the same machinery for one pair, run from one call, which is how a test
drives a pair with a fake transfer and a fake watcher.
"""

from __future__ import annotations

import threading

from pylsyncd.config import PairConfig
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.fan_out import SourceGroup
from pylsyncd.pair.observer import UNOBSERVED, PairObserver
from pylsyncd.pair.source_watch import WatcherFactory
from pylsyncd.pair.target import Backlog, Target, pair_name
from pylsyncd.status import PairStatus
from pylsyncd.transfer import Transfer
from pylsyncd.watch import Watcher


class Pair:
    """Mirrors one source into one destination until `stopping` is set."""

    def __init__(
        self,
        config: PairConfig,
        *,
        transfer: Transfer,
        watcher: Watcher,
        watchers: WatcherFactory,
        excludes: ExcludeRules,
        stopping: threading.Event,
        grace: float,
        observer: PairObserver = UNOBSERVED,
    ) -> None:
        self.name = pair_name(config)
        self.stopping = stopping
        self.source = SourceGroup(
            self.name,
            config,
            watcher=watcher,
            watchers=watchers,
            excludes=excludes,
            stopping=stopping,
        )
        self.target = Target(
            config,
            source=self.source,
            transfer=transfer,
            excludes=excludes,
            stopping=stopping,
            grace=grace,
            observer=observer,
        )
        self.source.add(self.target)
        self.ready = self.target.ready
        self.fatal: str | None = None

    @property
    def pending(self) -> Backlog:
        """What the destination has not received yet."""
        return self.target.pending

    def run(self) -> None:
        """The source's thread beside this one, which is the target's; both end on a stop."""
        source = threading.Thread(target=self.source.run, name=f"source {self.name}", daemon=True)
        source.start()
        try:
            self.target.run()
        finally:
            self.stopping.set()
            self.source.wake()
            source.join()
            self.fatal = self.target.fatal or self.source.fatal

    def status(self) -> PairStatus:
        """This pair's line in the status file."""
        return self.target.status()

    def wake(self) -> None:
        """After `stopping` is set: end every wait of the pair now."""
        self.source.wake()

    def cancel(self) -> None:
        """Abandon the transfer in progress (the shutdown grace ran out)."""
        self.target.cancel()
