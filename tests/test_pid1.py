"""As PID 1 (a container's init), the kernel gives SIGTERM no default action: only a handler
makes `docker stop` work. The daemon runs as PID 1 of a new PID namespace here, for real."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from helpers import clean_environment, wait_for_mirror, wait_until


def test_sigterm_to_pid_1_applies_pending_changes_and_exits_0(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to run the daemon as PID 1"
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    log = tmp_path / "daemon.log"
    command = [
        unshare, "--pid", "--fork", "--mount-proc", "--",
        sys.executable, "-m", "pylsyncd", str(src), str(dst), "--delay", "30",
    ]  # fmt: skip
    with log.open("wb") as stderr:
        outer = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stderr=stderr, env=clean_environment()
        )
    daemon_pid = None
    try:
        wait_until(lambda: "ready:" in log.read_text(), timeout=30, message=log.read_text)
        # unshare forks the daemon; it is PID 1 inside and unshare's only child outside.
        children = Path(f"/proc/{outer.pid}/task/{outer.pid}/children").read_text().split()
        (daemon_pid,) = map(int, children)
        status = Path(f"/proc/{daemon_pid}/status").read_text().splitlines()
        namespaced_pids = next(line for line in status if line.startswith("NSpid:")).split()
        assert namespaced_pids[-1] == "1"  # its PID in the innermost namespace
        (src / "pending").write_text("applied on the way out")  # DELAY=30: still pending
        os.kill(daemon_pid, signal.SIGTERM)
        assert outer.wait(timeout=20) == 0, log.read_text()
        wait_for_mirror(src, dst, timeout=1)
    finally:
        if outer.poll() is None:
            if daemon_pid is not None:  # killing unshare would leave its child running
                os.kill(daemon_pid, signal.SIGKILL)
            outer.kill()
            outer.wait()
