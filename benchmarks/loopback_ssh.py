"""Daemons that mirror into sshds on 127.0.0.1: pylsyncd's remote destinations and lsyncd's
`default.rsyncssh`, each with one or several targets for one source.

The sshd is the test suite's (tests/sshd.py: Debian's sshd with keys generated into its own
directory, host keys checked strictly), imported rather than copied so both measure the same
server. The remote host is this one, so a replica is read as a local directory; every byte of it
still went through ssh and rsync.
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.daemons import Daemon, DaemonFactory, Peer, lua_string
from benchmarks.suite_tools import Sshd, use_sshd_program

PYLSYNCD_REMOTE = Peer("pylsyncd", "remote")
LSYNCD_RSYNCSSH = Peer("lsyncd", "rsyncssh")
REMOTE_PEERS = (PYLSYNCD_REMOTE, LSYNCD_RSYNCSSH)
_LOGIN = "root@127.0.0.1"


@dataclass(frozen=True)
class Target:
    """One destination: a directory of this host reached through `server`."""

    server: Sshd
    replica: str

    @property
    def url(self) -> str:
        """The destination as pylsyncd is given it."""
        return f"ssh://{_LOGIN}:{self.server.port}{self.replica}"


def start_server(directory: str) -> Sshd:
    """An sshd on a free loopback port, its keys and log in `directory`."""
    server = Sshd(Path(directory))
    bashrc = os.path.join(pwd.getpwnam("root").pw_dir, ".bashrc")
    if os.path.exists(bashrc):
        use_sshd_program(_sshd_without(bashrc, directory))
    server.start()
    return server


def _sshd_without(bashrc: str, directory: str) -> str:
    """A wrapper that runs sshd in a mount namespace of its own where `bashrc` is empty.

    bash sources ~/.bashrc for every command run through ssh, interactive or not. Where the
    login's file does real work (on the development machine root's runs `pyenv init`: 0.5 s a
    command), each rsync and remote command of both contenders would pay for it; a server's
    non-interactive shell does not (Debian's default ~/.bashrc returns at once). The namespace
    is private to sshd and its sessions: nothing outside sees the empty file.
    """
    wrapper = os.path.join(directory, "sshd-quiet-shell")
    with open(wrapper, "w") as script:
        script.write(
            "#!/bin/sh\n"
            "exec unshare --mount --propagation private sh -c"
            ' \'mount --bind /dev/null "$0" && exec /usr/sbin/sshd "$@"\''
            f' {shlex.quote(bashrc)} "$@"\n'
        )
    os.chmod(wrapper, stat.S_IRWXU)
    return wrapper


def _toml_string(text: str) -> str:
    if any(char in text for char in '"\\\n'):
        raise ValueError(f"path not supported in a TOML string: {text!r}")
    return f'"{text}"'


class SshDaemon(Daemon):
    """One daemon mirroring `source` into every target, each over its own sshd.

    pylsyncd gets a TOML file with one `[[pair]]` per target (a pair per target is how one source
    goes to several hosts today, each pair with its own ssh options); lsyncd one `sync` per target.
    """

    def __init__(
        self, peer: Peer, source: str, targets: Sequence[Target], workdir: str, name: str = ""
    ) -> None:
        super().__init__(peer, source, targets[0].replica, workdir)
        self.targets = tuple(targets)
        if name:  # several daemons in one workdir: each its own log and config
            self.log_path = os.path.join(workdir, f"{peer.key}-{name}.log")
        self._config_file = os.path.join(workdir, f"{peer.key}{'-' + name if name else ''}.conf")

    def _command(self) -> list[str]:
        if self.peer.program == "pylsyncd":
            with open(self._config_file, "w") as config:
                config.write(self._pylsyncd_config())
            return [sys.executable, "-m", "pylsyncd", "--config", self._config_file]
        with open(self._config_file, "w") as config:
            config.write(self._lsyncd_config())
        return ["lsyncd", self._config_file]

    def _pylsyncd_config(self) -> str:
        lines = ["delay = 0", "shutdown_grace = 2", ""]
        for target in self.targets:
            options = ", ".join(_toml_string(arg) for arg in target.server.ssh_args.split())
            lines += [
                "[[pair]]",
                f"source = {_toml_string(self.source)}",
                f"destination = {_toml_string(target.url)}",
                f"ssh_args = [{options}]",
                "",
            ]
        return "\n".join(lines)

    def _lsyncd_config(self) -> str:
        """default.rsyncssh with DELAY=0, its ssh given the same key and known-hosts file."""
        syncs = []
        for target in self.targets:
            server = target.server
            key = lua_string(str(server.user_key))
            options = (
                f"UserKnownHostsFile = {lua_string(str(server.known_hosts))},"
                ' StrictHostKeyChecking = "yes", IdentitiesOnly = "yes"'
            )
            syncs.append(
                f"sync {{ default.rsyncssh, source = {lua_string(self.source)},"
                f' host = "{_LOGIN}", targetdir = {lua_string(target.replica)}, delay = 0,'
                f" ssh = {{ port = {server.port}, identityFile = {key},"
                f" options = {{ {options} }} }} }}"
            )
        return "settings { nodaemon = true, insist = false }\n" + "\n".join(syncs) + "\n"

    def _is_ready(self) -> bool:
        with open(self.log_path, "rb") as log:
            text = log.read()
        if self.peer.program == "pylsyncd":
            return b"ready:" in text
        # One `Startup of "/src/" finished: 0` line per sync.
        started = [line for line in text.splitlines() if b"Startup of" in line]
        return sum(b"finished" in line for line in started) >= len(self.targets)


def over(server: Sshd) -> DaemonFactory:
    """A daemon factory for the live and tree workloads: the replica reached through `server`."""

    def start(peer: Peer, source: str, replica: str, workdir: str) -> Daemon:
        return SshDaemon(peer, source, [Target(server, replica)], workdir)

    return start
