"""One ssh connection per remote target: a master that every rsync and remote command goes through.

lsyncd opens a new ssh connection for every rsync and every move (its #416: one user's login
records grew to 765 MB). Here each target has one master connection (`ssh -M -N`), a child the
daemon owns, in its own session: `ControlPersist=no`, since ControlPersist would make ssh fork
into the background, out of our reach; it gets TERM when the thread that started it is gone,
even when the daemon was killed with -9 (the target's thread: it lives as long as the target).
Its control socket lives in a directory only the daemon may enter (0700, under
$XDG_RUNTIME_DIR or the temporary directory), made at start and removed at exit. Clients
(rsync's `-e`, the rename replay) name the socket with `-S` and `ControlMaster=no`, and a
`ProxyCommand` that fails: ssh tries the socket before any proxy, so when the master is gone a
client fails instead of opening (and authenticating) a connection of its own; the batch is
retried, and the retry starts a new master."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import IO

from pylsyncd.config.remote import RemoteDestination
from pylsyncd.errors import ConfigError
from pylsyncd.transfer.children import stop_child

log = logging.getLogger(__name__)

# How long a new master may take to connect and authenticate before the attempt fails; ssh's
# own ConnectTimeout covers the TCP connection, this the whole login.
_LOGIN_TIMEOUT = 30.0
_CONNECT_TIMEOUT = 10
_TERM_GRACE = 2.0
# A dropped connection (a host that vanished without a FIN) is noticed within about 15 s.
_KEEPALIVE = ("-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")
# With the AES instructions of any recent CPU, AES-GCM costs half the CPU of chacha20-poly1305,
# OpenSSH's first choice (571-686 MB/s against 317 through one loopback connection here), and
# a batch's bytes cross the connection once on each host's cores.
_FASTER_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
_CONFIG_TIMEOUT = 5.0
# A remote command (the rename replay, a listing) that has not ended by then is stopped and its
# batch retried: the keepalive ends one whose host vanished, this one whose filesystem hangs.
COMMAND_TIMEOUT = 300.0
# The master lives in a session of its own, out of reach of a Ctrl-C; killed with -9, the daemon
# could not stop it, and it would hold its connection open for good. The kernel's parent-death
# signal ends it then (util-linux's setpriv, in every Debian; without it, ssh alone).
_DIES_WITH_US = ("setpriv", "--pdeathsig", "TERM") if shutil.which("setpriv") else ()
_LOOK_EVERY = 0.2  # how often a waiting command's client is looked at
_OUTPUT_AFTER_EXIT = 2.0  # how long the output may take to end once the client exited


class SshMaster:
    """The master connection of one target, started on first use and again after it drops."""

    def __init__(self, remote: RemoteDestination, ssh_args: Sequence[str], socket: str) -> None:
        self.remote = remote
        self.ssh_args = tuple(ssh_args)
        self.socket = socket
        self.logins = 0  # masters started that logged in: one per connection lost, not per batch
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._commands: set[subprocess.Popen[bytes]] = set()  # running remote commands

    def _port(self) -> list[str]:
        return [] if self.remote.port is None else ["-p", str(self.remote.port)]

    def connect(self) -> str | None:
        """Make sure the master is up; None when it is, else ssh's own line saying why not."""
        with self._lock:
            process = self._process
            if process is not None and process.poll() is None and os.path.exists(self.socket):
                return None
            self._stop()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket)  # left by a master that was killed
            return self._start()

    def _start(self) -> str | None:
        # ssh takes the first value given for an option: what the daemon needs, then the
        # destination's port, then SSH_ARGS, then the daemon's defaults, which SSH_ARGS may
        # change (a longer ConnectTimeout, another keepalive).
        command = [
            *_DIES_WITH_US, "ssh", "-M", "-N", "-S", _escaped(self.socket),
            "-o", "ControlPersist=no", "-o", "BatchMode=yes", *self._port(), *self.ssh_args,
            "-o", f"ConnectTimeout={_CONNECT_TIMEOUT}", *_KEEPALIVE,
            *cipher_order([*self._port(), *self.ssh_args], self.remote.login),
            "--", self.remote.login,
        ]  # fmt: skip
        with open(os.memfd_create("ssh-errors", os.MFD_CLOEXEC), "w+b") as errors:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,  # a Ctrl-C meant for us does not cut the connection
            )
            self._process = process
            deadline = time.monotonic() + _LOGIN_TIMEOUT
            # ssh makes the socket once it has logged in; until then, or until it gives up, wait.
            while process.poll() is None and not os.path.exists(self.socket):
                if time.monotonic() > deadline:
                    self._stop()
                    return f"ssh to {self.remote.login} did not log in within {_LOGIN_TIMEOUT:g} s"
                time.sleep(0.005)
            if process.poll() is None:
                self.logins += 1
                return None
            errors.seek(0)
            lines = [line.strip() for line in errors.read().decode(errors="replace").splitlines()]
        said = [line for line in lines if line]
        error = said[-1] if said else f"ssh exited with status {process.returncode}"
        log.debug("no master connection to %s: %s", self.remote.login, error)  # every attempt
        return error

    def client(self) -> list[str]:
        """The ssh command of a client of this master: it never opens a connection itself."""
        return [
            "ssh", "-S", _escaped(self.socket), "-o", "ControlMaster=no",
            "-o", "ProxyCommand=false", "-o", "BatchMode=yes", *self._port(),
        ]  # fmt: skip

    def run(
        self, command: str, stdin: bytes, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a constant `command` on the target, its data on stdin (never in the command).

        Stopped (TERM, then KILL) after `timeout` seconds or by `cancel`: then it exits
        non-zero, its stderr saying why."""
        argv = [*self.client(), "--", self.remote.login, command]
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        with self._lock:
            self._commands.add(process)
        try:
            out, err = self._outputs(process, stdin, timeout)
        finally:
            with self._lock:
                self._commands.discard(process)
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        if out is None:  # stopped: `err` says why
            return subprocess.CompletedProcess(argv, process.wait() or -1, b"", err)
        return subprocess.CompletedProcess(argv, process.returncode, out, err)

    def _outputs(
        self, process: subprocess.Popen[bytes], stdin: bytes, timeout: float
    ) -> tuple[bytes | None, bytes]:
        """The client's stdout and stderr once its output ended; (None, why) when it was
        stopped, by the deadline or by `cancel`.

        The client hands its pipes to the master, which holds them while the remote command
        runs: a client that was killed leaves them open, so its exit is watched too."""
        given: bytes | None = stdin
        deadline = time.monotonic() + timeout
        exited_at: float | None = None
        while True:
            try:
                out, err = process.communicate(given, timeout=_LOOK_EVERY)
                return out, err
            except subprocess.TimeoutExpired:
                given = None  # sent once; a later call goes on with the same exchange
            now = time.monotonic()
            if process.poll() is not None:
                exited_at = exited_at or now
                if process.returncode < 0:  # `cancel` at a stop, or another signal
                    name = signal.Signals(-process.returncode).name
                    return None, f"ssh was stopped by {name}".encode()
                if now - exited_at > _OUTPUT_AFTER_EXIT:
                    return None, b"its output did not end with it"
            elif now > deadline:
                stop_child(process, grace=_TERM_GRACE)
                return None, f"no answer from {self.remote.login} within {timeout:g} s".encode()

    def session(self, command: str, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start a constant `command` on the target that lives on (the remote agent), with pipes
        for its stdin and stdout; stopped by `cancel` and `close`, and with the master."""
        process = subprocess.Popen(
            [*self.client(), "--", self.remote.login, command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,  # a Ctrl-C meant for us does not cut it mid-frame
        )
        with self._lock:
            self._commands = {c for c in self._commands if c.poll() is None} | {process}
        return process

    def cancel(self) -> None:
        """Stop the remote commands running now (the shutdown grace ran out)."""
        with self._lock:
            running = list(self._commands)
        for process in running:
            stop_child(process, grace=_TERM_GRACE)

    def _stop(self) -> None:
        if self._process is not None:
            stop_child(self._process, grace=_TERM_GRACE)
            self._process = None

    def close(self) -> None:
        """Stop the remote commands and the master: TERM, then KILL; reaped."""
        self.cancel()
        with self._lock:
            self._stop()


def cipher_order(ssh_args: Sequence[str], login: str) -> list[str]:
    """ssh options putting AES-GCM first among OpenSSH's default ciphers; none when SSH_ARGS or
    the ssh configuration chose the ciphers (theirs stand), or when ssh cannot say."""
    chosen = _ciphers(["ssh", "-G", *ssh_args, "--", login])
    default = _ciphers(["ssh", "-F", "none", "-G", "--", login])
    if chosen is None or chosen != default:
        return []
    faster = [cipher for cipher in _FASTER_CIPHERS if cipher in default]
    ordered = faster + [cipher for cipher in default if cipher not in faster]
    return [] if ordered == default else ["-o", "Ciphers=" + ",".join(ordered)]


def _ciphers(command: list[str]) -> list[str] | None:
    """The ciphers `ssh -G` would offer (it reads the configuration, connects nowhere)."""
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=_CONFIG_TIMEOUT, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.decode(errors="replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "ciphers" and done.returncode == 0:
            return value.split(",")
    return None


def _escaped(path: str) -> str:
    # ssh expands %-tokens in a control path; ours is a plain path.
    return path.replace("%", "%%")


class SshConnections:
    """The masters of all remote targets and the private directory of their sockets."""

    def __init__(self) -> None:
        for tool in ("ssh", "rsync"):
            if shutil.which(tool) is None:
                raise ConfigError(
                    f"a remote destination needs {tool}, which is not on PATH: install it "
                    "(Debian: apt-get install openssh-client rsync)"
                )
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        parent = runtime if runtime and os.path.isdir(runtime) else None
        # mkdtemp makes it 0700: nobody else may reach a socket that logs in as us.
        self.directory = tempfile.mkdtemp(prefix="pylsyncd-ssh-", dir=parent)
        self._masters: list[SshMaster] = []

    def master(self, remote: RemoteDestination, ssh_args: Sequence[str]) -> SshMaster:
        """A new target's master (not connected yet: the pair connects it, and retries)."""
        # A short name: a socket's path must fit in 108 bytes.
        socket = os.path.join(self.directory, str(len(self._masters)))
        master = SshMaster(remote, ssh_args, socket)
        self._masters.append(master)
        return master

    def close(self) -> None:
        """Stop every master and remove the sockets' directory."""
        for master in self._masters:
            master.close()
        shutil.rmtree(self.directory, ignore_errors=True)
