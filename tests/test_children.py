"""Child processes of a transfer are stopped with TERM, a short wait, then KILL, sent to their
whole process group, and reaped; rsync's `cancel` does so from another thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers import wait_until
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome
from pylsyncd.transfer.children import stop_child
from pylsyncd.transfer.rsync import RsyncTransfer

# A child that says `ready` once its signal dispositions are set, then waits to be stopped. With
# "grandchild", it first starts one of its own in its process group, which prints its PID.
CHILD = """
import signal, subprocess, sys, time
if "ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "grandchild" in sys.argv:  # it inherits the ignored TERM
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(grandchild.pid, flush=True)
print("ready", flush=True)
time.sleep(600)
"""


def start(*options: str) -> tuple[subprocess.Popen[bytes], list[str]]:
    """The child, in its own session as a transfer starts it, and the lines it printed."""
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, *options], stdout=subprocess.PIPE, start_new_session=True
    )
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "ready":
        line = process.stdout.readline().decode().strip()
        assert line, "the child exited before it was ready"
        lines.append(line)
    process.stdout.close()
    return process, lines


def gone(pid: int) -> bool:
    """Whether `pid` no longer runs: exited and reaped, or a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as status:
            return status.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_child_that_exits_on_term_gets_term_only_and_is_reaped() -> None:
    process, _ = start()
    stop_child(process, grace=30)
    assert process.returncode == -signal.SIGTERM
    assert gone(process.pid)


def test_a_child_that_ignores_term_gets_kill_after_the_grace_and_is_reaped() -> None:
    process, _ = start("ignore-term")
    started = time.monotonic()
    stop_child(process, grace=0.5)
    assert time.monotonic() - started >= 0.5  # TERM was given its chance first
    assert process.returncode == -signal.SIGKILL
    assert gone(process.pid)


def test_the_whole_process_group_is_stopped() -> None:
    """rsync forks a receiver and a generator: they are stopped with it, not left behind."""
    process, lines = start("ignore-term", "grandchild")
    grandchild = int(lines[0])
    stop_child(process, grace=0.2)
    assert process.returncode == -signal.SIGKILL
    wait_until(lambda: gone(grandchild), timeout=10, message="the grandchild outlived the stop")


def test_cancelling_rsync_stops_its_process_group_and_reaps_it(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "big.bin").write_bytes(os.urandom(4 << 20))
    # 1 KiB/s: rsync is still copying when it is cancelled, however fast the machine.
    transfer = RsyncTransfer(
        str(src), str(dst), ExcludeRules(()), delete=True, extra_args=("--bwlimit=1",)
    )
    outcomes: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcomes.append(transfer.full_sync(delete=True)))
    thread.start()
    try:
        process = wait_until(lambda: transfer._process, timeout=30, message="rsync did not start")
        # Its receiver has started writing: rsync and its forked processes all run.
        wait_until(lambda: os.listdir(dst), timeout=30, message="rsync wrote nothing")
        transfer.cancel()
        assert process.returncode is not None  # stopped and reaped by the cancel itself
        wait_until(lambda: not running_in_group(process.pid), timeout=10, message="rsync ran on")
    finally:
        thread.join(60)
    assert not thread.is_alive()
    assert not outcomes[0].ok


def running_in_group(pgid: int) -> list[int]:
    """The processes of group `pgid` that still run (zombies waiting to be reaped do not)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as status:
                # The command may contain spaces and parentheses: the fields follow the last ')'.
                state, _, group = status.read().rpartition(")")[2].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            found.append(int(entry))
    return found
