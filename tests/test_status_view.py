"""`pylsyncd status --watch`: driven in a pseudo-terminal against a real daemon, and piped."""

from __future__ import annotations

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


class Terminal:
    """`pylsyncd status --watch` on a pseudo-terminal 200 columns wide; `screen` is the last
    complete screen it drew."""

    def __init__(self, status_file: Path) -> None:
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

    def screen(self) -> str:
        """The last screen drawn completely (the one before the latest clear)."""
        while select.select([self.master], [], [], 0)[0]:
            try:
                self.output += os.read(self.master, 65536).decode(errors="replace")
            except OSError:  # the other end closed
                break
        screens = self.output.split(CLEAR)
        return screens[-2] if len(screens) > 2 else ""

    def close(self) -> int:
        """Ctrl-C, as a person ends it; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=10)
        finally:
            os.close(self.master)


@pytest.fixture
def terminal_for(tmp_path: Path) -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        if terminal.process.poll() is None:
            terminal.process.kill()
            terminal.process.wait(timeout=10)
            os.close(terminal.master)


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
        viewer.send_signal(signal.SIGINT)
        assert viewer.wait(timeout=10) == 0
        assert viewer.stdout is not None
        viewer.stdout.close()
    for line in lines:
        assert "\x1b" not in line
        assert f" {src} -> {dst}: live, pending 0, lag 0.0 s" in line, line


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
