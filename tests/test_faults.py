"""Faults injected for real into a running daemon: a full or read-only destination (a small tmpfs),
a killed rsync, a SIGKILLed daemon, unreadable source entries (the daemon runs without the
capabilities that let root read anything), and a source that is unmounted or removed.

Each test checks the same promise: the failure is said once, nothing is lost or left half-done,
and the mirror converges once the fault is gone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import (
    Daemon,
    DaemonPool,
    daemon_args,
    tree_snapshot,
    wait_for_mirror,
    wait_until,
    write_file,
)
from processes import command_name, descendants
from pylsyncd.status import PairState, read_status

BACKENDS = ["direct", "rsync"]
MIB = 1 << 20
NOBODY = (65534, 65534)  # uid and gid of nobody/nogroup on Debian
# Root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH meets permissions like any other user:
# a file of nobody's with mode 0600 is unreadable to it. (An unprivileged user could not even run
# this Python, which lives below /root.) rsync inherits the reduced bounding set. PUID/PGID 0: what
# it writes stays its own, as it would for a daemon running as an ordinary user.
WITHOUT_READ_ANYTHING = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
OWN_FILES = ("--puid", "0", "--pgid", "0")
# Temporary files of either backend: `.pylsyncd.<hex>.tmp` (direct), `.<name>.XXXXXX` (rsync).
TEMPORARY = re.compile(r"\.pylsyncd\.[0-9a-f]{12}\.tmp|\..+\.[A-Za-z0-9]{6}")
FAILURE_LOGGED = r"failed: .*retrying with backoff"
FAILED_ATTEMPT = r"\d+ failed from \d+ events"


class Mounts:
    """tmpfs mounts made by one test; every one is unmounted at its end, whatever happened."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def tmpfs(self, where: Path, size: str) -> None:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
            check=True,
        )
        self.mounted.append(where)

    def remount(self, where: Path, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)

    def unmount(self, where: Path) -> None:
        subprocess.run(["umount", str(where)], check=True)
        self.mounted.remove(where)

    def close(self) -> None:
        for where in reversed(self.mounted):
            # Lazy: a daemon that is still being killed may hold a descriptor below it.
            subprocess.run(["umount", "-l", str(where)], check=False)
        self.mounted.clear()


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    made = Mounts()
    try:
        yield made
    finally:
        made.close()


def leftovers(root: Path) -> list[str]:
    """Temporary files of either backend anywhere below `root`."""
    return [
        os.path.join(top, name)
        for top, _, files in os.walk(root)
        for name in files
        if TEMPORARY.fullmatch(name)
    ]


def count_lines(daemon: Daemon, pattern: str, since: int = 0) -> int:
    regex = re.compile(pattern)
    return sum(1 for line in daemon.lines[since:] if regex.search(line))


def wait_for_attempts(daemon: Daemon, attempts: int, since: int, timeout: float = 20) -> None:
    """Wait until `attempts` batches have failed since log line `since` (retries happened)."""
    wait_until(
        lambda: count_lines(daemon, FAILED_ATTEMPT, since) >= attempts,
        timeout=timeout,
        message=lambda: f"fewer than {attempts} failed attempts\n{daemon.report()}",
    )


