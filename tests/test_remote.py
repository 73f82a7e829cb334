"""Remote destinations, end to end: the daemon mirrors into a real sshd on 127.0.0.1 via ssh://.

The "remote" host is this one (root@127.0.0.1), so the test reads the remote destination as a
local directory; every byte of it still went through ssh and rsync.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

from helpers import Daemon, DaemonPool, daemon_args, wait_for_mirror, wait_until, write_file
from pylsyncd.config.remote import RemoteDestination
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer.remote import RemoteRsyncTransfer
from pylsyncd.transfer.ssh_master import SshMaster, cipher_order
from sshd import Sshd, children_of, processes_below


def _remote_args(src: Path, dst: Path, server: Sshd, *extra: str) -> list[str]:
    target = f"ssh://root@127.0.0.1:{server.port}{dst}"
    return daemon_args(src, target, "rsync", "--ssh-args", server.ssh_args, *extra)


def _masters(pid: int) -> list[int]:
    """The daemon's ssh master processes."""
    found = []
    for child in children_of(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command[0] == b"ssh" and b"-M" in command:
            found.append(child)
    return found


def _live_with_master(daemons: DaemonPool, src: Path, dst: Path, sshd: Sshd) -> tuple[Daemon, int]:
    """A live daemon mirroring `src` into `dst` over `sshd`, and its one master's process ID."""
    daemon = daemons.start(_remote_args(src, dst, sshd))
    daemon.wait_ready()
    (master,) = wait_until(lambda: _masters(daemon.pid), 10)
    return daemon, master


def test_edits_arrive(daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd) -> None:
    src, dst = dirs
    write_file(src / "kept.txt", "before")
    write_file(src / "sub" / "gone.txt", "x")
    daemon = daemons.start(_remote_args(src, dst, sshd))
    daemon.wait_ready()
    wait_for_mirror(src, dst, daemon=daemon)
    write_file(src / "kept.txt", "after")
    write_file(src / "new" / "deep" / "file", "new")
    (src / "sub" / "gone.txt").unlink()
    os.symlink("kept.txt", src / "link")
    for name in (b"-leading", b"new\nline", b"\xff\xfe-bytes"):
        write_file(os.path.join(os.fsencode(src), name), "odd name")
    wait_for_mirror(src, dst, daemon=daemon)


def test_a_missing_remote_directory_is_made(
    daemons: DaemonPool, tmp_path: Path, sshd: Sshd
) -> None:
    src, dst = tmp_path / "src", tmp_path / "not" / "yet" / "there"
    write_file(src / "a", "a")
    daemon = daemons.start(_remote_args(src, dst, sshd))
    daemon.wait_ready()
    wait_for_mirror(src, dst, daemon=daemon)


def test_a_renamed_tree_is_renamed_on_the_remote(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    for number in range(10_000):
        write_file(src / "tree" / f"d{number // 100}" / f"f{number}", f"content {number}" * 10)
    daemon = daemons.start(_remote_args(src, dst, sshd))
    daemon.wait_ready(timeout=120)
    wait_for_mirror(src, dst, timeout=60, daemon=daemon)
    inode = (dst / "tree" / "d7" / "f777").stat().st_ino
    mark = daemon.mark()
    (src / "tree").rename(src / "moved")
    wait_for_mirror(src, dst, timeout=30, daemon=daemon)
    assert (dst / "moved" / "d7" / "f777").stat().st_ino == inode  # renamed, not copied
    stdin_bytes, rsync_bytes = _rename_bytes(daemon, mark)
    print(
        f"rename of a 10,000-file tree: {stdin_bytes} B of replay input, {rsync_bytes} B by rsync"
    )
    assert stdin_bytes + rsync_bytes < 1000


def test_a_renamed_100_mb_file_is_renamed_on_the_remote(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    with open(src / "big.bin", "wb") as file:
        for _ in range(100):
            file.write(os.urandom(1024 * 1024))
    daemon = daemons.start(_remote_args(src, dst, sshd))
    daemon.wait_ready(timeout=120)
    wait_for_mirror(src, dst, timeout=60, daemon=daemon)
    inode = (dst / "big.bin").stat().st_ino
    mark = daemon.mark()
    (src / "big.bin").rename(src / "renamed.bin")
    wait_for_mirror(src, dst, timeout=30, daemon=daemon)
    assert (dst / "renamed.bin").stat().st_ino == inode
    stdin_bytes, rsync_bytes = _rename_bytes(daemon, mark)
    print(f"rename of a 100 MB file: {stdin_bytes} B of replay input, {rsync_bytes} B by rsync")
    assert stdin_bytes + rsync_bytes < 1000


def _rename_bytes(daemon: Daemon, since: int) -> tuple[int, int]:
    """The bytes a batch's rename replay read on stdin, and those the rest of the batch sent
    (the directories' times, through the remote agent or rsync)."""
    replay = daemon.wait_for_log(r"renamed 1 \(0 refused\) with (\d+) bytes", since=since)
    sent = daemon.wait_for_log(
        r"rsync: Total bytes sent: ([\d,]+)|agent: .*\), ([\d,]+) bytes sent", since=since
    )
    return int(replay.group(1)), int((sent.group(1) or sent.group(2)).replace(",", ""))


def test_100_batches_cost_one_login(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    daemon = daemons.start(_remote_args(src, dst, sshd))
    daemon.wait_ready()
    for number in range(100):
        # Each file waited for before the next is written: a batch of its own.
        write_file(src / f"file{number}", str(number))
        wait_until(lambda n=number: (dst / f"file{n}").exists(), 10)  # type: ignore[misc]
    wait_for_mirror(src, dst, daemon=daemon)
    assert sshd.logins() == 1, sshd.lines


def test_a_killed_master_is_started_again(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    daemon, master = _live_with_master(daemons, src, dst, sshd)
    os.kill(master, signal.SIGKILL)
    wait_until(lambda: master not in _masters(daemon.pid), 10)
    write_file(src / "after-kill", "still arrives")
    wait_for_mirror(src, dst, daemon=daemon)
    assert sshd.logins() == 2


def test_ssh_args_change_the_daemons_own_ssh_defaults(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    """A keepalive of SSH_ARGS replaces the daemon's (5 s, 3 missed: a host gone silent is
    noticed in 15 s): ssh takes an option's first value, so SSH_ARGS come before it."""
    src, dst = dirs
    keepalive = "-o ServerAliveInterval=1 -o ServerAliveCountMax=1"
    target = f"ssh://root@127.0.0.1:{sshd.port}{dst}"
    daemon = daemons.start(
        daemon_args(src, target, "rsync", "--ssh-args", f"{sshd.ssh_args} {keepalive}")
    )
    daemon.wait_ready()
    (master,) = wait_until(lambda: _masters(daemon.pid), 10)
    # The host goes silent: its sessions stop answering, keepalives included.
    assert sshd.process is not None
    sessions = [pid for top in children_of(sshd.process.pid) for pid in (top, *children_of(top))]
    for pid in sessions:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: master not in _masters(daemon.pid), 10, message=daemon.report)
    finally:
        for pid in sessions:
            os.kill(pid, signal.SIGCONT)
    write_file(src / "after", "a new master carries it")
    wait_for_mirror(src, dst, daemon=daemon)
    assert sshd.logins() == 2


def test_an_unreachable_host_at_start_fails_then_recovers(
    daemons: DaemonPool, dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    src, dst = dirs
    write_file(src / "a", "a")
    server = Sshd(tmp_path / "sshd")  # not started
    status_file = tmp_path / "status.json"
    try:
        daemon = daemons.start(_remote_args(src, dst, server, "--status-file", str(status_file)))
        refused = r"ssh: connect to host 127\.0\.0\.1 port \d+: Connection refused"
        daemon.wait_for_log(rf"initial sync failed: {refused}; retrying with backoff")
        status = wait_until(lambda: _pair_status(status_file).get("state") == "failing", 10)
        assert re.fullmatch(refused, str(_pair_status(status_file)["last_error"])), status
        # Three attempts (0.5 s, then 1 s of backoff), each ssh's own try.
        wait_until(
            lambda: len(re.findall(f"no master connection.*{refused}", daemon.log_text())) >= 3
        )
        server.start()
        daemon.wait_ready(timeout=60)
        wait_for_mirror(src, dst, daemon=daemon)
        said = re.findall(rf"ERROR .*{refused}", daemon.log_text())
        assert len(said) == 1  # said once, not at every retry
        daemon.wait_for_log(r"recovered after")
        wait_until(lambda: _pair_status(status_file).get("state") == "live", 10)
    finally:
        server.stop()


def _pair_status(path: Path) -> dict[str, object]:
    """The only pair's entry in the status file; empty before the file is written."""
    try:
        return dict(json.loads(path.read_text())["pairs"][0])
    except FileNotFoundError:
        return {}


def test_a_symlink_planted_in_the_remote_destination_is_not_followed(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd, tmp_path: Path
) -> None:
    src, dst = dirs
    outside = tmp_path / "outside"
    outside.mkdir()
    write_file(outside / "precious", "keep")
    write_file(src / "dir" / "file", "content")
    write_file(src / "other" / "x", "x")
    write_file(src / "other" / "stays", "sent again, from the source")
    daemon = daemons.start(_remote_args(src, dst, sshd))
    daemon.wait_ready()
    wait_for_mirror(src, dst, daemon=daemon)
    # Someone on the remote host replaces two directories of the destination by symlinks to
    # a directory outside it; then renames in the source go through both.
    for name in ("dir", "other"):
        os.rename(dst / name, tmp_path / f"{name}-away")
        os.symlink(outside, dst / name)
    mark = daemon.mark()
    (src / "dir" / "file").rename(src / "dir" / "renamed")
    (src / "other" / "x").rename(src / "x-out")
    (src / "other").rename(src / "other2")
    wait_for_mirror(src, dst, daemon=daemon)
    assert sorted(os.listdir(outside)) == ["precious"]
    assert (outside / "precious").read_text() == "keep"
    assert not (dst / "dir").is_symlink()
    daemon.wait_for_log(r"\((?:[1-9]\d*) refused\)", since=mark)


def test_a_client_never_logs_in_without_the_master(sshd: Sshd, tmp_path: Path) -> None:
    remote = RemoteDestination("127.0.0.1", str(tmp_path), "root", sshd.port)
    master = SshMaster(remote, shlex.split(sshd.ssh_args), str(tmp_path / "no-socket"))
    result = master.run("true", b"")  # no master started: its socket does not exist
    assert result.returncode != 0
    assert sshd.logins() == 0
    assert master.connect() is None
    try:
        assert master.run("true", b"").returncode == 0
        assert sshd.logins() == 1
    finally:
        master.close()


def test_a_remote_command_is_stopped_by_its_timeout_and_by_cancel(
    sshd: Sshd, tmp_path: Path
) -> None:
    remote = RemoteDestination("127.0.0.1", str(tmp_path), "root", sshd.port)
    master = SshMaster(remote, shlex.split(sshd.ssh_args), str(tmp_path / "socket"))
    assert master.connect() is None

    def running(command: str) -> bool:
        found = subprocess.run(["pgrep", "-f", f"^{command}$"], capture_output=True, check=False)
        return found.returncode == 0

    try:
        # A remote that never answers (a hung filesystem there): the timeout ends the wait.
        result = master.run("sleep 37", b"", timeout=0.5)
        assert result.returncode != 0
        assert b"no answer from root@127.0.0.1 within 0.5 s" in result.stderr
        # At shutdown: cancel, from another thread, ends a command that is running now.
        ran: list[subprocess.CompletedProcess[bytes]] = []
        waiting = threading.Thread(target=lambda: ran.append(master.run("sleep 38", b"")))
        waiting.start()
        wait_until(lambda: running("sleep 38"))  # on the remote: the client is up before it
        master.cancel()
        waiting.join(timeout=10)
        assert not waiting.is_alive() and ran[0].returncode != 0
        assert master.run("echo still up", b"").stdout == b"still up\n"  # the master is fine
    finally:
        master.close()
        # What the stopped clients asked for runs on at the remote (no terminal: no hangup).
        subprocess.run(["pkill", "-f", "^sleep 3[78]$"], check=False)


def test_a_daemon_killed_with_9_leaves_no_master_behind(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd
) -> None:
    src, dst = dirs
    daemon, master = _live_with_master(daemons, src, dst, sshd)
    os.kill(daemon.pid, signal.SIGKILL)  # the daemon alone: the master is in its own session

    def ended() -> bool:
        try:
            state = Path(f"/proc/{master}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            return True
        return state == b"Z"  # ended, not reaped yet by whoever adopted it

    wait_until(ended, 10, message="the ssh master outlived its daemon")


def test_the_master_offers_aes_gcm_first_unless_told_which_ciphers(
    daemons: DaemonPool, dirs: tuple[Path, Path], sshd: Sshd, tmp_path: Path
) -> None:
    """Asked of the real ssh (`ssh -G`): OpenSSH's defaults reordered, or what the user chose."""
    ordered = cipher_order([], "root@127.0.0.1")
    assert ordered[0] == "-o" and ordered[1].startswith("Ciphers=aes128-gcm@openssh.com,")
    defaults = subprocess.run(
        ["ssh", "-F", "none", "-G", "root@127.0.0.1"], capture_output=True, text=True, check=True
    ).stdout
    (line,) = [line for line in defaults.splitlines() if line.startswith("ciphers ")]
    assert sorted(ordered[1].removeprefix("Ciphers=").split(",")) == sorted(line[8:].split(","))
    assert cipher_order(["-c", "aes256-ctr"], "root@127.0.0.1") == []
    config = tmp_path / "ssh_config"
    config.write_text("Ciphers aes256-ctr\n")
    assert cipher_order(["-F", str(config)], "root@127.0.0.1") == []
    # The daemon's master offers them so, and logs in with them.
    src, dst = dirs
    daemon, master = _live_with_master(daemons, src, dst, sshd)
    command = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
    assert ordered[1].encode() in command
    write_file(src / "over-gcm", "arrives")
    wait_for_mirror(src, dst, daemon=daemon)


def test_an_rsync_whose_remote_end_stops_answering_fails_by_its_timeout(
    sshd: Sshd, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    with open(src / "big.bin", "wb") as big:
        for _ in range(64):
            big.write(os.urandom(1024 * 1024))
    remote = RemoteDestination("127.0.0.1", str(dst), "root", sshd.port)
    master = SshMaster(remote, shlex.split(sshd.ssh_args), str(tmp_path / "socket"))
    transfer = RemoteRsyncTransfer(
        str(src), remote, master, ExcludeRules(()), delete=True, io_timeout=2
    )
    stopped: list[int] = []
    done = threading.Event()

    def stop_the_remote_rsync() -> None:
        # The receiving rsync on the remote (below sshd, not the daemon's) and what it forks:
        # stopped as they appear, as processes stuck in a hung filesystem would be; let go once
        # the run ended, or after 30 s so that the test fails instead of hanging.
        def found() -> list[int]:
            return processes_below(sshd, lambda command: command[:2] == [b"rsync", b"--server"])

        wait_until(found, 30, interval=0.001)
        while not done.wait(0.005):
            for pid in found():
                if pid not in stopped:
                    os.kill(pid, signal.SIGSTOP)
                    stopped.append(pid)
            if done.wait(0) or time.monotonic() > deadline:
                break
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)

    deadline = time.monotonic() + 30
    stopper = threading.Thread(target=stop_the_remote_rsync)
    stopper.start()
    try:
        outcome = transfer.full_sync(delete=True)
    finally:
        done.set()
        stopper.join(40)
    try:
        assert stopped, "the remote rsync was never seen"
        assert not outcome.ok and "timeout" in (outcome.error or "")
    finally:
        master.close()
