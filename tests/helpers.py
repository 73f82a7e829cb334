"""End-to-end helpers: wait on conditions, snapshot and compare trees, run the daemon process."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, NamedTuple, TypeVar

from pylsyncd.config import ENV_VARS

T = TypeVar("T")

# Everything the daemon reads from its environment: a test never inherits the developer's settings.
DAEMON_ENV_VARS = ENV_VARS

READY = r"ready:"
TAIL_LINES = 80
DIFF_LINES = 40

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]
Ignore = Callable[[str], bool]


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Poll `predicate` until it returns something truthy (returned); fail at the deadline.

    `message` may be a callable, evaluated only on failure, so it can show the state at the
    deadline (a tree diff, the daemon's log).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text}\n(gave up after {timeout:.1f} s)")
        time.sleep(interval)


# -- trees -------------------------------------------------------------------------------------


class Entry(NamedTuple):
    """What a tree snapshot records for one path (lstat-based: symlinks are never followed)."""

    kind: str  # "file", "dir", "symlink" or "other"
    mode: int  # permission bits (S_IMODE)
    mtime_ns: int
    size: int = 0  # files only
    digest: str = ""  # files only: a hash of the content
    target: str = ""  # symlinks only: the link text (os.fsdecode'd)

    def describe(self) -> str:
        """A short human-readable form for diffs."""
        text = f"{self.kind} {self.mode:#o} mtime={format_ns(self.mtime_ns)}"
        if self.kind == "file":
            text += f" size={self.size} sha={self.digest}"
        elif self.kind == "symlink":
            text += f" -> {self.target!r}"
        return text


def format_ns(ns: int) -> str:
    """Nanoseconds since the epoch as `seconds.nanoseconds`."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _entry(path: bytes, st: os.stat_result) -> Entry:
    mode, mtime = stat.S_IMODE(st.st_mode), st.st_mtime_ns
    if stat.S_ISLNK(st.st_mode):
        return Entry("symlink", mode, mtime, target=os.fsdecode(os.readlink(path)))
    if stat.S_ISDIR(st.st_mode):
        return Entry("dir", mode, mtime)
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.blake2b(digest_size=8)
        with open(path, "rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        return Entry("file", mode, mtime, size=st.st_size, digest=digest.hexdigest())
    return Entry("other", mode, mtime)


def tree_snapshot(root: PathLike, ignore: Ignore | None = None) -> dict[str, Entry]:
    """Every entry below `root` (not root itself), keyed by its '/'-separated relative path.

    Names are walked as bytes and decoded with os.fsdecode, so non-UTF-8 names survive (as
    surrogate escapes). `ignore(relpath)` true drops a path and everything below it.
    """
    snapshot: dict[str, Entry] = {}
    pending: list[tuple[bytes, bytes]] = [(os.fsencode(root), b"")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as scan:
            names = sorted(entry.name for entry in scan)
        for name in names:
            relative = prefix + name
            key = os.fsdecode(relative)
            if ignore is not None and ignore(key):
                continue
            path = os.path.join(directory, name)
            entry = _entry(path, os.lstat(path))
            snapshot[key] = entry
            if entry.kind == "dir":
                pending.append((path, relative + b"/"))
    return snapshot


def diff_snapshots(
    expected: dict[str, Entry],
    actual: dict[str, Entry],
    labels: tuple[str, str] = ("src", "dst"),
    limit: int = DIFF_LINES,
) -> str:
    """A compact, line-per-path description of how two snapshots differ ('' when equal)."""
    left, right = labels
    lines: list[str] = []
    for key in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(key), actual.get(key)
        if want == got:
            continue
        if got is None:
            assert want is not None
            lines.append(f"  only in {left}:  {key!r}: {want.describe()}")
        elif want is None:
            lines.append(f"  only in {right}:  {key!r}: {got.describe()}")
        elif want.kind != got.kind:
            lines.append(f"  type  {key!r}: {left} {want.describe()} | {right} {got.describe()}")
        else:
            fields = [
                f"{field} {left}={_field(want, field)} {right}={_field(got, field)}"
                for field in Entry._fields
                if getattr(want, field) != getattr(got, field)
            ]
            lines.append(f"  differ {key!r} ({want.kind}): " + "; ".join(fields))
    if len(lines) > limit:
        lines = [*lines[:limit], f"  ... and {len(lines) - limit} more"]
    return "\n".join(lines)


def _field(entry: Entry, field: str) -> str:
    value = getattr(entry, field)
    if field == "mode":
        return f"{value:#o}"
    if field == "mtime_ns":
        return format_ns(value)
    return repr(value) if isinstance(value, str) else str(value)


def assert_trees_equal(src: PathLike, dst: PathLike, ignore: Ignore | None = None) -> None:
    """Fail with a compact diff unless the trees below src and dst are identical."""
    expected, actual = tree_snapshot(src, ignore), tree_snapshot(dst, ignore)
    if expected != actual:
        raise AssertionError(
            f"{os.fsdecode(dst)} does not mirror {os.fsdecode(src)}:\n"
            + diff_snapshots(expected, actual)
        )


def wait_for_mirror(
    src: PathLike,
    dst: PathLike,
    timeout: float = 10.0,
    ignore: Ignore | None = None,
    daemon: Daemon | None = None,
) -> None:
    """Wait until dst mirrors src; on the deadline, fail with the diff and the daemon's log tail."""
    deadline = time.monotonic() + timeout
    interval = 0.01
    last_error = ""
    while True:
        try:
            # The daemon changes dst while we walk it: a vanished entry means "not yet".
            expected, actual = tree_snapshot(src, ignore), tree_snapshot(dst, ignore)
        except OSError as error:
            last_error = f"(last snapshot failed: {error})"
        else:
            if expected == actual:
                return
            last_error = diff_snapshots(expected, actual)
        if daemon is not None and daemon.exited():
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
        # Big trees take a while to snapshot; do not spend all the CPU comparing them.
        interval = min(interval * 1.5, 0.2)
    message = (
        f"{os.fsdecode(dst)} does not mirror {os.fsdecode(src)} after {timeout:.1f} s:\n"
        f"{last_error}"
    )
    if daemon is not None:
        message += "\n" + daemon.report()
    raise AssertionError(message)


def write_file(
    path: PathLike,
    content: bytes | str = b"",
    *,
    mode: int | None = None,
    mtime_ns: int | None = None,
) -> Path:
    """Create (or overwrite) a file, its missing parents too; optionally set its mode and mtime."""
    path = Path(os.fsdecode(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    if mode is not None:
        os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def set_mtime(path: PathLike, mtime_ns: int) -> None:
    """Set atime and mtime of a file, directory or symlink itself (never its target)."""
    os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


# -- the daemon process ------------------------------------------------------------------------


@contextlib.contextmanager
def bindfs_mount(host: Path, mount: Path) -> Iterator[None]:
    """`mount` shows `host` through bindfs (FUSE), for as long as the block runs. Writes made in
    `host` raise no inotify event on `mount`, as on a VM's shared folder; writes made through
    `mount` do."""
    bindfs = shutil.which("bindfs")
    assert bindfs, "bindfs is needed (apt-get install bindfs; ./dev test installs it as root)"
    subprocess.run([bindfs, str(host), str(mount)], check=True)
    try:
        yield
    finally:
        subprocess.run(["fusermount", "-u", str(mount)], check=False)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def clean_environment() -> dict[str, str]:
    """os.environ without any variable the daemon reads."""
    return {key: value for key, value in os.environ.items() if key not in DAEMON_ENV_VARS}


def daemon_args(
    src: PathLike,
    dst: PathLike,
    backend: str,
    *extra: str,
    delay: str = "0",
    log_level: str = "debug",
) -> list[str]:
    """Command-line arguments for one pair."""
    return [
        os.fsdecode(src),
        os.fsdecode(dst),
        "--delay",
        delay,
        "--backend",
        backend,
        "--log-level",
        log_level,
        *extra,
    ]


class Daemon:
    """One `python -m pylsyncd` process whose stderr is drained into `lines` by a thread.

    Each line is also echoed to the test's stderr, so pytest shows the daemon's log next to a
    failure.
    """

    def __init__(self) -> None:
        self.args: list[str] = []
        self.lines: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._changed = threading.Condition()
        self._eof = False
        self._drain: threading.Thread | None = None

    def start(self, args: Sequence[str], *, wrapper: Sequence[str] = ()) -> Daemon:
        """Start the daemon with `args` and a clean environment, through `wrapper` if given
        (a command that runs the rest of its arguments, such as `setpriv ... --`)."""
        assert self.process is None, "a Daemon runs once; make a new one to restart"
        self.args = list(args)
        self.process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "pylsyncd", *self.args],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=clean_environment(),
            # Its own process group: cleanup can kill it and anything it left behind.
            start_new_session=True,
        )
        assert self.process.stderr is not None
        self._drain = threading.Thread(
            target=self._read, args=(self.process.stderr,), name="daemon-stderr", daemon=True
        )
        self._drain.start()
        return self

    def _read(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "backslashreplace").rstrip("\n")
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
            # pytest's capture may be closed under us: the line is still in self.lines.
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"[pylsyncd] {line}\n")
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        assert self.process is not None
        return self.process.pid

    def exited(self) -> bool:
        """Whether the process has ended."""
        return self.process is not None and self.process.poll() is not None

    def mark(self) -> int:
        """The number of lines logged so far: pass it as `since` to wait for a newer line."""
        with self._changed:
            return len(self.lines)

    def log_text(self) -> str:
        """Everything logged so far."""
        with self._changed:
            return "\n".join(self.lines)

    def report(self, tail: int = TAIL_LINES) -> str:
        """The command, its exit status and the end of its log, for failure messages."""
        code = self.process.poll() if self.process is not None else None
        status = "running" if code is None else f"exited {code}"
        with self._changed:
            lines = self.lines[-tail:]
            skipped = len(self.lines) - len(lines)
        header = f"--- pylsyncd {' '.join(map(repr, self.args))} ({status}); log"
        if skipped:
            header += f" (last {len(lines)} of {len(lines) + skipped} lines)"
        return "\n".join([header + ":", *lines, "---"])

    def wait_for_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match[str]:
        """Wait for a log line (from line number `since` on) matching the regex `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            checked = since
            while True:
                for line in self.lines[checked:]:
                    match = regex.search(line)
                    if match:
                        return match
                checked = max(checked, len(self.lines))
                if self._eof:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        if self._eof and self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        why = "the daemon closed its stderr" if self._eof else f"nothing after {timeout:.1f} s"
        raise AssertionError(f"no log line matching /{pattern}/ ({why})\n{self.report()}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every pair has done its initial sync and is watching."""
        self.wait_for_log(READY, timeout)

    def send(self, signum: int) -> None:
        """Send a signal to the daemon (not to its group)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the daemon had already exited\n{self.report()}")
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = 20.0) -> int:
        """Wait for the process to end (killing it at the deadline) and its log to be drained."""
        assert self.process is not None
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the daemon did not exit within {timeout:.1f} s; killed\n{self.report()}"
            ) from None
        self._join()
        return status

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Signal the daemon (SIGTERM by default) and assert it exits 0 before the deadline."""
        self.send(signum)
        status = self.wait_exit(timeout)
        assert status == 0, f"the daemon exited {status} after {signal.Signals(signum).name}\n" + (
            self.report()
        )

    def kill(self) -> None:
        """SIGKILL the daemon's process group and reap it; safe to call at any time."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self._join()

    def _join(self) -> None:
        if self._drain is not None:
            self._drain.join(timeout=10)
            if not self._drain.is_alive():
                self._drain = None
                if self.process is not None and self.process.stderr is not None:
                    self.process.stderr.close()


class DaemonPool:
    """Daemons started by one test; `close()` kills whatever still runs."""

    def __init__(self) -> None:
        self.daemons: list[Daemon] = []

    def start(self, args: Sequence[str], *, wrapper: Sequence[str] = ()) -> Daemon:
        """Start a new daemon with `args` (see daemon_args), through `wrapper` if given."""
        daemon = Daemon()
        self.daemons.append(daemon)
        return daemon.start(args, wrapper=wrapper)

    def close(self) -> None:
        """Kill and reap every daemon still running; no thread or pipe is left open."""
        for daemon in self.daemons:
            daemon.kill()


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m pylsyncd ARGS` in `cwd`, its output captured; `env` added to os.environ."""
    return subprocess.run(
        [sys.executable, "-m", "pylsyncd", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )
