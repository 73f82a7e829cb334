"""All pairs of one daemon: build them, start them, readiness, signals and an orderly shutdown.

Construction happens here, at the edge: each pair is handed its transfer and its watcher, and
where to get new watchers, so that `pylsyncd.pair` knows only their Protocols.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from pylsyncd.config import Config, PairConfig
from pylsyncd.entries import Mode, Side
from pylsyncd.errors import ConfigError, DestinationError, ForcedExit, PairStopped, ShutdownTimeout
from pylsyncd.git_excludes import pair_excludes
from pylsyncd.pair.fan_out import SourceGroup, grouped
from pylsyncd.pair.observer import UNOBSERVED
from pylsyncd.pair.target import Target, pair_name
from pylsyncd.status import StatusFile
from pylsyncd.transfer import Ownership
from pylsyncd.transfer.choice import make_transfer
from pylsyncd.watch.choice import WatcherChoice

if TYPE_CHECKING:
    from pylsyncd.metrics import DaemonMetrics
    from pylsyncd.pair.two_way import TwoWayPair
    from pylsyncd.transfer.ssh_master import SshConnections

log = logging.getLogger("pylsyncd")

_STATUS_EVERY = 1.0  # seconds between looks at the pairs' status, when there is a status file
# During the shutdown, how often the main thread looks whether a second signal came: a handler
# only sets a flag, and the join it interrupted goes on waiting.
_FORCE_CHECK_EVERY = 0.05
# Seconds a thread waiting for the interpreter's lock waits before it asks the holder to let go
# (the default is 5 ms). The daemon's threads are I/O threads: a two-way pair applying a storm
# makes thousands of system calls, and after each one waited up to 5 ms while a reader thread
# turned events into paths. 0.2 ms: the 10,000-file two-way storm 1.15-1.21 s after the last
# write instead of 1.30-1.46 s (medians of three runs of eight); one-way live, initial sync,
# union merge and a real tree copied in unchanged within their noise (docs/benchmarks.md).
SWITCH_INTERVAL = 0.0002


class _Stopping(threading.Event):
    """The daemon's stop flag; setting it also wakes the main loop's `select` (a pair that stops
    on a fatal error sets it from its own thread)."""

    def __init__(self, wakeup_fd: int) -> None:
        super().__init__()
        self._wakeup_fd = wakeup_fd

    def set(self) -> None:
        super().set()
        _poke(self._wakeup_fd)


class _StopRequests:
    """What SIGTERM and SIGINT asked for. The handler only records it: taking a lock there (as
    `Event.set` does) could deadlock against the main thread holding that lock when the signal
    came. `signal.set_wakeup_fd` wakes the main loop, which does the shutdown; a second signal
    cuts it short (uvicorn's force_exit)."""

    def __init__(self) -> None:
        self.first: int | None = None  # the signal that started the shutdown
        self.again: int | None = None  # a second one: exit now
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: the first signal asks for the shutdown, a second cuts it short."""
        # As PID 1 in a container there is no default action for SIGTERM, so without this
        # handler `docker stop` would wait and kill.
        if self.first is None:
            self.first = signum
        else:
            self.again = signum

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on; each one also writes to the wakeup pipe."""
        signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self.handle)
        signal.signal(signal.SIGINT, self.handle)

    def sleep(self, timeout: float | None) -> None:
        """Wait until a signal comes, `stopping` is set, or `timeout` seconds (None: no limit)."""
        if select.select([self.read_fd], [], [], timeout)[0]:
            with contextlib.suppress(BlockingIOError):  # raised once it is drained
                while os.read(self.read_fd, 512):
                    pass

    def close(self) -> None:
        """Stop writing signals to the pipe and close it."""
        signal.set_wakeup_fd(-1)
        os.close(self.read_fd)
        os.close(self.write_fd)


