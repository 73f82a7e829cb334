"""ON_SYNC: a command run after a batch has been applied, on a thread of its own.

The pair thread only hands over the batch's paths (`batch_applied`, which never waits); a runner
thread starts the command without a shell, in its own session (a Ctrl-C in the terminal is the
daemon's to handle, and a TERM reaches whatever the command forked), with the changed paths,
relative and NUL-separated, on its stdin (a memfd: a command that never reads it cannot block
anyone) and the batch's counts in its environment. A batch that lands while the command runs
is queued, merged into one pending run (`queue`), or ends the run (`restart`: TERM, KILL after
ON_SYNC_STOP_TIMEOUT) to start again with every path since. Compose's `develop.watch` and
watchexec's `--on-busy-update` are the models.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import threading
from dataclasses import dataclass, field

from pylsyncd.coalesce import Batch
from pylsyncd.config import PairConfig
from pylsyncd.config.observability import OnSyncBusy
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.observer import PairObserver
from pylsyncd.transfer import Outcome
from pylsyncd.transfer.children import stop_child

log = logging.getLogger("pylsyncd")


@dataclass
class Landed:
    """What the batches since the last run changed: their paths, in order, and counts."""

    paths: dict[str, None] = field(default_factory=dict)  # an ordered set
    batches: int = 0
    copied: int = 0
    bytes: int = 0
    deleted: int = 0
    moved: int = 0

    def add(self, paths: list[str], outcome: Outcome) -> None:
        """Merge one more applied batch."""
        self.paths.update(dict.fromkeys(paths))
        self.batches += 1
        self.copied += outcome.copied + outcome.dirs + outcome.links
        self.bytes += outcome.bytes
        self.deleted += outcome.deleted
        self.moved += outcome.moved

    def environment(self) -> dict[str, str]:
        """The counts as the command's environment sees them."""
        return {
            "PYLSYNCD_CHANGED": str(len(self.paths)),
            "PYLSYNCD_BATCHES": str(self.batches),
            "PYLSYNCD_COPIED": str(self.copied),
            "PYLSYNCD_BYTES": str(self.bytes),
            "PYLSYNCD_DELETED": str(self.deleted),
            "PYLSYNCD_MOVED": str(self.moved),
        }


def applied_paths(batch: Batch, outcome: Outcome) -> list[str]:
    """The paths a batch changed, for ON_SYNC: both ends of its moves, then its changes, less
    those the transfer held back (they come with a later batch)."""
    held = {change.path for change in outcome.deferred.changes}
    paths = [path for move in batch.moves for path in (move.source, move.target)]
    paths += [change.path for change in batch.changes if change.path not in held]
    return paths


class OnSync:
    """Runs one pair's ON_SYNC command after its batches; `close` at the pair's end."""

    def __init__(self, name: str, config: PairConfig, observer: PairObserver) -> None:
        self.name = name
        self.command = config.on_sync
        self.busy = config.on_sync_busy
        self.stop_timeout = config.on_sync_stop_timeout
        self._paths = ExcludeRules(config.on_sync_paths) if config.on_sync_paths else None
        self._environment = {
            **os.environ,
            "PYLSYNCD_SOURCE": config.source,
            "PYLSYNCD_DESTINATION": config.destination,
        }
        self._observer = observer
        self._condition = threading.Condition()
        self._landed: Landed | None = None  # the pending run, if any
        self._closing = False
        self._failing = False
        # Started with the first run: without ON_SYNC, or before a batch, no thread waits.
        self._runner = threading.Thread(target=self._run, name=f"on-sync {name}", daemon=True)
        # Written to end the runner's wait on a running command (restart, close).
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def batch_applied(self, batch: Batch, outcome: Outcome, *, final: bool) -> None:
        """A batch went through: run the command for it (now, or once the running one ends).

        Not for the `final` flush: the daemon is stopping, and so would the command.
        """
        if self.command and not final:
            self.landed(applied_paths(batch, outcome), outcome)

    def landed(self, paths: list[str], outcome: Outcome) -> None:
        """`paths` were written (a two-way pair's reconcile, or a batch): run the command."""
        if not self.command:
            return
        if self._paths is not None and not any(self._paths.excludes_path(p, False) for p in paths):
            return  # ON_SYNC_PATHS: no path of this batch matches
        with self._condition:
            if self._landed is None:
                self._landed = Landed()
            self._landed.add(paths, outcome)
            self._condition.notify()
        if self._runner.ident is None:  # never started; the pair thread is the only caller
            self._runner.start()
        if self.busy is OnSyncBusy.RESTART:
            self._poke()

    def close(self) -> None:
        """Drop what is pending, stop a running command (TERM, then KILL), end the runner."""
        with self._condition:
            self._closing = True
            self._landed = None
            self._condition.notify()
        self._poke()
        if self._runner.is_alive():
            self._runner.join()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError):  # full of wake-ups already
            os.write(self._wake_write, b"\0")

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._landed is None and not self._closing:
                    self._condition.wait()  # batch_applied or close notifies: no idle wake-ups
                if self._closing:
                    return
                landed, self._landed = self._landed, None
            assert landed is not None
            self._run_once(landed)

    def _run_once(self, landed: Landed) -> None:
        """One run of the command for `landed`; returns when it ended or was stopped."""
        with contextlib.suppress(BlockingIOError):  # wake-ups that came before this run
            while os.read(self._wake_read, 512):
                pass
        stdin = os.memfd_create("on-sync-paths", os.MFD_CLOEXEC)
        try:
            os.write(stdin, b"".join(os.fsencode(path) + b"\0" for path in landed.paths))
            os.lseek(stdin, 0, os.SEEK_SET)
            process = subprocess.Popen(
                self.command,
                stdin=stdin,
                env={**self._environment, **landed.environment()},
                start_new_session=True,
            )
        except OSError as error:
            self._ended(ok=False, why=f"cannot start {self.command[0]}: {error.strerror}")
            return
        finally:
            os.close(stdin)
        if self._wait(process):
            code = process.returncode
            why = f"exit status {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}"
            self._ended(ok=code == 0, why=why)
            return
        # Restarted, or the pair stops: not a failure of the command's.
        log.debug("%s: ON_SYNC (pid %d) stopped", self.name, process.pid)
        stop_child(process, grace=self.stop_timeout)

    def _wait(self, process: subprocess.Popen[bytes]) -> bool:
        """Wait for the command to exit (True), or for a restart or close to end it (False)."""
        pidfd = os.pidfd_open(process.pid)
        try:
            while True:
                ready = select.select([pidfd, self._wake_read], [], [])[0]
                if pidfd in ready:
                    process.wait()
                    return True
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_read, 512):
                        pass
                with self._condition:
                    if self._closing or self._landed is not None:
                        return False
        finally:
            os.close(pidfd)

    def _ended(self, *, ok: bool, why: str) -> None:
        """Count the run; a failure said once when it starts and once when it is over."""
        self._observer.on_sync_ran(ok)
        if not ok and not self._failing:
            log.error("%s: ON_SYNC %s failed: %s", self.name, self.command[0], why)
        elif ok and self._failing:
            log.warning("%s: ON_SYNC %s succeeds again", self.name, self.command[0])
        else:
            log.debug("%s: ON_SYNC %s: %s", self.name, self.command[0], why)
        self._failing = not ok
