"""A two-way (or one-way-safe) pair: both roots watched, each batch reconciled and applied.

Three threads per pair: one reader per root (`SourceWatch`, each with the pair's WATCH choice
for its root) feeding `TwoSidedPending`, and the pair thread (`TwoWayPair.run`), which takes
both sides' events, reconciles the touched paths (`TwoWaySync`) and applies the plan.

No echo: the daemon's own writes raise events on the side written; that batch reads those paths
on both sides, finds them equal to the ancestor (which holds the state after the write) and
plans nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from functools import partial

from pylsyncd.config import PairConfig
from pylsyncd.entries import Mode, Side
from pylsyncd.excludes import ExcludeRules
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.pair.git_rules import GitRules
from pylsyncd.pair.observer import UNOBSERVED, FailureKind, PairObserver, events_only
from pylsyncd.pair.on_sync import OnSync
from pylsyncd.pair.retry import Retry
from pylsyncd.pair.side_tree import OWN_TEMPORARY, Excluded
from pylsyncd.pair.source_watch import SourceWatch, WatcherFactory
from pylsyncd.pair.two_sided_pending import TwoSidedPending
from pylsyncd.pair.two_way_report import TwoWayReport
from pylsyncd.pair.two_way_sync import Halted, Reconciled, TwoWaySync, state_dir_ready
from pylsyncd.state import PairIdentity, state_path
from pylsyncd.status import PairState, PairStatus
from pylsyncd.transfer import Ownership
from pylsyncd.watch import Watcher

log = logging.getLogger("pylsyncd")

_ROOT_CHECK_EVERY = 1.0  # seconds between looks at the roots' identities when nothing happens


class TwoWayPair:
    """Keeps both roots of one pair in agreement until `stopping` is set, or halts."""

    def __init__(
        self,
        config: PairConfig,
        *,
        watchers: Mapping[Side, tuple[Watcher, WatcherFactory]],
        excludes: ExcludeRules,
        ownership: Ownership,
        stopping: threading.Event,
        observer: PairObserver = UNOBSERVED,
    ) -> None:
        self.config = config
        self.name = two_way_name(config)
        self.stopping = stopping
        self.pending = TwoSidedPending()
        self.ready = threading.Event()
        self.fatal: str | None = None
        self.state_file = state_path(config.state_dir, _identity(config))
        roots = {Side.A: config.source, Side.B: config.destination}
        self._watches = {
            side: SourceWatch(
                f"{self.name} [{side.value}]",
                roots[side],
                watcher,
                factory,
                self.pending.feed(side),
                stopping,
                observer if side is Side.A else events_only(observer),
            )
            for side, (watcher, factory) in watchers.items()
        }
        self._sync = TwoWaySync(
            self.name, config, _excluded(excludes), ownership, self.state_file,
            None if isinstance(excludes, GitExcludes) else excludes,
            partial(_quiet_and_held, self.pending, self._watches),
        )  # fmt: skip
        self._git_rules = (
            GitRules(self.name, excludes, self._watches[Side.A], self._watches[Side.B])
            if isinstance(excludes, GitExcludes)
            else None
        )
        self._observer = observer
        self._on_sync = OnSync(self.name, config, observer)  # does nothing without ON_SYNC
        self._retry = Retry(self.name, observer)
        self._carried: set[str] = set()  # paths handed back by the last apply
        self._full = False  # a side lost events: compare both whole trees
        self._halted: str | None = None
        self._stopped = False
        self._report = TwoWayReport(self.name, observer)

    def run(self) -> None:
        """The pair thread's body; an unexpected error ends it with `fatal` set."""
        try:
            for watch in self._watches.values():
                watch.start()  # before the first reconcile: nothing changes unseen
            state_dir_ready(self.config.state_dir)
            self._live()
        except Exception as error:
            self.fatal = f"{type(error).__name__}: {error}"
            log.debug("%s: stopped by an unexpected error", self.name, exc_info=True)
        finally:
            self.stopping.set()
            self._on_sync.close()
            for watch in self._watches.values():
                watch.close()
            self._stopped = True

    def _live(self) -> None:
        """The start's reconcile, then batches until stopping (or a halt)."""
        log.info("%s: comparing both sides with their state %s", self.name, self.state_file)
        started = time.monotonic()
        while not self._step(self._sync.start, started, FailureKind.INITIAL_SYNC):
            if self._halted is not None or self.stopping.wait(self._retry.backoff):
                break
        if self._halted is None and not self.stopping.is_set():
            self.ready.set()
            log.info("%s: live, watching both sides", self.name)
        while self.pending.wait(self.config.delay, self.stopping,
                                time.monotonic() + _ROOT_CHECK_EVERY):  # fmt: skip
            if self._halted is not None:
                # Nothing is propagated until a restart, which compares both whole trees.
                dropped = self.pending.take().events
                if dropped:
                    log.debug("%s: halted: %d events not applied", self.name, dropped)
                continue
            if not self._next_batch():
                self.stopping.wait(self._retry.backoff)
        if self._halted is None and self.ready.is_set():
            for watch in self._watches.values():
                watch.join()
            self._next_batch(final=True)  # what was changed before the stop

    def _next_batch(self, *, final: bool = False) -> bool:
        """Reconcile what both sides' events touched; False after a failure."""
        taken = self.pending.take()
        if self._git_rules is not None:
            self._git_rules.follow(taken.a)  # the rules come from the source's ignore files
        self._full = self._full or taken.full_resync
        touched = taken.touched() | self._carried
        if not touched and not self._full:
            return self._step(self._sync.idle, time.monotonic())
        full, self._full, self._carried = self._full, False, set()
        if full and self._git_rules is not None:
            self._git_rules.comparing()
        started = time.monotonic()
        log.debug("%s: reconciling %d events, %s", self.name, taken.events,
                  "both whole trees" if full else f"{len(touched)} paths")  # fmt: skip
        before = self._report.batches
        written = taken.written()
        ok = self._step(
            lambda: self._sync.batch(None if full else touched, written),
            started,
            since=None if final else (taken.since or started),
        )
        if ok and self._report.batches == before:
            log.debug("%s: in sync, nothing to write", self.name)  # the daemon's own echo
        return ok

    def _step(
        self,
        reconcile: Callable[[], Reconciled],
        started: float,
        kind: FailureKind = FailureKind.APPLY,
        since: float | None = None,
    ) -> bool:
        """Run one reconcile; log and count what it did; halt on Halted. False on failure.

        `since`: when a live batch's oldest event came (monotonic): what it wrote is counted as
        an applied batch and runs ON_SYNC (not the start's reconcile, nor the one at a stop).
        """
        try:
            done = reconcile()
        except Halted as halt:
            self._halt(str(halt))
            return False
        except OSError as error:
            log.debug("%s: reconcile failed", self.name, exc_info=True)
            self._retry.failed("reconciling", f"{error.strerror or error}", kind)
            self._full = True  # what failed is not known: compare everything next time
            return False
        self._carried |= done.handed_back
        self._report.done(done, started)
        if done.changes and since is not None:
            if done.error is None:
                seconds = time.monotonic() - started
                self._observer.batch_applied(done.outcome, seconds, started - since)
            self._on_sync.landed(list(done.changed), done.outcome)  # what did land
        if done.error is not None:
            self._retry.failed("applying changes", done.error, kind)
            return False
        self._retry.succeeded()
        return True

    def _halt(self, reason: str) -> None:
        """Stop propagating anything; say once how to resume."""
        self._halted = reason
        log.error(
            "%s: halted: %s; nothing was propagated. Bring the root back as it was and restart "
            "pylsyncd to resume; if the change was meant, remove %s before restarting: the "
            "pair then starts with a union merge, which deletes nothing",
            self.name, reason, self.state_file,
        )  # fmt: skip

    def status(self) -> PairStatus:
        """This pair's line in the status file."""
        if self._stopped and self._halted is None:
            state = PairState.STOPPED
        elif self._halted is not None:
            state = PairState.HALTED
        elif self._retry.failing_since is not None:
            state = PairState.FAILING
        else:
            state = PairState.LIVE if self.ready.is_set() else PairState.INITIAL_SYNC
        watch = self._watches[Side.A].watching, self._watches[Side.B].watching
        return self._report.status(
            self.config,
            state,
            ready=self.ready.is_set(),
            pending=len(self.pending),
            error=self._halted or self._retry.last_error,
            failing_since=self._retry.failing_since,
            watch=f"source {watch[0]}, destination {watch[1]}",
            open_conflicts=self._sync.open_conflicts,
        )

    def wake(self) -> None:
        """After `stopping` is set: end the readers' and the pair thread's waits now."""
        for watch in self._watches.values():
            watch.wake()
        self.pending.wake()

    def cancel(self) -> None:
        """A first start's copy stops at its next subtree; otherwise nothing runs outside this
        process and the pair thread ends within one action."""
        self._sync.cancel()


