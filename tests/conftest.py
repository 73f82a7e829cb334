"""Fixtures shared by every test."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import DaemonPool
from pylsyncd.config import ENV_VARS
from sshd import Sshd

# How long a test's threads and children may take to end after it returned: a reader thread
# draining a killed daemon's stderr sees its end of file a moment later.
_LEAK_GRACE = 5.0


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every variable the daemon reads: no test sees the developer's SOURCES or DELAY."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _children() -> set[int]:
    """This process's child processes, zombies (started but not reaped) included."""
    pid = os.getpid()
    found: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            found.update(map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split()))
        except FileNotFoundError:
            continue  # a thread that ended while we looked
    return found


def _describe(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        command = "?"
    return f"{pid} ({command.strip() or 'zombie: never reaped'})"


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves a thread running or a child process unreaped (watchdog does the
    same): a leaked watcher or rsync would otherwise go on touching files in later tests.

    Autouse and requested first, so it is torn down after the test's own fixtures."""
    threads_before = set(threading.enumerate())
    children_before = _children()
    yield
    deadline = time.monotonic() + _LEAK_GRACE
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        children = sorted(_children() - children_before)
        if not (threads or children) or time.monotonic() > deadline:
            break
        time.sleep(0.02)  # a wait with a deadline, for the test's last threads to end
    leaks = [f"thread {thread.name!r}" for thread in threads]
    leaks += [f"child process {_describe(pid)}" for pid in children]
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)  # so that the leak does not spill into later tests
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    if leaks:
        pytest.fail("left behind: " + ", ".join(leaks), pytrace=False)


@pytest.fixture
def daemons() -> Iterator[DaemonPool]:
    """Daemons started by a test; any still running at its end are killed."""
    pool = DaemonPool()
    yield pool
    pool.close()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """An empty source and destination, `src` and `dst` in the test's directory."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    return src, dst


@pytest.fixture
def sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sshd]:
    """A running sshd on 127.0.0.1 whose keys live in the test's directory (`tests/sshd.py`).

    The daemons of the test make their control sockets' directory in a runtime directory of the
    test's (a killed daemon leaves its own behind), short: a socket's path fits in 108 bytes."""
    runtime = tempfile.mkdtemp(prefix="sshd-run-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    server = Sshd(tmp_path / "sshd")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(runtime, ignore_errors=True)
