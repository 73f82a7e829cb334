"""The remote agent: small batches in one round trip over the master, rsync for the rest.

Every test runs a real daemon against a real sshd on 127.0.0.1 (tests/sshd.py), whose remote
Python is this machine's python3; the remote host is this one, so the destination is read here.
"""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

from helpers import Daemon, DaemonPool, wait_for_mirror, wait_until, write_file
from sshd import Sshd, processes_below
from test_remote import _remote_args

_AGENT_DID_ALL = r"agent: (\d+) operations \(0 left to rsync\)"
_RSYNC_RAN = "running ['rsync'"


def _live(daemons: DaemonPool, src: Path, dst: Path, sshd: Sshd, *extra: str) -> Daemon:
    daemon = daemons.start(_remote_args(src, dst, sshd, *extra))
    daemon.wait_ready()
    wait_for_mirror(src, dst, daemon=daemon)
    return daemon


def _rsync_ran_since(daemon: Daemon, mark: int) -> bool:
    return any(_RSYNC_RAN in line for line in daemon.lines[mark:])


def test_small_changes_go_through_the_agent_alone(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    write_file(src / "kept.txt", "before")
    write_file(src / "sub" / "gone.txt", "x")
    write_file(src / "sub" / "link-later", "a file, then a symlink")
    daemon = _live(daemons, src, dst, sshd)
    mark = daemon.mark()
    write_file(src / "kept.txt", "after")  # an edit
    write_file(src / "sub" / "deep" / "new.txt", "new")  # in a new directory
    (src / "sub" / "gone.txt").unlink()  # a deletion
    (src / "sub" / "link-later").unlink()
    os.symlink("../kept.txt", src / "sub" / "link-later")  # a file replaced by a symlink
    os.chmod(src / "kept.txt", 0o640)
    os.utime(src / "sub", ns=(0, 1_000_000_123))
    for name in (b"-leading", b"new\nline", b"\xff\xfe-bytes"):
        write_file(os.path.join(os.fsencode(src), name), "odd name")
    wait_for_mirror(src, dst, daemon=daemon)
    assert daemon.wait_for_log(_AGENT_DID_ALL, since=mark)
    assert not _rsync_ran_since(daemon, mark)
    assert stat.S_IMODE((dst / "kept.txt").stat().st_mode) == 0o640


def test_what_the_agent_leaves_goes_through_rsync(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    write_file(src / "was-a-file", "x")
    write_file(src / "tree" / "a", "a")
    daemon = _live(daemons, src, dst, sshd)
    mark = daemon.mark()
    (src / "was-a-file").unlink()
    write_file(src / "was-a-file" / "inside", "a directory now")  # a file in the destination
    (src / "tree" / "a").unlink()
    (src / "tree").rmdir()  # a directory's deletion is rsync's (excludes may protect files)
    with open(src / "big.bin", "wb") as big:  # bigger than the agent takes
        big.write(os.urandom(3 * 1024 * 1024))
    wait_for_mirror(src, dst, daemon=daemon)
    assert _rsync_ran_since(daemon, mark)


def test_a_symlink_in_the_destination_is_replaced_never_followed(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    outside = src.parent / "outside"
    outside.mkdir()
    write_file(src / "sub" / "file", "one")
    write_file(src / "top", "one")
    daemon = _live(daemons, src, dst, sshd)
    # Someone on the remote swaps a directory and a file for symlinks to a directory outside.
    (dst / "sub" / "file").unlink()
    (dst / "sub").rmdir()
    os.symlink(outside, dst / "sub")
    (dst / "top").unlink()
    os.symlink(outside / "top", dst / "top")
    mark = daemon.mark()
    write_file(src / "sub" / "file", "two")
    write_file(src / "top", "two")
    wait_for_mirror(src, dst, daemon=daemon)
    assert list(outside.iterdir()) == []
    assert not (dst / "sub").is_symlink() and not (dst / "top").is_symlink()
    assert daemon.wait_for_log(r"agent: \d+ operations", since=mark)


def test_without_the_remote_python_every_batch_goes_through_rsync(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    write_file(src / "a", "a")
    daemon = _live(daemons, src, dst, sshd, "--remote-python", "/no/such/python3")
    said = daemon.wait_for_log(r"no remote agent \((.*)\): every batch goes through rsync")
    assert "/no/such/python3" in said.group(1)  # the remote shell's own words
    mark = daemon.mark()
    write_file(src / "a", "edited")
    wait_for_mirror(src, dst, daemon=daemon)
    assert _rsync_ran_since(daemon, mark)
    assert sum("no remote agent" in entry for entry in daemon.lines) == 1


def test_rsync_args_beyond_carriage_keep_every_batch_with_rsync(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    write_file(src / "a", "a")
    daemon = daemons.start(_remote_args(src, dst, sshd, "--rsync-args=--chmod=F600"))
    daemon.wait_ready()
    daemon.wait_for_log(r"RSYNC_ARGS has --chmod=F600: every batch goes through rsync")
    mark = daemon.mark()
    write_file(src / "a", "edited")
    # rsync's --chmod holds for the edit too: the agent, which would copy the mode, kept out.
    wait_until(lambda: (dst / "a").read_text() == "edited", 10)
    assert stat.S_IMODE((dst / "a").stat().st_mode) == 0o600
    assert _rsync_ran_since(daemon, mark)


def _agents(server: Sshd) -> list[int]:
    """The remote agents' Python processes: below `server`'s sshd, not the daemon's ssh."""
    return processes_below(
        server, lambda command: command[0].endswith(b"python3") and b"pylsyncd-agent" in command[-2]
    )


def test_an_agent_that_dies_loses_nothing_and_is_started_again(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    write_file(src / "a", "a")
    daemon = _live(daemons, src, dst, sshd)
    (agent,) = wait_until(lambda: _agents(sshd), 10)
    os.kill(agent, signal.SIGKILL)
    write_file(src / "a", "after the agent died")  # through rsync, once the agent's end is seen
    wait_for_mirror(src, dst, daemon=daemon)
    mark = daemon.mark()
    write_file(src / "a", "through the new agent")  # the next batch starts another
    wait_for_mirror(src, dst, daemon=daemon)
    assert daemon.wait_for_log(_AGENT_DID_ALL, since=mark)
    (again,) = wait_until(lambda: _agents(sshd), 10)
    assert again != agent


def test_a_new_tree_goes_through_the_agent_without_what_is_excluded(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    daemon = _live(daemons, src, dst, sshd, "--exclude", "*.tmp")
    outside = src.parent / "outside"
    for number in range(50):
        write_file(outside / "tree" / f"d{number % 5}" / f"f{number}", f"content {number}")
    write_file(outside / "tree" / "skip.tmp", "excluded")
    os.symlink("d0/f0", outside / "tree" / "link")
    mark = daemon.mark()
    (outside / "tree").rename(src / "tree")  # one event: a tree to copy
    wait_for_mirror(src, dst, ignore=lambda path: path.endswith(".tmp"), daemon=daemon)
    assert not (dst / "tree" / "skip.tmp").exists()
    assert daemon.wait_for_log(_AGENT_DID_ALL, since=mark)
    assert not _rsync_ran_since(daemon, mark)


def test_a_new_tree_where_the_destination_holds_a_directory_goes_through_rsync(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    daemon = _live(daemons, src, dst, sshd)
    write_file(dst / "tree" / "extra", "only on the remote: the source lacks it")
    outside = src.parent / "outside"
    write_file(outside / "tree" / "file", "from the source")
    mark = daemon.mark()
    (outside / "tree").rename(src / "tree")
    wait_for_mirror(src, dst, daemon=daemon)  # `extra` deleted, as rsync --delete does
    assert _rsync_ran_since(daemon, mark)
