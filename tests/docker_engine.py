"""A Docker engine for the tests: one that already answers, or Debian's dockerd started here.

The engine started here is private (its own socket, data root and exec root) and has no network
of its own (`--bridge=none --iptables=false`): every container the tests run uses network mode
`none`, and image builds use the host's network only to reach the package registries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SOCKET = Path("/var/run/docker.sock")
PING_TIMEOUT = 15.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class EngineUnavailable(Exception):
    """No Docker engine answers and none can be started here; the message says why."""


@dataclass(frozen=True)
class Engine:
    """A Docker engine the docker CLI and docker-compose reach through DOCKER_HOST."""

    host: str  # a DOCKER_HOST value, e.g. unix:///var/run/docker.sock
    private: bool = False  # started by the tests, for the tests: theirs to clean up

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for docker and docker-compose commands aimed at this engine."""
        return {**os.environ, "DOCKER_HOST": self.host, **extra}

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float = 60.0,
        check: bool = True,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (docker, docker-compose) against this engine; fail with its output."""
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            env=env or self.env(),
            cwd=cwd,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
            )
        return result

    def docker(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker ARGS` against this engine."""
        return self.run(["docker", *args], timeout=timeout, check=check)


def answers(host: str) -> bool:
    """Whether a Docker engine answers at `host` (a DOCKER_HOST value)."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "DOCKER_HOST": host},
            timeout=PING_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


@contextlib.contextmanager
def docker_engine(cache_dir: Path) -> Iterator[Engine]:
    """An engine that answers: DOCKER_HOST's, the default socket's, or a private dockerd.

    The private dockerd keeps its images in `cache_dir` so the next run finds the base image and
    the build cache; a second test run at the same time gets a throwaway data root instead.
    Raises EngineUnavailable when none can be had.
    """
    configured = os.environ.get("DOCKER_HOST")
    if configured:
        if not answers(configured):
            raise EngineUnavailable(f"DOCKER_HOST={configured} is set but no engine answers there")
        yield Engine(configured)
        return
    if DEFAULT_SOCKET.exists() and answers(f"unix://{DEFAULT_SOCKET}"):
        yield Engine(f"unix://{DEFAULT_SOCKET}")
        return
    with _private_dockerd(cache_dir) as engine:
        yield engine


@contextlib.contextmanager
def _private_dockerd(cache_dir: Path) -> Iterator[Engine]:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable(
            "no Docker engine answers (DOCKER_HOST unset, /var/run/docker.sock silent) and "
            "dockerd is not installed: `./dev test` as root installs Debian's docker.io"
        )
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers and starting dockerd needs root")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        data_root, lock_fds = stack.enter_context(_locked_data_root(cache_dir))
        # Socket paths are limited to 108 bytes: the exec root (containerd's sockets) stays short.
        exec_root = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="pylsyncd-dk-", ignore_cleanup_errors=True)
            )
        )
        # dockerd leaves its network namespace bind-mounted in the exec root.
        stack.callback(_unmount_below, exec_root)
        socket = exec_root / "docker.sock"
        log_path = exec_root.parent / f"{exec_root.name}.log"
        command = [
            dockerd,
            f"--host=unix://{socket}",
            f"--data-root={data_root}",
            f"--exec-root={exec_root}",
            f"--pidfile={data_root}/dockerd.pid",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--shutdown-timeout=5",
        ]
        with log_path.open("wb") as log:
            # Its own session: stopping it never signals the test run, and vice versa. It holds
            # the data root's lock too: if this run dies, the next one leaves it alone.
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                pass_fds=lock_fds,
            )
        stack.callback(log_path.unlink, missing_ok=True)
        stack.callback(_stop, process)
        engine = Engine(f"unix://{socket}", private=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not (socket.exists() and answers(engine.host)):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise EngineUnavailable(f"dockerd did not start ({' '.join(command)}):\n{tail}")
            time.sleep(0.1)
        yield engine


def _stop(process: subprocess.Popen[bytes]) -> None:
    """TERM dockerd (it stops its containers and its containerd), then KILL what is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def _locked_data_root(cache_dir: Path) -> Iterator[tuple[Path, tuple[int, ...]]]:
    """The cached data root and its lock's descriptor, held; a throwaway root (and no lock) if
    another run, or a dockerd it left behind, holds the lock."""
    lock_file = (cache_dir / "engine.lock").open("w")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        with tempfile.TemporaryDirectory(
            prefix="pylsyncd-dk-data-", dir=cache_dir, ignore_cleanup_errors=True
        ) as scratch:
            try:
                yield Path(scratch), ()
            finally:
                _unmount_below(Path(scratch))
        return
    try:
        yield cache_dir / "engine", (lock_file.fileno(),)
    finally:
        lock_file.close()


def _unmount_below(root: Path) -> None:
    """Lazily unmount anything dockerd left mounted below `root`, so it can be removed."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted(points, reverse=True):
        if point.startswith(f"{root}/"):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
