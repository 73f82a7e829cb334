"""A second process for a full sync of the direct backend.

Copying a tree is mostly system calls, each wrapped in a little Python, and Python runs one
thread at a time: two threads were slower than one. Two processes are not. The pair's process
hands whole subtrees to a helper process (`python -m pylsyncd.transfer.helper`) while it syncs
other subtrees itself; the subtrees are disjoint, so the two never touch the same directory's
entries. Each side uses the same code (`_Run.sync_subtree`) with the same safety: nothing here is
a second implementation.

The protocol is JSON lines: the settings, then one subtree path per line on the helper's stdin;
one report per subtree on its stdout. Its log lines go to the daemon's stderr.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import pylsyncd
from pylsyncd import LOG_FORMAT
from pylsyncd.coalesce import Change, ChangeKind

log = logging.getLogger(__name__)

# How many subtrees may wait at the helper, so that it never idles between two of them.
_IN_FLIGHT = 2


@dataclass
class Settings:
    """What the helper needs to build the same transfer as the pair's."""

    source: str
    destination: str
    excludes: list[str]
    delete: bool
    uid: int | None
    gid: int | None
    preserve: bool
    reported_unreadable: list[str]
    log_level: int


@dataclass
class SubtreeReport:
    """What syncing one subtree did, sent back to the pair's process."""

    path: str
    entries: int = 0
    copied: int = 0
    bytes: int = 0
    dirs: int = 0
    links: int = 0
    deleted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, ChangeKind value)
    error: str | None = None
    unreadable: list[str] = field(default_factory=list)

    def failed_changes(self) -> list[Change]:
        return [Change(path, ChangeKind(kind)) for path, kind in self.failed]


def can_help() -> bool:
    """Whether a second process can run beside this one (this process may use two cores)."""
    return len(os.sched_getaffinity(0)) > 1


class Helper:
    """The helper process, seen from the pair's process."""

    def __init__(self, settings: Settings) -> None:
        # The same package as ours, wherever it is imported from (installed, or a source tree).
        package_parent = os.path.dirname(os.path.dirname(pylsyncd.__file__))
        path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "pylsyncd.transfer.helper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin: IO[bytes] = self._process.stdin
        self._stdout: IO[bytes] = self._process.stdout
        self._send(asdict(settings))
        self.ready = False  # it said so: its imports are done, and it reads subtrees
        self.in_flight = 0
        self._partial = b""  # the start of a line whose end has not arrived yet

    def wants_work(self) -> bool:
        return self.ready and self.in_flight < _IN_FLIGHT

    def give(self, path: str) -> None:
        self._send(path)
        self.in_flight += 1

    def reports(self, timeout: float | None) -> list[SubtreeReport]:
        """Reports that arrived, waiting up to `timeout` for one (None: until one comes).

        Raises ChildProcessError when the helper died: its subtrees must be synced again.
        """
        reports: list[SubtreeReport] = []
        # Read with os.read, not a buffered readline: lines a buffer took in ahead would be
        # invisible to select, and wait there until the next report came.
        fd = self._stdout.fileno()
        while select.select([fd], [], [], timeout)[0]:
            data = os.read(fd, 1 << 16)
            if not data:
                raise ChildProcessError(f"the helper process exited ({self._process.wait()})")
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                message = json.loads(line)
                if message == "ready":
                    self.ready = True
                else:
                    self.in_flight -= 1
                    report = SubtreeReport(**message)
                    report.failed = [(path, kind) for path, kind in report.failed]
                    reports.append(report)
            timeout = 0  # then only what is there already
        return reports

    def close(self) -> None:
        """Stop the helper at once: what it was doing is left to the caller to redo."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._stdin.close()
        self._stdout.close()

    def _send(self, message: Any) -> None:
        # Names that are not UTF-8 travel as the surrogates os.fsdecode made of them.
        self._stdin.write(json.dumps(message).encode() + b"\n")
        self._stdin.flush()


def _serve() -> None:
    """The helper's side: sync each subtree read from stdin, report each on stdout."""
    # Imported here: the pair's process imports this module without needing the transfer.
    from pylsyncd.excludes import ExcludeRules
    from pylsyncd.transfer import Ownership
    from pylsyncd.transfer.direct import DirectTransfer

    settings = Settings(**json.loads(sys.stdin.readline()))
    logging.basicConfig(stream=sys.stderr, format=LOG_FORMAT)
    logging.getLogger("pylsyncd").setLevel(settings.log_level)
    transfer = DirectTransfer(
        settings.source,
        settings.destination,
        ExcludeRules(settings.excludes),
        delete=settings.delete,
        ownership=Ownership(settings.uid, settings.gid, settings.preserve),
    )
    transfer.reported_unreadable.update(settings.reported_unreadable)

    def reply(message: Any) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    reply("ready")
    for line in sys.stdin:
        path = json.loads(line)
        reported = set(transfer.reported_unreadable)
        outcome, entries = transfer.sync_subtree(path, delete=settings.delete)
        report = SubtreeReport(
            path,
            entries,
            outcome.copied,
            outcome.bytes,
            outcome.dirs,
            outcome.links,
            outcome.deleted,
            [(change.path, change.kind.value) for change in outcome.failed.changes],
            outcome.error,
            sorted(transfer.reported_unreadable - reported),
        )
        reply(asdict(report))


if __name__ == "__main__":
    # Ctrl-C in a terminal reaches the whole process group: the pair's process decides when the
    # helper stops (it closes our stdin, or kills us when a shutdown cancels the sync).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _serve()
    except BrokenPipeError:
        sys.exit(1)  # the pair's process went away: nothing to report to
