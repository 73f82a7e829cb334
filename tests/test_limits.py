"""Kernel limits hit for real: a tiny inotify queue overflows, a tiny watch budget runs out."""

from __future__ import annotations

import glob
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Daemon, DaemonPool, daemon_args, wait_for_mirror

INOTIFY = Path("/proc/sys/fs/inotify")


class InotifyLimits:
    """Sets /proc/sys/fs/inotify limits for a test and puts the old values back."""

    def __init__(self) -> None:
        self.saved: dict[str, str] = {}

    def set(self, name: str, value: int) -> None:
        self.saved.setdefault(name, (INOTIFY / name).read_text())
        (INOTIFY / name).write_text(f"{value}\n")

    def restore(self) -> None:
        for name, text in self.saved.items():
            (INOTIFY / name).write_text(text)
        self.saved.clear()


@pytest.fixture
def limits() -> Iterator[InotifyLimits]:
    limits = InotifyLimits()
    yield limits
    limits.restore()


def watches_in_use() -> int:
    """inotify watches held by every process right now (max_user_watches counts them all)."""
    count = 0
    for fdinfo in glob.glob("/proc/[0-9]*/fdinfo/*"):
        try:
            with open(fdinfo) as info:
                count += sum(1 for line in info if line.startswith("inotify wd:"))
        except OSError:
            continue
    return count


@pytest.mark.parametrize("backend", ["direct", "rsync"])
def test_queue_overflow_leads_to_a_full_resync_that_converges(
    tmp_path: Path, daemons: DaemonPool, limits: InotifyLimits, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for name in ("doomed", "renamed", "rewritten"):
        (src / name).mkdir(parents=True)
        (src / name / "f").write_bytes(b"before the overflow")
    # The queue size is fixed when the daemon creates its inotify instance: lower it just for that.
    limits.set("max_queued_events", 16)
    daemon = daemons.start(daemon_args(src, dst, backend))
    daemon.wait_ready()
    limits.restore()
    # Stopped, the daemon reads nothing: the 16-event queue overflows for certain.
    daemon.send(signal.SIGSTOP)
    try:
        # Lost events of every kind: the resync must delete, rename and rewrite, not only copy.
        shutil.rmtree(src / "doomed")
        os.rename(src / "renamed", src / "renamed-to")
        (src / "rewritten" / "f").write_bytes(b"after the overflow")
        for d in range(20):
            (src / f"d{d}").mkdir()
            for f in range(50):
                (src / f"d{d}" / f"f{f}").write_bytes(b"x" * f)
    finally:
        daemon.send(signal.SIGCONT)
    daemon.wait_for_log("dropped events")
    wait_for_mirror(src, dst, timeout=30, daemon=daemon)
    daemon.stop()


def test_out_of_watches_names_the_sysctl_and_falls_back_to_polling(
    tmp_path: Path, daemons: DaemonPool, limits: InotifyLimits
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for d in range(40):
        (src / f"d{d}").mkdir(parents=True)
    limits.set("max_user_watches", watches_in_use() + 10)
    daemon: Daemon = daemons.start(
        daemon_args(src, dst, "direct", "--watch", "inotify", "--poll-interval", "0.05")
    )
    daemon.wait_ready()
    daemon.wait_for_log(r"fs\.inotify\.max_user_watches=\d+.*polling instead")
    limits.restore()
    (src / "d39" / "f").write_text("found by a rescan")
    wait_for_mirror(src, dst, daemon=daemon)
    daemon.stop()
    assert "Traceback" not in daemon.log_text()
