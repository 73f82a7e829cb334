"""WATCH=poll end to end on a mount that raises no inotify events for changes made underneath it:
bindfs over a folder, written on the host side. The hot set, the cold pass, renames, deletions
and a storm all arrive, within the times the settings promise."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Daemon, DaemonPool, bindfs_mount, daemon_args, wait_for_mirror, wait_until
from pylsyncd.events import Event, EventKind
from pylsyncd.watch.poll import PollWatcher

INTERVAL = "0.05"


@pytest.fixture
def host_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(host side, mount): the mount shows the host side's files through bindfs."""
    host, mount = tmp_path / "host", tmp_path / "mount"
    host.mkdir()
    mount.mkdir()
    for directory in ("work", "other/deep", "one/dir", "two"):
        (host / directory).mkdir(parents=True)
        (host / directory / "file").write_text(f"in {directory}")
    with bindfs_mount(host, mount):
        yield host, mount


def polling(daemons: DaemonPool, mount: Path, dst: Path, period: float) -> Daemon:
    args = ["--watch", "poll", "--poll-interval", INTERVAL, "--poll-period", str(period)]
    daemon = daemons.start(daemon_args(mount, dst, "direct", *args))
    daemon.wait_ready()
    return daemon


def arrives(path: Path, content: str, timeout: float, daemon: Daemon) -> float:
    """Seconds until `path` holds `content`; fails after `timeout`."""
    started = time.monotonic()

    def there() -> bool:
        try:
            return path.read_text() == content
        except OSError:
            return False

    wait_until(there, timeout=timeout, message=daemon.report)
    return time.monotonic() - started


def test_a_change_in_a_hot_directory_arrives_long_before_the_cold_pass(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path]
) -> None:
    host, mount = host_mount
    dst = tmp_path / "dst"
    period = 8.0
    daemon = polling(daemons, mount, dst, period)
    (host / "work" / "file").write_text("first edit")  # found by the cold pass: "work" turns hot
    arrives(dst / "work" / "file", "first edit", period + 10, daemon)
    for edit in range(3):  # the cold pass is not back for about `period`: only the hot set
        (host / "work" / "file").write_text(f"edit {edit}")
        assert arrives(dst / "work" / "file", f"edit {edit}", period + 10, daemon) < period / 3
    daemon.stop()


def test_a_change_in_a_cold_directory_arrives_within_the_period(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path]
) -> None:
    host, mount = host_mount
    dst = tmp_path / "dst"
    daemon = polling(daemons, mount, dst, 2.0)
    (host / "other" / "deep" / "file").write_text("edited on the host")
    (host / "other" / "deep" / "new").write_text("created on the host")
    wait_for_mirror(mount, dst, timeout=15, daemon=daemon)
    daemon.stop()


def test_a_rename_on_the_host_is_a_rename(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path]
) -> None:
    host, mount = host_mount
    dst = tmp_path / "dst"
    daemon = polling(daemons, mount, dst, 2.0)
    copied = (dst / "one" / "dir" / "file").stat().st_ino
    (host / "one" / "dir").rename(host / "two" / "dir")  # between two directories
    (host / "work" / "file").rename(host / "other" / "file")
    wait_for_mirror(mount, dst, timeout=15, daemon=daemon)
    # Renamed in the destination too, not copied again: the same file there.
    assert (dst / "two" / "dir" / "file").stat().st_ino == copied
    daemon.stop()


def test_a_deletion_on_the_host_arrives(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path]
) -> None:
    host, mount = host_mount
    dst = tmp_path / "dst"
    daemon = polling(daemons, mount, dst, 2.0)
    (host / "work" / "file").unlink()
    shutil.rmtree(host / "other")
    wait_until(lambda: not (dst / "other").exists(), timeout=15, message=daemon.report)
    wait_for_mirror(mount, dst, timeout=15, daemon=daemon)
    daemon.stop()


def test_a_change_made_during_a_storm_arrives(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path]
) -> None:
    host, mount = host_mount
    dst = tmp_path / "dst"
    daemon = polling(daemons, mount, dst, 2.0)
    storm = host / "storm"
    storm.mkdir()
    for i in range(2000):
        (storm / f"f{i}").write_text(f"storm {i}")
        if i == 1000:
            (host / "other" / "deep" / "file").write_text("edited while the storm went on")
            os.rename(host / "one" / "dir", host / "storm" / "dir")
    wait_for_mirror(mount, dst, timeout=30, daemon=daemon)
    daemon.stop()


def test_a_hot_rescan_sees_host_changes_the_attribute_cache_still_hides(
    tmp_path: Path, host_mount: tuple[Path, Path]
) -> None:
    # No daemon, a clock moved by hand: the tick runs within the mount's attribute cache time
    # (1 s) of the stat that filled it, so only a stat that asks past the cache can see it.
    host, mount = host_mount
    now = [1000.0]
    watcher = PollWatcher(str(mount), interval=0.2, period=100, hot_for=60, clock=lambda: now[0])
    watcher.start()
    try:
        watcher.schedule.touch(["work"])
        now[0] += 0.2
        assert watcher.read(0) == []
        file = mount / "work" / "file"
        cached = file.stat().st_size
        (host / "work" / "file").write_text("rewritten on the host, longer")
        assert file.stat().st_size == cached  # the cache hides it (else this test proves nothing)
        now[0] += 0.2
        assert Event(EventKind.MODIFIED, "work/file") in watcher.read(0)
        # A new name changes the directory's mtime, which the cache hides just the same.
        (host / "work" / "new").write_text("new on the host")
        now[0] += 0.2
        assert Event(EventKind.CREATED, "work/new") in watcher.read(0)
    finally:
        watcher.close()
