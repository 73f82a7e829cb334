"""A mount that raises no inotify events, for real: bindfs (FUSE) over a folder, as Docker
Desktop's and VirtualBox's shared folders behave. Writes made to the underlying folder (the
"host side") are invisible to inotify on the mount; polling must see them. Writes made through
the mount do raise events, as on a share that forwards them: there inotify is enough."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import DaemonPool, bindfs_mount, daemon_args, wait_for_mirror, wait_until
from pylsyncd.status import read_status

LEARNING = "inotify+poll (learning)"
FORWARDS = "inotify+poll (mount forwards events)"
DOES_NOT_FORWARD = "inotify+poll (mount does not forward events)"


def contents(path: Path) -> str | None:
    """The text of a file, or None while it is not there."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def watch_shown(status_file: Path) -> str:
    """The pair's watch as the status file shows it ("" before the daemon wrote one)."""
    try:
        return read_status(str(status_file)).pairs[0].watch
    except (OSError, ValueError, IndexError):
        return ""


@pytest.fixture
def host_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(host side, mount): the mount shows the host side's files through bindfs."""
    host, mount = tmp_path / "host", tmp_path / "mount"
    host.mkdir()
    mount.mkdir()
    with bindfs_mount(host, mount):
        yield host, mount


@pytest.mark.parametrize("backend", ["direct", "rsync"])
def test_auto_rescans_a_mount_without_inotify_and_host_side_writes_arrive(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path], backend: str
) -> None:
    # Until issue 18 `auto` polled alone here ("watching with poll"); now it runs inotify plus
    # rescans, and the first host-side change tells it the mount does not forward events.
    host, mount = host_mount
    dst, status_file = tmp_path / "dst", tmp_path / "status.json"
    # The root is cold at first: its host-side change is found within POLL_PERIOD, well inside
    # the mirror wait's 10 s (at the default 10 s it would race the deadline).
    args = ["--poll-interval", "0.05", "--poll-period", "2", "--status-file", str(status_file)]
    daemon = daemons.start(daemon_args(mount, dst, backend, *args))
    daemon.wait_ready()
    daemon.wait_for_log(r"watching with inotify\+poll: fuse")  # bindfs on fuse3 shows as "fuse"
    wait_until(lambda: watch_shown(status_file) == LEARNING, message=daemon.report)
    (host / "dir").mkdir()
    (host / "dir" / "written on the host").write_text("seen by rescans")
    (host / "gone").write_text("created")
    wait_for_mirror(mount, dst, daemon=daemon)
    daemon.wait_for_log(r"the mount does not forward events")
    (host / "gone").unlink()
    (host / "dir").rename(host / "renamed")
    wait_for_mirror(mount, dst, daemon=daemon)
    wait_until(lambda: watch_shown(status_file) == DOES_NOT_FORWARD, message=daemon.report)
    daemon.stop()
    assert daemon.log_text().count("forward events") == 1  # concluded once, and it stays so


@pytest.mark.parametrize("mode", ["auto", "hybrid"])
def test_writes_through_the_mount_show_it_forwards_events_and_arrive_once(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path], mode: str
) -> None:
    _, mount = host_mount
    dst, status_file = tmp_path / "dst", tmp_path / "status.json"
    # Each file is written in an excluded folder and renamed into place: one inotify event and
    # one copy per file, so a second copy could only come from a rescan reporting it again.
    (mount / "stage").mkdir()
    args = ["--watch", mode, "--poll-interval", "0.05", "--exclude", "stage/"]
    daemon = daemons.start(
        daemon_args(mount, dst, "direct", *args, "--status-file", str(status_file))
    )
    daemon.wait_ready()
    written: list[str] = []

    def write_through_the_mount() -> bool:
        name = f"file{len(written)}"
        (mount / "stage" / name).write_text(f"content of {name}")
        (mount / "stage" / name).rename(mount / name)
        written.append(name)
        wait_until(lambda: (dst / name).exists(), message=daemon.report)
        return "the mount forwards events" in daemon.log_text()

    wait_until(write_through_the_mount, timeout=30, message=daemon.report)
    wait_until(lambda: watch_shown(status_file) == FORWARDS, message=daemon.report)
    daemon.stop()
    log = daemon.log_text()
    assert "does not forward" not in log
    dropped = re.findall(r"rescan found \d+ changes, (\d+) of them already reported", log)
    assert sum(map(int, dropped)) >= 3  # the rescans did see the changes again
    for name in written:
        assert log.count(f"copied {name!r}") == 1, (name, daemon.report())
    for name in written:
        assert (dst / name).read_text() == f"content of {name}"


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


def test_a_host_side_write_after_one_through_the_mount_is_not_dropped(
    tmp_path: Path, daemons: DaemonPool, host_mount: tuple[Path, Path]
) -> None:
    # inotify reported the file; the rescan that then finds it changed again must pass it on.
    host, mount = host_mount
    dst = tmp_path / "dst"
    daemon = daemons.start(daemon_args(mount, dst, "direct", "--poll-interval", "0.05"))
    daemon.wait_ready()
    for round_ in range(3):
        for side, text in ((mount, f"through the mount {round_}"), (host, f"host, {round_}")):
            (side / "f").write_text(text)
            wait_until(lambda text=text: contents(dst / "f") == text, message=daemon.report)
    daemon.stop()
