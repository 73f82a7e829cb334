"""All pairs of one daemon: start, readiness, signals and an orderly shutdown."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType

from pylsyncd.config import Config
from pylsyncd.pair import Pair
from pylsyncd.status import StatusFile
from pylsyncd.transfer import Ownership

log = logging.getLogger("pylsyncd")

_STATUS_EVERY = 1.0  # seconds between looks at the pairs' status, when there is a status file


def run(config: Config) -> int:
    """Mirror every pair until SIGTERM or SIGINT; 0 after a clean stop, 1 after a fatal error."""
    stopping = threading.Event()
    received: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Only set a flag: the main loop does the shutdown. As PID 1 in a container there is no
        # default action for SIGTERM, so without this handler `docker stop` would wait and kill.
        received.append(signum)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    ownership = Ownership.for_daemon(config.puid, config.pgid)
    for pair_config in config.pairs:
        try:
            _create_destination(pair_config.destination, ownership)
        except OSError as error:
            log.error("cannot create destination %s: %s", pair_config.destination, error.strerror)
            return 1

    pairs = [Pair(c, stopping, config.shutdown_grace, ownership) for c in config.pairs]
    status_file = (
        StatusFile(config.status_file, lambda: tuple(pair.status() for pair in pairs))
        if config.status_file
        else None
    )
    threads = [threading.Thread(target=pair.run, name=pair.name, daemon=True) for pair in pairs]
    for thread in threads:
        thread.start()

    announced = False
    # Once all are live, wake only to keep the status file current: without one, an idle daemon
    # sleeps until a signal (handled on this thread, it ends the wait).
    live_wait = _STATUS_EVERY if status_file else None
    while not stopping.wait(live_wait if announced else 0.01):
        if status_file:
            status_file.update()  # before "ready": whoever reads that line finds the file
        if not announced and all(pair.ready.is_set() for pair in pairs):
            log.info("ready: %d pair(s) live", len(pairs))
            announced = True
    if received:
        log.info(
            "%s received: applying pending changes (up to %.0f s)",
            signal.Signals(received[0]).name,
            config.shutdown_grace,
        )
    for pair in pairs:
        pair.wake()
    deadline = time.monotonic() + config.shutdown_grace + 1
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    if status_file:
        status_file.update(force=True)  # the changes flushed, then the pairs stopped
    if any(thread.is_alive() for thread in threads):
        log.error("gave up waiting for pending changes after %.0f s", config.shutdown_grace)
        for pair in pairs:
            pair.cancel()  # no rsync is left running behind us
        return 1
    if any(pair.fatal for pair in pairs):
        return 1
    log.info("stopped")
    return 0


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