def kill_like_a_container(daemon: Daemon) -> None:
    """SIGKILL the daemon and everything it started at once, as `docker kill` does."""
    for pid in [daemon.pid, *descendants(daemon.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    daemon.wait_exit(timeout=10)


# -- the destination fails ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_full_destination_is_said_once_retried_leaves_no_partial_file_and_converges(
    tmp_path: Path, daemons: DaemonPool, mounts: Mounts, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    mounts.tmpfs(dst, "1m")
    write_file(src / "small.txt", "fits")
    daemon = daemons.start(daemon_args(src, dst, backend))
    daemon.wait_ready()
    since = daemon.mark()
    # Moved in whole: any big.bin in the destination could only be a partial copy.
    write_file(tmp_path / "staged" / "big.bin", os.urandom(3 * MIB))
    write_file(tmp_path / "staged" / "dir" / "also-big.bin", os.urandom(2 * MIB))
    os.rename(tmp_path / "staged" / "big.bin", src / "big.bin")
    os.rename(tmp_path / "staged" / "dir", src / "dir")
    wait_for_attempts(daemon, 3, since)
    assert not daemon.exited(), daemon.report()
    assert count_lines(daemon, FAILURE_LOGGED, since) == 1, daemon.report()
    assert leftovers(dst) == [], "a failed copy left its partial file behind"
    assert not (dst / "big.bin").exists(), "a 3 MiB file cannot be complete on a 1 MiB tmpfs"

    mounts.remount(dst, "size=16m")
    wait_for_mirror(src, dst, timeout=60, daemon=daemon)
    daemon.wait_for_log("recovered after", since=since)
    daemon.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_only_destination_is_said_once_retried_and_converges_when_writable(
    tmp_path: Path, daemons: DaemonPool, mounts: Mounts, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    mounts.tmpfs(dst, "16m")
    write_file(src / "kept.txt", "before")
    write_file(src / "doomed.txt", "deleted while read-only")
    write_file(src / "dir" / "renamed.txt", "moves while read-only")
    daemon = daemons.start(daemon_args(src, dst, backend))
    daemon.wait_ready()
    mounts.remount(dst, "ro")
    since = daemon.mark()
    write_file(src / "kept.txt", "after, and longer")
    (src / "doomed.txt").unlink()
    os.rename(src / "dir", src / "moved-dir")
    write_file(src / "new" / "file.txt", "created while read-only")
    wait_for_attempts(daemon, 3, since)
    assert not daemon.exited(), daemon.report()
    assert count_lines(daemon, FAILURE_LOGGED, since) == 1, daemon.report()

    mounts.remount(dst, "rw")
    wait_for_mirror(src, dst, timeout=60, daemon=daemon)
    daemon.wait_for_log("recovered after", since=since)
    daemon.stop()


def test_rsync_killed_mid_transfer_is_retried_and_its_temporary_file_removed(
    tmp_path: Path, daemons: DaemonPool
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    # 1 MB/s: a 3 MiB file takes three seconds, time enough to catch rsync in the middle.
    daemon = daemons.start(daemon_args(src, dst, "rsync", "--rsync-args=--bwlimit=1000"))
    daemon.wait_ready()
    since = daemon.mark()
    write_file(src / "big.bin", os.urandom(3 * MIB))
    wait_until(
        lambda: leftovers(dst),
        timeout=20,
        message=lambda: f"rsync never started writing big.bin\n{daemon.report()}",
    )
    rsyncs = [pid for pid in descendants(daemon.pid) if command_name(pid) == "rsync"]
    assert rsyncs, "no rsync process below the daemon"
    # Stopped first, all of them: one rsync that lives on after another died removes its
    # temporary file (its cleanup on a broken pipe), which a plain kill one by one allows.
    for signum in (signal.SIGSTOP, signal.SIGKILL):
        for pid in rsyncs:
            os.kill(pid, signum)
    # Killed outright, rsync cannot remove its temporary file: the retry must.
    assert leftovers(dst), "the killed rsync left nothing to clean up: the test proves nothing"
    daemon.wait_for_log(FAILURE_LOGGED, since=since)
    wait_for_mirror(src, dst, timeout=60, daemon=daemon)
    assert not daemon.exited(), daemon.report()
    daemon.stop()


# -- the daemon dies ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_daemon_killed_in_a_10000_file_storm_converges_after_a_restart(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    args = daemon_args(src, dst, backend, log_level="info")
    first = daemons.start(args)
    first.wait_ready()

    def storm(dirs: range) -> None:
        for d in dirs:
            directory = src / f"d{d:03d}"
            directory.mkdir()
            for f in range(100):
                (directory / f"f{f:03d}").write_bytes(f"{d}/{f}\n".encode() * (f + 1))

    storm(range(50))
    # Killed once it is copying, with half the storm still to come.
    wait_until(lambda: any(dst.glob("d*/f*")), timeout=30, message="nothing copied yet")
    kill_like_a_container(first)
    storm(range(50, 100))

    second = daemons.start(args)
    second.wait_ready(timeout=120)
    wait_for_mirror(src, dst, timeout=60, daemon=second)
    assert leftovers(dst) == []
    second.stop()


# -- the source fails --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_unreadable_source_entries_are_said_once_and_everything_else_syncs(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_file(src / "readable.txt", "for everyone", mode=0o644)
    write_file(src / "secret.txt", "nobody's only", mode=0o600)
    write_file(src / "locked" / "inside.txt", "nobody's only, in a directory of nobody's only")
    write_file(src / "sub" / "ok.txt", "for everyone")
    for private in (src / "secret.txt", src / "locked", src / "locked" / "inside.txt"):
        os.chown(private, *NOBODY)
    (src / "locked").chmod(0o700)

    daemon = daemons.start(
        daemon_args(src, dst, backend, *OWN_FILES), wrapper=WITHOUT_READ_ANYTHING
    )
    daemon.wait_ready()  # the initial sync goes through despite them
    assert (dst / "readable.txt").read_text() == "for everyone"
    assert (dst / "sub" / "ok.txt").read_text() == "for everyone"
    assert not (dst / "secret.txt").exists()
    assert not (dst / "locked" / "inside.txt").exists()

    write_file(src / "secret.txt", "nobody's only, rewritten")  # an event: skipped again
    write_file(src / "later.txt", "written after", mode=0o644)
    wait_until(lambda: (dst / "later.txt").exists(), message=daemon.report)
    assert count_lines(daemon, r"WARNING cannot read .*secret\.txt") == 1, daemon.report()
    assert count_lines(daemon, FAILURE_LOGGED) == 0, "an unreadable file is not a failure"

    # Made readable, both arrive: a chmod raises an event of its own.
    (src / "secret.txt").chmod(0o644)
    (src / "locked").chmod(0o755)
    (src / "locked" / "inside.txt").chmod(0o644)
    wait_for_mirror(src, dst, timeout=20, daemon=daemon)
    daemon.stop()


@pytest.mark.parametrize(
    ("backend", "watch"), [("direct", "auto"), ("rsync", "auto"), ("direct", "poll")]
)
def test_unmounted_source_pauses_the_pair_and_it_resumes_when_mounted_again(
    tmp_path: Path, daemons: DaemonPool, mounts: Mounts, backend: str, watch: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    mounts.tmpfs(src, "16m")
    write_file(src / "a.txt", "a")
    write_file(src / "dir" / "b.txt", "b")
    status_file = tmp_path / "status.json"
    daemon = daemons.start(
        daemon_args(
            src, dst, backend, "--watch", watch, "--poll-interval", "0.1",
            "--status-file", str(status_file),
        )
    )  # fmt: skip
    daemon.wait_ready()
    before = tree_snapshot(dst)
    since = daemon.mark()
    # What the mount hid is now the source's path: an empty directory, not an emptied source.
    mounts.unmount(src)
    daemon.wait_for_log(r"unmounted: pausing", since=since)
    assert tree_snapshot(dst) == before, "the destination changed while the source was gone"
    wait_until(lambda: read_status(str(status_file)).pairs[0].state is PairState.PAUSED)
    assert "paused" in (read_status(str(status_file)).pairs[0].last_error or "")

    mounts.tmpfs(src, "16m")
    write_file(src / "a.txt", "a, changed while away")
    write_file(src / "c.txt", "new")
    daemon.wait_for_log("the source is back", since=since)
    wait_for_mirror(src, dst, timeout=20, daemon=daemon)
    write_file(src / "dir" / "live.txt", "watched again")
    wait_for_mirror(src, dst, timeout=20, daemon=daemon)
    wait_until(lambda: read_status(str(status_file)).pairs[0].state is PairState.LIVE)
    daemon.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_removed_source_pauses_the_pair_and_a_new_one_is_mirrored(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_file(src / "a.txt", "a")
    write_file(src / "dir" / "b.txt", "b")
    daemon = daemons.start(daemon_args(src, dst, backend))
    daemon.wait_ready()
    before = tree_snapshot(dst)
    since = daemon.mark()
    os.rename(src, tmp_path / "moved-away")
    daemon.wait_for_log(r"is gone .*: pausing", since=since)
    assert tree_snapshot(dst) == before, "the destination changed while the source was gone"

    write_file(src / "a.txt", "a, in a new source")
    write_file(src / "other" / "d.txt", "d")
    daemon.wait_for_log("the source is back", since=since)
    wait_for_mirror(src, dst, timeout=20, daemon=daemon)
    write_file(src / "other" / "live.txt", "watched again")
    wait_for_mirror(src, dst, timeout=20, daemon=daemon)
    daemon.stop()


# -- the shutdown is cut short -----------------------------------------------------------------

FORCED = (
    r"pylsyncd: error: {} received during the shutdown: exiting now with \d+ changes not applied"
)


@pytest.mark.parametrize("again", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_second_signal_during_the_shutdown_exits_at_once_and_says_so(
    tmp_path: Path, daemons: DaemonPool, mounts: Mounts, again: signal.Signals
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    mounts.tmpfs(dst, "16m")
    # A 30 s delay: only the shutdown applies the change; a 60 s grace: only a force ends it.
    daemon = daemons.start(daemon_args(src, dst, "direct", "--shutdown-grace", "60", delay="30"))
    daemon.wait_ready()
    mounts.remount(dst, "ro")
    write_file(src / "pending.txt", "cannot be applied to a read-only destination")
    since = daemon.mark()
    daemon.send(signal.SIGTERM)
    daemon.wait_for_log(FAILURE_LOGGED, since=since)  # the flush is retrying
    began = time.monotonic()
    daemon.send(again)
    status = daemon.wait_exit(timeout=10)
    assert time.monotonic() - began < 3, "the second signal did not cut the shutdown short"
    assert status == 1, daemon.report()
    errors = [line for line in daemon.lines[since:] if line.startswith("pylsyncd: error:")]
    assert len(errors) == 1 and errors == daemon.lines[-1:], daemon.report()
    assert re.fullmatch(FORCED.format(again.name), errors[0]), daemon.report()


def test_a_transfer_outlasting_the_grace_is_cancelled_and_the_exit_says_so(
    tmp_path: Path, daemons: DaemonPool
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    # 1 MB/s: an 8 MiB file takes eight seconds, far more than the grace and the second after it.
    daemon = daemons.start(
        daemon_args(
            src, dst, "rsync", "--rsync-args=--bwlimit=1000", "--shutdown-grace", "1",
            delay="30",
        )
    )  # fmt: skip
    daemon.wait_ready()
    write_file(src / "big.bin", os.urandom(8 * MIB))
    since = daemon.mark()
    daemon.send(signal.SIGTERM)
    rsyncs = wait_until(
        lambda: [pid for pid in descendants(daemon.pid) if command_name(pid) == "rsync"],
        timeout=10,
        message=lambda: f"the shutdown never started rsync\n{daemon.report()}",
    )
    assert daemon.wait_exit(timeout=20) == 1, daemon.report()
    errors = [line for line in daemon.lines[since:] if line.startswith("pylsyncd: error:")]
    assert errors == ["pylsyncd: error: gave up waiting for pending changes after 1 s"], (
        daemon.report()
    )
    # Terminated before the exit; its own children follow at once (a pipe closes), long before
    # the copy could have ended by itself.
    wait_until(
        lambda: not any(os.path.exists(f"/proc/{pid}") for pid in rsyncs),
        timeout=2,
        message="rsync was left running after the daemon gave up",
    )
