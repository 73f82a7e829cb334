"""The helper process, seen from the pair's process: started, given subtrees, read, stopped."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from dataclasses import asdict
from typing import IO, Any

import pylsyncd
from pylsyncd.transfer.children import stop_child
from pylsyncd.transfer.helper.protocol import ChangedEntries, Settings, SubtreeReport

# How many subtrees may wait at the helper, so that it never idles between two of them.
_IN_FLIGHT = 2
# How long the helper has to exit after TERM before it gets KILL. It exits at once (TERM's
# default action): only a process stuck in the kernel needs KILL, if even that helps.
_TERM_GRACE = 1.0


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
            # Ctrl-C in a terminal reaches the whole foreground process group: the pair's
            # process decides when the helper stops (`stop`), not the terminal.
            start_new_session=True,
        )
        if settings.nice:
            # Relative to ours, as nice(1) does: never above the daemon's own priority.
            niceness = min(os.getpriority(os.PRIO_PROCESS, 0) + settings.nice, 19)
            with contextlib.suppress(OSError):  # gone already: the first read says so
                os.setpriority(os.PRIO_PROCESS, self._process.pid, niceness)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin: IO[bytes] = self._process.stdin
        self._stdout: IO[bytes] = self._process.stdout
        try:
            self._send(asdict(settings))
        except OSError:
            self.close()  # it exited at once: reaped here, not left to the garbage collector
            raise
        self.ready = False  # it said so: its imports are done, and it reads subtrees
        self.in_flight = 0
        self._partial = b""  # the start of a line whose end has not arrived yet

    def wants_work(self) -> bool:
        return self.ready and self.in_flight < _IN_FLIGHT

    def give(self, path: str) -> None:
        """A subtree of a full sync."""
        self._send(path)
        self.in_flight += 1

    def give_changed(self, part: ChangedEntries) -> None:
        """Part of a live batch: changed files and symlinks."""
        self._send(asdict(part))
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

    def stop(self) -> None:
        """Stop the helper now: TERM, a short wait, then KILL; reaped. Safe from any thread (it
        leaves the pipes to `close`); what the helper was doing is left to the caller to redo."""
        stop_child(self._process, grace=_TERM_GRACE)

    def close(self) -> None:
        """Stop the helper at once, and close the pipes to it."""
        self.stop()
        self._stdin.close()
        self._stdout.close()

    def _send(self, message: Any) -> None:
        # Names that are not UTF-8 travel as the surrogates os.fsdecode made of them.
        self._stdin.write(json.dumps(message).encode() + b"\n")
        self._stdin.flush()
