"""`pylsyncd status --watch`: driven in a pseudo-terminal against a real daemon, and piped."""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import DaemonPool, clean_environment, daemon_args, wait_until
from pylsyncd.status import DaemonStatus, PairState, PairStatus
from pylsyncd.status_view import Throughput, render

CLEAR = "\x1b[H\x1b[2J"


# How long the view may take to end after Ctrl-C: far more than it needs (a few ms), even on a
# loaded machine.
EXIT_WITHIN = 10.0


class Terminal:
    """`pylsyncd status --watch` on a pseudo-terminal 200 columns wide; `screen` is the last
    complete screen it drew."""

    def __init__(self, status_file: Path) -> None:
        self.master: int | None
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pylsyncd", "status", "--watch", "--status-file",
             str(status_file)],
            stdin=slave, stdout=slave, stderr=slave, env=clean_environment(),
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.output = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._ended = False  # the view's side of the terminal is closed: it exited

    def _read(self, timeout: float) -> bool:
        """Add what the view wrote to `output`, waiting up to `timeout` for it; whether there
        was any."""
        if self._ended or self.master is None:
            return False
        if not select.select([self.master], [], [], timeout)[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: no process holds the other end any more
            data = b""
        if not data:
            self._ended = True
            return False
        self.output += self._decoder.decode(data)
        return True

    def screen(self) -> str:
        """The last screen drawn completely (the one before the latest clear)."""
        while self._read(0):
            pass
        screens = self.output.split(CLEAR)
        return screens[-2] if len(screens) > 2 else ""

    def close(self) -> int:
        """Ctrl-C, as a person ends it; its exit status. The terminal is read all along, as a
        real one is: a view that ends only once it has written its last screen is not stuck on
        a full pseudo-terminal that nobody reads."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + EXIT_WITHIN
        while True:
            status = self.process.poll()
            if status is not None:
                self.release()
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"the view did not end within {EXIT_WITHIN:.0f} s of Ctrl-C "
                    f"({self._sigint()})\nlast screen:\n{self.screen()}"
                )
            if self._ended:  # nothing left to read: only the exit to wait for
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=left)
            else:
                self._read(min(left, 0.05))

    def _sigint(self) -> str:
        """What the view does with SIGINT, from the kernel's view of it, for a failure."""
        try:
            text = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError as error:
            return f"its /proc status: {error}"
        masks = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        bit = 1 << (signal.SIGINT - 1)
        ways = [way for way in ("SigBlk", "SigIgn", "SigCgt") if int(masks.get(way, "0"), 16) & bit]
        names = {"SigBlk": "blocked", "SigIgn": "ignored", "SigCgt": "caught"}
        return "SIGINT " + (", ".join(names[way] for way in ways) or "at its default: it kills")

    def release(self) -> None:
        """Kill the view if it still runs, reap it and close the terminal; does it once, however
        often it is called."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.master is not None:
            os.close(self.master)
            self.master = None


@pytest.fixture
def terminal_for() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.release()


def stop(viewer: subprocess.Popen[str]) -> int:
    """Ctrl-C a piped view; its exit status. Killed (and a failure) if it does not end."""
    viewer.send_signal(signal.SIGINT)
    try:
        return viewer.wait(timeout=EXIT_WITHIN)
    except subprocess.TimeoutExpired:
        viewer.kill()
        viewer.wait(timeout=10)
        raise AssertionError(f"the view did not end within {EXIT_WITHIN:.0f} s of Ctrl-C") from None
    finally:
        assert viewer.stdout is not None
        viewer.stdout.close()


def test_the_live_view_shows_the_pair_and_its_counts_change_after_an_edit(
    tmp_path: Path, daemons: DaemonPool, terminal_for: list[Terminal]
) -> None:
    src, dst, status_file = tmp_path / "src", tmp_path / "dst", tmp_path / "status.json"
    src.mkdir()
    daemon = daemons.start(daemon_args(src, dst, "direct", "--status-file", str(status_file)))
    daemon.wait_ready()
    terminal = Terminal(status_file)
    terminal_for.append(terminal)
    name = f"{src} -> {dst}  live"
    wait_until(lambda: name in terminal.screen(), message=terminal.screen)
    assert "healthy" in terminal.screen()
    assert "0 changes, 0 B since start" in terminal.screen()

    (tmp_path / "file").write_text("twelve bytes")  # renamed in: one event, one batch
    (tmp_path / "file").rename(src / "file")
    wait_until(lambda: "1 changes, 12 B since start" in terminal.screen(), message=terminal.screen)
    assert "last batch" in terminal.screen()
    assert terminal.close() == 0


def test_piped_it_prints_one_plain_line_per_pair_and_refresh(
    tmp_path: Path, daemons: DaemonPool
) -> None:
    src, dst, status_file = tmp_path / "src", tmp_path / "dst", tmp_path / "status.json"
    src.mkdir()
    daemon = daemons.start(daemon_args(src, dst, "direct", "--status-file", str(status_file)))
    daemon.wait_ready()
    viewer = subprocess.Popen(
        [sys.executable, "-m", "pylsyncd", "status", "--watch", "--status-file", str(status_file)],
        stdout=subprocess.PIPE, env=clean_environment(), text=True,
    )  # fmt: skip
    try:
        assert viewer.stdout is not None
        lines = [viewer.stdout.readline() for _ in range(2)]
    finally:
        status = stop(viewer)
    assert status == 0
    for line in lines:
        assert "\x1b" not in line
        assert f" {src} -> {dst}: live, pending 0, lag 0.0 s" in line, line


def test_ctrl_c_ends_it_even_when_it_was_started_with_sigint_ignored(tmp_path: Path) -> None:
    """As a shell starts an `&` job without job control (a script's, `sh -c '... &'`)."""
    ignoring = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"  # SIG_IGN survives exec
    )
    viewer = subprocess.Popen(
        [sys.executable, "-c", ignoring, "-m", "pylsyncd", "status", "--watch", "--status-file",
         str(tmp_path / "status.json")],
        stdout=subprocess.PIPE, env=clean_environment(), text=True,
    )  # fmt: skip
    try:
        assert viewer.stdout is not None
        # Its first line: the view runs, past setting up its handling of SIGINT.
        assert select.select([viewer.stdout], [], [], 10)[0], "the view printed nothing in 10 s"
        line = viewer.stdout.readline()
    finally:
        status = stop(viewer)
    assert "unhealthy: no status file" in line, line
    assert status == 0


def test_an_initial_sync_shows_a_bar_with_rate_and_time_left() -> None:
    now = time.time()
    pair = PairStatus(
        "/src", "/dst", PairState.INITIAL_SYNC, False,
        sync_started_at=now - 10, sync_entries=2500, sync_total=10000,
    )  # fmt: skip
    status = DaemonStatus(os.getpid(), now - 10, now, (pair,))
    lines = render(status, "", now, 60, Throughput(), tty=True)
    assert lines[1] == "/src -> /dst  initial-sync"
    assert lines[2] == (
        f"  initial sync [{'#' * 8}{'.' * 22}]  25% 2500 of 10000 entries, 250/s, about 30 s left"
    )
    counting = PairStatus(
        "/src", "/dst", PairState.INITIAL_SYNC, False, sync_started_at=now - 1, sync_entries=400
    )
    lines = render(DaemonStatus(os.getpid(), now, now, (counting,)), "", now, 60, Throughput(),
                   tty=False)  # fmt: skip
    assert lines[0] == "/src -> /dst: initial sync: 400 entries, 400/s (counting the rest)"
