"""A real OpenSSH server on 127.0.0.1, for the remote destination tests.

Debian's `sshd -D -e -f CONFIG` on a free loopback port, with host and client keys generated into
the test's directory, a known_hosts file that holds the host key (StrictHostKeyChecking stays
on), and LogLevel VERBOSE so that each authentication is a line of its log. No system
configuration is read or touched; when sshd cannot be started the test fails, never skips.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from helpers import wait_until

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sshd:
    """One sshd; `start` and `stop` may be called again (same port, same keys)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.host_key = directory / "host_key"
        self.user_key = directory / "user_key"
        for key in (self.host_key, self.user_key):
            subprocess.run(
                ["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)], check=True
            )
        self.known_hosts = directory / "known_hosts"
        host_public = (directory / "host_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_public[0]} {host_public[1]}\n")
        self.config = directory / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"AuthorizedKeysFile {directory / 'user_key.pub'}\n"
            f"PidFile {directory / 'sshd.pid'}\n"
            "StrictModes no\n"  # the test's temporary directories are not root's 0755 tree
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "LogLevel VERBOSE\n"
            "MaxSessions 100\n"
            "Subsystem sftp internal-sftp\n"
            # A session's shell reads $HOME's startup files (bash sources ~/.bashrc for a
            # command run by sshd): this machine's own would run before every rsync. The
            # test's directory, which holds none, is the sessions' home.
            f"SetEnv HOME={directory}\n"
        )
        self.lines: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        # /run/sshd is sshd's privilege separation directory; it refuses to start without it.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    @property
    def ssh_args(self) -> str:
        """SSH_ARGS for the daemon: the client key and the known hosts, checked strictly."""
        return (
            f"-i {self.user_key} -o UserKnownHostsFile={self.known_hosts} "
            "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
        )

    def start(self) -> None:
        """Start sshd and wait until it accepts connections."""
        assert self.process is None or self.process.poll() is not None
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()
        wait_until(
            lambda: (
                any(f"listening on 127.0.0.1 port {self.port}" in line for line in self.lines)
                or self.process is None
                or self.process.poll() is not None
            ),
            timeout=10,
        )
        assert self.process.poll() is None, f"sshd did not start: {self.lines[-5:]}"

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    def logins(self) -> int:
        """How many times a client authenticated since the first start."""
        return sum("Accepted publickey" in line for line in self.lines)

    def stop(self) -> None:
        """Stop sshd and its sessions (each session's process is in sshd's process group)."""
        if self.process is None:
            return
        # Sessions outlive a stopped listener (each runs in a session of its own): end them
        # too, as a host that went away would.
        sessions = children_of(self.process.pid)
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not any(_running(pid) for pid in sessions), 10)
        if self._reader is not None:
            self._reader.join(10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


def _running(pid: int) -> bool:
    """Whether `pid` runs still: an ended session stays a zombie until init reaps it, which
    takes up to a second here."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def children_of(pid: int) -> list[int]:
    """The process IDs whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                fields = file.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError):
        return 0


def processes_below(server: Sshd, wanted: Callable[[list[bytes]], bool]) -> list[int]:
    """The processes below `server`'s sshd (its sessions' commands, on the "remote" host)
    whose argument list `wanted` accepts."""
    assert server.process is not None
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not entry.name.isdigit() or not wanted(command):
            continue
        ancestor = int(entry.name)
        while ancestor > 1 and ancestor != server.process.pid:
            ancestor = _parent(ancestor)
        if ancestor == server.process.pid:
            found.append(int(entry.name))
    return found
