"""The mirroring daemons under test: pylsyncd and lsyncd, each in a direct and an rsync mode.

Each run writes its own command line (or lsyncd Lua config) and its log to a work directory, waits
for the daemon's own "initial sync done" line, and measures it through /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from benchmarks import procfs
from pylsyncd.config import ENV_VARS


@dataclass(frozen=True)
class Peer:
    """One daemon configuration: `program` is pylsyncd or lsyncd, `mode` direct or rsync."""

    program: str
    mode: str

    @property
    def key(self) -> str:
        """The name used in the results JSON and the tables, e.g. `lsyncd-rsync`."""
        return f"{self.program}-{self.mode}"


PEERS = (
    Peer("pylsyncd", "direct"),
    Peer("pylsyncd", "rsync"),
    Peer("lsyncd", "direct"),
    Peer("lsyncd", "rsync"),
)


class DaemonFailed(RuntimeError):
    """The daemon exited or never became ready; the message ends with its log."""


class Daemon:
    """One daemon process mirroring `source` into `destination` with DELAY=0."""

    def __init__(
        self,
        peer: Peer,
        source: str,
        destination: str,
        workdir: str,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.peer = peer
        self.extra_args = tuple(extra_args)  # more pylsyncd flags, e.g. --poll-interval 0.05
        self.source = source
        self.destination = destination
        self.log_path = os.path.join(workdir, f"{peer.key}.log")
        self._config_path = os.path.join(workdir, f"{peer.key}.lua")
        self._process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.environment: dict[str, str] = {}  # set for the daemon beside the cleaned one

    @property
    def pid(self) -> int:
        assert self._process is not None, "the daemon was not started"
        return self._process.pid

    def _command(self) -> list[str]:
        if self.peer.program == "pylsyncd":
            return [
                sys.executable,
                "-m",
                "pylsyncd",
                self.source,
                self.destination,
                "--delay",
                "0",
                "--backend",
                self.peer.mode,
                "--shutdown-grace",
                "2",
                *self.extra_args,
            ]
        with open(self._config_path, "w") as config:
            config.write(lsyncd_config(self.peer.mode, self.source, self.destination))
        return ["lsyncd", self._config_path]

    def start(self) -> None:
        """Spawn the daemon in its own session, its output (the log) going to a file."""
        # A stray SOURCES or DELAY in the caller's environment must not change what is measured.
        environment = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
        environment.update(self.environment)
        command = self._command()
        with open(self.log_path, "wb") as log:
            self.started_at = time.perf_counter()
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float) -> float:
        """Seconds from spawn until the daemon says its initial sync is done and it is live."""
        deadline = time.perf_counter() + timeout
        while True:
            now = time.perf_counter()
            if self._is_ready():
                return now - self.started_at
            if self._process is not None and self._process.poll() is not None:
                raise DaemonFailed(f"{self.peer.key} exited early:\n{self.log_tail()}")
            if now > deadline:
                raise DaemonFailed(f"{self.peer.key} not ready after {timeout:.0f} s")
            time.sleep(0.002)

    def _is_ready(self) -> bool:
        with open(self.log_path, "rb") as log:
            text = log.read()
        if self.peer.program == "pylsyncd":
            return b"ready:" in text
        # lsyncd 2.2.3 logs `Startup of "/src/" finished: 0` when its startup rsync returned.
        return b"Startup of" in text and b"finished" in text

    def log_tail(self, lines: int = 20) -> str:
        with open(self.log_path, errors="replace") as log:
            return "".join(log.readlines()[-lines:])

    def cpu_seconds(self) -> float:
        """CPU seconds so far of the daemon and of every child it started (rsync, cp, rm)."""
        return procfs.tree_cpu_seconds(self.pid)

    def precise_cpu_seconds(self) -> float:
        """CPU seconds of the daemon process alone, to the nanosecond (for the idle window)."""
        return procfs.precise_cpu_seconds(self.pid)

    def resident_bytes(self) -> int:
        """VmRSS of the daemon process itself (pylsyncd: the Python process)."""
        return procfs.resident_bytes(self.pid)

    def children_resident_bytes(self) -> int:
        """VmRSS of the children running now: noted apart from the daemon's own."""
        return procfs.children_resident_bytes(self.pid)

    def stop(self) -> None:
        """TERM, wait, then KILL what is left of the daemon's session (stray rsync children)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):  # the whole session is gone already
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self._process = None

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# How a workload starts a peer on (source, replica, workdir): `Daemon` itself, or a subclass
# that reaches the replica another way (over ssh, benchmarks/loopback_ssh.py).
DaemonFactory = Callable[[Peer, str, str, str], Daemon]


def lua_string(text: str) -> str:
    if any(char in text for char in '"\\\n'):
        raise ValueError(f"path not supported in a Lua config: {text!r}")
    return f'"{text}"'


def lsyncd_config(mode: str, source: str, destination: str) -> str:
    """A Lua config for lsyncd in the foreground with DELAY=0, everything else its defaults.

    default.direct acts with cp, rm and mv on a local target (its startup is still one rsync);
    default.rsync runs one rsync per batch. Both run one process at a time (maxProcesses = 1).
    """
    return (
        "settings { nodaemon = true, insist = false }\n"
        f"sync {{ default.{mode}, source = {lua_string(source)}, "
        f"target = {lua_string(destination)}, delay = 0 }}\n"
    )