def _poke(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups already
        os.write(fd, b"\0")


def run(config: Config) -> int:
    """Mirror every pair until SIGTERM or SIGINT; 0 after a clean stop.

    Raises DestinationError, PairStopped, ShutdownTimeout or ForcedExit: `cli.main` prints its
    one line and exits with its status.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)
    metrics = _serve_metrics(config)  # first: a port that is taken touches nothing on disk
    connections = _ssh_connections(config)  # before anything runs: ssh missing is exit 2
    requests = _StopRequests()
    requests.install()
    try:
        return _run(config, requests, _Stopping(requests.write_fd), metrics, connections)
    finally:
        requests.close()
        if connections is not None:
            connections.close()  # every ssh master stopped, their sockets' directory removed
        if metrics is not None:
            metrics.close()


def _ssh_connections(config: Config) -> SshConnections | None:
    """The ssh masters' home, when a destination is remote (checks that ssh and rsync exist)."""
    if all(pair.remote is None for pair in config.pairs):
        return None
    from pylsyncd.transfer.ssh_master import SshConnections

    return SshConnections()


def _serve_metrics(config: Config) -> DaemonMetrics | None:
    """The metrics, served on METRICS_ADDR; None without it (prometheus_client not imported)."""
    if config.metrics_addr is None:
        return None
    import pylsyncd
    from pylsyncd.metrics import DaemonMetrics

    metrics = DaemonMetrics(pylsyncd.__version__)
    try:
        metrics.serve(config.metrics_addr)
    except OSError as error:
        raise ConfigError(
            f"METRICS_ADDR={config.metrics_addr} cannot be served: {error.strerror}; "
            "give a free port on an address of this host"
        ) from None
    return metrics


def _run(
    config: Config,
    requests: _StopRequests,
    stopping: threading.Event,
    metrics: DaemonMetrics | None,
    connections: SshConnections | None = None,
) -> int:
    """`run` once the signals are handled."""
    ownership = Ownership.for_daemon(config.puid, config.pgid)
    for pair_config in config.pairs:
        if pair_config.remote is not None:
            continue  # rsync's --mkpath makes it, once the target answers
        try:
            _create_destination(pair_config.destination, ownership)
        except OSError as error:
            raise DestinationError(
                f"cannot create destination {pair_config.destination}: {error.strerror}"
            ) from None

    pairs, runners = _build_pairs(config, ownership, stopping, metrics, connections)
    status_file = (
        StatusFile(config.status_file, lambda: tuple(pair.status() for pair in pairs))
        if config.status_file
        else None
    )
    threads = [
        threading.Thread(target=runner.run, name=runner.name, daemon=True) for runner in runners
    ]
    for thread in threads:
        thread.start()

    announced = False
    # Once all are live, wake only to keep the status file current: without one, an idle daemon
    # sleeps until a signal (its byte in the wakeup pipe ends the wait) or a pair stops.
    live_wait = _STATUS_EVERY if status_file else None
    while True:
        if requests.first is not None:
            stopping.set()  # here, on the main thread, not in the signal handler
        if stopping.is_set():
            break
        # Looked at before the status is written: a pair that goes live in between would
        # otherwise be announced while the file still shows its initial sync.
        live = all(pair.ready.is_set() for pair in pairs)
        if status_file:
            status_file.update()  # before "ready": whoever reads that line finds the file
        if not announced and live:
            log.info("ready: %d pair(s) live", len(pairs))
            announced = True
        requests.sleep(live_wait if announced else 0.01)
    if requests.first is not None:
        log.info(
            "%s received: applying pending changes (up to %.0f s)",
            signal.Signals(requests.first).name,
            config.shutdown_grace,
        )
    for runner in runners:
        runner.wake()
    _join(threads, time.monotonic() + config.shutdown_grace + 1, requests)
    if status_file:
        status_file.update(force=True)  # the changes flushed, then the pairs stopped
    if any(thread.is_alive() for thread in threads):
        for runner in runners:
            runner.cancel()  # no rsync is left running behind us
        if requests.again is not None:
            pending = sum(len(pair.pending) for pair in pairs)
            raise ForcedExit(
                f"{signal.Signals(requests.again).name} received during the shutdown: "
                f"exiting now with {pending} changes not applied"
            )
        raise ShutdownTimeout(
            f"gave up waiting for pending changes after {config.shutdown_grace:.0f} s"
        )
    failed = [
        f"{runner.name}: stopped by an unexpected error: {runner.fatal}"
        for runner in runners
        if runner.fatal
    ]
    if failed:
        raise PairStopped("; ".join(failed))
    log.info("stopped")
    return 0


class _Runner(Protocol):
    """What runs on a thread of its own: a source's group, a target, a two-way pair."""

    name: str
    fatal: str | None

    def run(self) -> None:
        """The thread's body, until `stopping`."""

    def wake(self) -> None:
        """After `stopping` is set: end its waits now."""

    def cancel(self) -> None:
        """Abandon the transfer in progress (the shutdown grace ran out)."""


def _build_pairs(
    config: Config,
    ownership: Ownership,
    stopping: threading.Event,
    metrics: DaemonMetrics | None,
    connections: SshConnections | None,
) -> tuple[list[Target | TwoWayPair], list[_Runner]]:
    """What the status shows (each target, each two-way pair, in the configuration's order)
    and what runs on threads."""
    shown: dict[int, Target | TwoWayPair] = {}  # by the pair's place in the configuration
    runners: list[_Runner] = []
    one_way = [pair for pair in config.pairs if pair.mode is Mode.ONE_WAY]
    for configs in grouped(one_way):
        group = _build_group(
            configs, ownership, stopping, config.shutdown_grace, metrics, connections
        )
        shown.update({config.pairs.index(target.config): target for target in group.targets})
        runners += [group, *group.targets]
    for place, pair_config in enumerate(config.pairs):
        if pair_config.mode is not Mode.ONE_WAY:
            two_way = _build_two_way_pair(pair_config, ownership, stopping, metrics)
            shown[place] = two_way
            runners.append(two_way)
    return [shown[place] for place in sorted(shown)], runners


def _build_group(
    configs: list[PairConfig],
    ownership: Ownership,
    stopping: threading.Event,
    grace: float,
    metrics: DaemonMetrics | None = None,
    connections: SshConnections | None = None,
) -> SourceGroup:
    """One source's watcher and coalescer, and a target for each of its destinations."""
    first = configs[0]
    # One pair keeps the name the log always gave it; a shared source is named by its path.
    name = pair_name(first) if len(configs) == 1 else first.source
    excludes, unwatched = pair_excludes(first)
    watchers = WatcherChoice(name, first, unwatched)
    group = SourceGroup(
        name,
        first,
        watcher=watchers.chosen(),
        watchers=watchers,
        excludes=excludes,
        stopping=stopping,
    )
    for config in configs:
        target_name = pair_name(config)
        target = Target(
            config,
            source=group,
            transfer=make_transfer(config, excludes, ownership, connections),
            excludes=excludes,
            stopping=stopping,
            grace=grace,
            observer=UNOBSERVED if metrics is None else metrics.pair(target_name),
        )
        if metrics is not None:
            metrics.follow(target_name, target.pending, target.ready.is_set)
        group.add(target)
    if len(configs) > 1:
        log.info("%s: one watch for %d destinations", name, len(configs))
    return group


def _build_two_way_pair(
    config: PairConfig,
    ownership: Ownership,
    stopping: threading.Event,
    metrics: DaemonMetrics | None,
) -> TwoWayPair:
    """A two-way or one-way-safe pair: both roots watched, each as WATCH chooses for it."""
    # Imported here: its state loads hashlib (OpenSSL, see file_writer), which one-way never needs.
    from pylsyncd.pair.two_way import TwoWayPair, destination_config, two_way_name

    excludes, unwatched = pair_excludes(config)
    name = two_way_name(config)
    watchers = {}
    for side, side_config in ((Side.A, config), (Side.B, destination_config(config))):
        choice = WatcherChoice(f"{name} [{side.value}]", side_config, unwatched)
        watchers[side] = (choice.chosen(), choice)
    pair = TwoWayPair(
        config,
        watchers=watchers,
        excludes=excludes,
        ownership=ownership,
        stopping=stopping,
        observer=UNOBSERVED if metrics is None else metrics.pair(name),
    )
    if metrics is not None:
        metrics.follow(name, pair.pending, pair.ready.is_set)
    return pair


def _join(threads: list[threading.Thread], deadline: float, requests: _StopRequests) -> None:
    """Wait for `threads` until the deadline, or until a second signal asks to exit now."""
    for thread in threads:
        while thread.is_alive() and requests.again is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            thread.join(min(remaining, _FORCE_CHECK_EVERY))


def _create_destination(path: str, ownership: Ownership) -> None:
    """Create a missing destination; with PUID/PGID it belongs to them like all it will hold."""
    if os.path.isdir(path):
        return
    os.makedirs(path)
    if ownership.uid is not None or ownership.gid is not None:
        os.chown(
            path,
            -1 if ownership.uid is None else ownership.uid,
            -1 if ownership.gid is None else ownership.gid,
        )