@contextlib.contextmanager
def _quiet_and_held(
    pending: TwoSidedPending, watches: Mapping[Side, SourceWatch], side: Side, tops: list[str]
) -> Iterator[None]:
    """A union merge writes `side`'s trees at `tops`, then reads them whole: meanwhile their
    events are dropped, and new directories there are watched only when the writes end
    (before the read), which spares the readers an event per entry written."""
    with pending.quiet_below(side, tops), watches[side].watches_held(tops):
        yield


def _excluded(excludes: ExcludeRules) -> Excluded:
    """EXCLUDES (and GITIGNORE), and this daemon's temporary files (a crash may leave one)."""

    def excluded(path: str, is_dir: bool) -> bool:
        name = path.rpartition("/")[2]
        return OWN_TEMPORARY.match(name) is not None or excludes.excludes(path, is_dir)

    return excluded


def two_way_name(config: PairConfig) -> str:
    """How the log names a two-way or one-way-safe pair."""
    arrow = "<->" if config.mode is Mode.TWO_WAY else "->"
    return f"{config.source} {arrow} {config.destination} ({config.mode.value})"


def _identity(config: PairConfig) -> PairIdentity:
    return PairIdentity(config.source, config.destination)


def destination_config(config: PairConfig) -> PairConfig:
    """The pair's settings with its destination as the root watched (for `WatcherChoice`)."""
    return replace(config, source=config.destination)
