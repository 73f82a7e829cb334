"""A mount that raises no inotify events, for real: bindfs (FUSE) over a folder, as Docker
Desktop's and VirtualBox's shared folders behave. Writes made to the underlying folder (the
"host side") are invisible to inotify on the mount; polling must see them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import DaemonPool, daemon_args, wait_for_mirror, wait_until


@pytest.fixture
def host_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(host side, mount): the mount shows the host side's files through bindfs."""
    bindfs = shutil.which("bindfs")
    assert bindfs, "bindfs is needed (apt-get install bindfs; ./dev test installs it as root)"
    host, mount = tmp_path / "host", tmp_path / "mount"
    host.mkdir()
    mount.mkdir()
    subprocess.run([bindfs, str(host), str(mount)], check=True)
    try:
        yield host, mount
    finally:
        subprocess.run(["fusermount", "-u", str(mount)], check=False)
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("backend", ["direct", "rsync"])
def test_auto_polls_a_mount_without_inotify_and_host_side_writes_arrive(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path], backend: str
) -> None:
    host, mount = host_mount
    dst = tmp_path / "dst"
    daemon = daemons.start(daemon_args(mount, dst, backend, "--poll-interval", "0.05"))
    daemon.wait_ready()
    daemon.wait_for_log(r"watching with poll: fuse")  # bindfs on fuse3 shows as "fuse"
    (host / "dir").mkdir()
    (host / "dir" / "written on the host").write_text("seen by rescans")
    (host / "gone").write_text("created")
    wait_for_mirror(mount, dst, daemon=daemon)
    (host / "gone").unlink()
    (host / "dir").rename(host / "renamed")
    wait_for_mirror(mount, dst, daemon=daemon)
    daemon.stop()


def test_inotify_alone_misses_host_side_writes(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path]
) -> None:
    # The control experiment: it shows the mount really raises no events for host-side writes.
    host, mount = host_mount
    dst = tmp_path / "dst"
    daemon = daemons.start(daemon_args(mount, dst, "direct", "--watch", "inotify"))
    daemon.wait_ready()
    (host / "written on the host").write_text("never reported")
    (mount / "sentinel").write_text("written through the mount: reported")
    wait_until(lambda: (dst / "sentinel").exists(), message=daemon.report)
    assert not (dst / "written on the host").exists()
    daemon.stop()


def test_hybrid_gets_events_and_rescans(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path]
) -> None:
    host, mount = host_mount
    dst = tmp_path / "dst"
    args = daemon_args(mount, dst, "direct", "--watch", "hybrid", "--poll-interval", "0.05")
    daemon = daemons.start(args)
    daemon.wait_ready()
    (mount / "through the mount").write_text("an inotify event")
    (host / "on the host").write_text("found by a rescan")
    wait_for_mirror(mount, dst, daemon=daemon)
    daemon.stop()
