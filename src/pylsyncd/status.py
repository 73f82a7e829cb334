"""The status file the daemon keeps, and the `health` and `status` commands that read it.

The daemon rewrites the file (JSON, through a temporary file and a rename, so a reader never sees
half of it) whenever a pair's state changes, and at least every `HEARTBEAT` seconds, so a reader
can tell a hung or dead daemon from a quiet one. `pylsyncd health` reads it: healthy once every
pair finished its initial sync, as long as none has been failing, or lagging (its oldest change
not applied yet waiting), for longer than `--failing-for` seconds. With fan-out, each destination
of a source is a pair of its own here.

Beside it the daemon keeps a marker (`health_marker`) that exists while those rules hold and is
touched with every write: the image's HEALTHCHECK (docker/healthcheck.sh) only asks `find` whether
it is younger than STALE_AFTER, instead of starting Python every 2 s (80 ms of CPU each time) on an
idle sidecar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

log = logging.getLogger("pylsyncd")

HEARTBEAT = 10.0  # seconds between rewrites of an unchanged status
STALE_AFTER = 3 * HEARTBEAT  # a status older than this is of a daemon that is hung or gone
DEFAULT_FAILING_FOR = 60.0


class PairState(Enum):
    """Where a pair is in its life."""

    INITIAL_SYNC = "initial-sync"  # copying the source before going live
    LIVE = "live"  # applying changes as they come
    FAILING = "failing"  # its last transfer failed; retrying with backoff
    PAUSED = "paused"  # the source is gone (unmounted, removed); waiting for it to return
    STOPPED = "stopped"  # the daemon stopped
    HALTED = "halted"  # two-way: a root vanished, was replaced or emptied; nothing propagated


@dataclass(frozen=True)
class PairStatus:
    """One pair as the status file describes it; times are Unix seconds."""

    source: str
    destination: str
    state: PairState
    initial_sync_done: bool
    pending_events: int = 0
    last_batch_at: float | None = None
    last_batch_changes: int = 0  # entries written, deleted or moved by the last batch
    last_batch_ms: float = 0.0
    last_error: str | None = None
    failing_since: float | None = None
    # How the source is watched: "inotify", "poll", or inotify plus rescans with what they
    # learned of the mount, e.g. "inotify+poll (mount forwards events)".
    watch: str = ""
    # Since the daemon started, for `status --watch`'s throughput: entries written, deleted or
    # moved by batches, bytes written, failed batches.
    changes_total: int = 0
    bytes_total: int = 0
    failures_total: int = 0
    oldest_pending_at: float | None = None  # when the oldest waiting change was seen
    # The initial sync: when it started, entries handled, entries in all (None: not counted yet,
    # it is counted only for a sync that lasts).
    sync_started_at: float | None = None
    sync_entries: int = 0
    sync_total: int | None = None
    # Two-way and one-way-safe: conflicts met since the daemon started, and the conflict copies
    # both sides hold now (open until a person removes them; removing one side's is enough).
    conflicts_total: int = 0
    open_conflicts: tuple[str, ...] = ()


@dataclass(frozen=True)
class DaemonStatus:
    """The whole status file."""

    pid: int
    started_at: float
    updated_at: float
    pairs: tuple[PairStatus, ...]


class StatusError(Exception):
    """The status file is missing or unreadable: the daemon is not (yet) running as expected."""


def health_marker(status_path: str) -> str:
    """The marker beside the status file that exists while the daemon is healthy (with the
    default `--failing-for`) and is touched at every write of the status."""
    return f"{status_path}.healthy"


def probe_flag(status_path: str) -> str:
    """The image's probe's own flag: the marker has been there since the probe last answered
    "healthy". Removed with the marker, so that the next healthy answer comes at once."""
    return f"{health_marker(status_path)}.reported"


class StatusFile:
    """Keeps the status file current: rewritten when a pair's status changes, and every
    HEARTBEAT seconds so that `health` can tell a quiet daemon from a hung one; and its health
    marker, there while the pairs are healthy, as fresh as the file."""

    def __init__(
        self,
        path: str,
        pairs: Callable[[], tuple[PairStatus, ...]],
        failing_for: float = DEFAULT_FAILING_FOR,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._clock = clock
        self.marker = health_marker(path)
        self._probe_flag = probe_flag(path)
        self._pairs = pairs
        self._failing_for = failing_for
        self._started_at = clock()
        self._written: tuple[PairStatus, ...] | None = None
        self._written_at = 0.0
        self._failing = False
        # Whether the marker is there, as far as we know. One left by an earlier daemon (a
        # container restarted within STALE_AFTER) must not vouch for this one's initial sync.
        self._marked = True
        self._unmark()

    def update(self, *, force: bool = False) -> None:
        """Write the status if it changed, the heartbeat is due or `force`; never raises.

        The marker is judged at every call: a pair crosses `failing_for` without any change
        of its status, and the probe must see it within a second, not at the next heartbeat.
        """
        pairs = self._pairs()
        now = self._clock()
        healthy = not pair_problems(pairs, now, self._failing_for)
        if not healthy and self._marked:
            self._unmark()
        if not force and pairs == self._written and now - self._written_at < HEARTBEAT:
            if healthy and not self._marked:
                self._mark()
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_status(self.path, DaemonStatus(os.getpid(), self._started_at, now, pairs))
        except OSError as error:
            if not self._failing:
                log.error("cannot write the status file %s: %s", self.path, error.strerror)
            self._failing = True
            return
        if self._failing:
            log.warning("status file %s written again", self.path)
        self._failing = False
        self._written, self._written_at = pairs, now
        if healthy:
            self._mark()  # as fresh as the status: a hung daemon's marker grows old with it

    def _mark(self) -> None:
        try:
            # utime on what exists (one system call an idle heartbeat); created when missing.
            try:
                os.utime(self.marker)
            except FileNotFoundError:
                os.close(os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError as error:
            log.debug("cannot touch the health marker %s: %s", self.marker, error.strerror)
            return
        self._marked = True

    def _unmark(self) -> None:
        try:
            for path in (self._probe_flag, self.marker):  # the flag first: it vouches for it
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        except OSError as error:
            log.debug("cannot remove the health marker %s: %s", self.marker, error.strerror)
            return
        self._marked = False


def write_status(path: str, status: DaemonStatus) -> None:
    """Replace the status file atomically."""
    document = dataclasses.asdict(status)
    for pair in document["pairs"]:
        pair["state"] = pair["state"].value
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=1)
        file.write("\n")
    os.replace(temporary, path)


def read_status(path: str) -> DaemonStatus:
    """The status the daemon last wrote; raises StatusError."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
        pairs = tuple(
            PairStatus(
                **{
                    **pair,
                    "state": PairState(pair["state"]),
                    "open_conflicts": tuple(pair.get("open_conflicts", ())),
                }
            )
            for pair in document.pop("pairs")
        )
        return DaemonStatus(**document, pairs=pairs)
    except FileNotFoundError:
        raise StatusError(f"no status file at {path}: the daemon is not running yet") from None
    except OSError as error:
        raise StatusError(f"cannot read the status file {path}: {error.strerror}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise StatusError(f"the status file {path} is not pylsyncd's: {error}") from None


def health_problems(status: DaemonStatus, now: float, failing_for: float) -> list[str]:
    """Why the daemon is not healthy; empty when it is."""
    if not _running(status.pid):
        return [f"the daemon (pid {status.pid}) is not running"]
    if now - status.updated_at > STALE_AFTER:
        return [f"the daemon has not updated its status for {now - status.updated_at:.0f} s"]
    return pair_problems(status.pairs, now, failing_for)


def pair_problems(pairs: tuple[PairStatus, ...], now: float, failing_for: float) -> list[str]:
    """Why these pairs are not healthy (a pair stopped, failing or lagging too long, not synced
    yet)."""
    problems = []
    for pair in pairs:
        name = f"{pair.source} -> {pair.destination}"
        if pair.state is PairState.STOPPED:
            problems.append(f"{name}: stopped")
        elif pair.state is PairState.HALTED:
            problems.append(f"{name}: halted: {pair.last_error}")
        elif pair.failing_since is not None and now - pair.failing_since > failing_for:
            problems.append(
                f"{name}: failing for {now - pair.failing_since:.0f} s: {pair.last_error}"
            )
        elif not pair.initial_sync_done:
            problems.append(f"{name}: initial sync not done yet")
        elif pair.oldest_pending_at is not None and now - pair.oldest_pending_at > failing_for:
            # Not failing, yet not keeping up: a slow destination, or a batch that never ends.
            problems.append(
                f"{name}: lagging: its oldest change not applied waits for "
                f"{now - pair.oldest_pending_at:.0f} s"
            )
    return problems


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def describe_status(status: DaemonStatus, now: float) -> str:
    """What `pylsyncd status` prints: one block per pair, then the verdict of `health`."""
    lines = [
        f"pylsyncd pid {status.pid}, up {ago(now - status.started_at)}, "
        f"status written {ago(now - status.updated_at)} ago"
    ]
    for pair in status.pairs:
        lines.append(f"{pair.source} -> {pair.destination}: {pair.state.value}")
        lines.append(f"  initial sync:   {'done' if pair.initial_sync_done else 'not done'}")
        if pair.watch:
            lines.append(f"  watch:          {pair.watch}")
        lines.append(f"  pending events: {pair.pending_events}")
        if pair.oldest_pending_at is not None:
            lines.append(f"  lag:            {ago(now - pair.oldest_pending_at)}")
        if pair.last_batch_at is not None:
            lines.append(
                f"  last batch:     {ago(now - pair.last_batch_at)} ago, "
                f"{pair.last_batch_changes} changes in {pair.last_batch_ms:.0f} ms"
            )
        if pair.failing_since is not None:
            lines.append(f"  failing for:    {ago(now - pair.failing_since)}")
        if pair.last_error:
            lines.append(f"  last error:     {pair.last_error}")
        if pair.conflicts_total or pair.open_conflicts:
            lines.append(
                f"  conflicts:      {pair.conflicts_total} since start, "
                f"{len(pair.open_conflicts)} open"
            )
            lines.extend(f"    {copy}" for copy in pair.open_conflicts)
    return "\n".join(lines)


def ago(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def report(path: str, *, failing_for: float, details: bool) -> tuple[int, str]:
    """Exit status and text of `pylsyncd health` (details=False) or `pylsyncd status`:
    0 when healthy, 1 with the reasons when not."""
    try:
        status = read_status(path)
    except StatusError as error:
        return 1, f"unhealthy: {error}"
    now = time.time()
    problems = health_problems(status, now, failing_for)
    verdict = "unhealthy: " + "; ".join(problems) if problems else "healthy"
    text = f"{describe_status(status, now)}\n{verdict}" if details else verdict
    return (1 if problems else 0), text
