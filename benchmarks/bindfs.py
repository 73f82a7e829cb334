"""A host mount that raises no inotify event for host-side writes, for real: bindfs (FUSE).

Writes made in the underlying directory (the "host side") reach the mount's readers but raise no
inotify event on the mount, as on Docker Desktop's, VirtualBox's and several VM tools' shares;
writes made through the mount do raise events, as on a share that forwards them.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass

from benchmarks import procfs

_MOUNT_TIMEOUT = 10.0


def bindfs_version() -> str:
    """`bindfs 1.14.7`, or "not installed"."""
    if shutil.which("bindfs") is None:
        return "not installed"
    done = subprocess.run(["bindfs", "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0]


class BindMount:
    """`bindfs -f HOST MOUNT` as a child: mounted on enter, unmounted and reaped on exit.

    In the foreground (-f) bindfs stays our child: its CPU can be read (a poll through FUSE costs
    the FUSE server too), and it is never left running behind the bench.
    """

    def __init__(self, host: str, mount: str, options: str = "") -> None:
        self.host = host
        self.mount = mount
        self.options = options
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "not mounted"
        return self._process.pid

    def cpu_seconds(self) -> float:
        """CPU seconds of the FUSE server so far, every thread."""
        return procfs.precise_cpu_seconds(self.pid)

    def __enter__(self) -> BindMount:
        if os.path.ismount(self.mount):
            raise SystemExit(f"bench: {self.mount} is mounted already; unmount it first")
        os.makedirs(self.mount, exist_ok=True)
        command = ["bindfs", "-f", *(["-o", self.options] if self.options else [])]
        self._process = subprocess.Popen(
            [*command, self.host, self.mount], stdin=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + _MOUNT_TIMEOUT
        while not os.path.ismount(self.mount):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise SystemExit(f"bench: bindfs did not mount {self.mount}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # fusermount -u ends bindfs; a lazy umount is the fallback when something still holds the
        # mount (a daemon that was killed, a shell in it), so no mount outlives the bench.
        subprocess.run(["fusermount", "-u", self.mount], check=False, stderr=subprocess.DEVNULL)
        if os.path.ismount(self.mount):
            subprocess.run(["umount", "-l", self.mount], check=False)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_leaf_tree(root: str, directories: int, size: int = 64) -> int:
    """`root/g<k>/d<n>/f`: `directories` leaf directories of one file each, 100 to a group.

    Returns the number of entries below `root` (leaves, their files and the groups).
    """
    payload = b"x" * size
    groups = 0
    os.makedirs(root, exist_ok=True)
    for n in range(directories):
        if n % 100 == 0:
            os.mkdir(f"{root}/g{n // 100}")
            groups += 1
        os.mkdir(leaf := f"{root}/{leaf_directory(n)}")
        descriptor = os.open(f"{leaf}/f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(descriptor, payload)
        os.close(descriptor)
    return 2 * directories + groups


def leaf_directory(n: int) -> str:
    """The relative path of leaf directory number `n` of `make_leaf_tree`."""
    return f"g{n // 100}/d{n}"


@dataclass
class FindPass:
    """`find MOUNT -printf '%s %T@ %i'` (a stat of every entry): one full pass's floor."""

    entries: int
    wall_seconds: float
    cpu_seconds: float  # find's own
    fuse_cpu_seconds: float  # bindfs's, answering it


def find_pass(mount: BindMount, repeats: int) -> FindPass:
    """The fastest of `repeats` runs (the first one warms the caches like the daemon's scans)."""
    best: FindPass | None = None
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        fuse_before = mount.cpu_seconds()
        started = time.perf_counter()
        done = subprocess.run(
            ["find", mount.mount, "-printf", r"%s %T@ %i\n"],
            stdout=subprocess.PIPE,
            check=True,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        found = FindPass(
            entries=done.stdout.count(b"\n") - 1,  # not the root itself
            wall_seconds=wall,
            cpu_seconds=cpu,
            fuse_cpu_seconds=mount.cpu_seconds() - fuse_before,
        )
        if best is None or found.wall_seconds < best.wall_seconds:
            best = found
    assert best is not None, "repeats must be at least 1"
    return best


def attribute_cache_seconds(host: str, mount: str, timeout: float = 5.0) -> float | None:
    """How long a host-side rewrite takes to show in a stat through the mount.

    FUSE keeps a file's attributes for `attr_timeout` (1 s unless the mount says otherwise): no
    stat-based poll can see a host-side rewrite sooner. None when it did not show in `timeout`.
    """
    probe = "attribute-cache-probe"
    with open(f"{host}/{probe}", "wb") as written:
        written.write(b"1")
    os.stat(f"{mount}/{probe}")  # now cached
    with open(f"{host}/{probe}", "wb") as written:
        written.write(b"22")
    rewritten = time.perf_counter()
    try:
        while time.perf_counter() - rewritten < timeout:
            if os.stat(f"{mount}/{probe}").st_size == 2:
                return time.perf_counter() - rewritten
            time.sleep(0.001)
        return None
    finally:
        os.unlink(f"{host}/{probe}")


def watch_line(log_path: str) -> str:
    """What pylsyncd logged it watches with (`poll: fuse`, ...), and what it concluded about the
    mount if it did (`...; the mount forwards events`), or "" when it did not say."""
    with open(log_path, errors="replace") as log:
        text = log.read()
    found = re.findall(r"watching with (.*)", text)
    concluded = re.findall(r": ((?:after all, )?the mount (?:does not )?forwards? events)", text)
    line = found[0].strip() if found else ""
    return f"{line}; {concluded[-1]}" if concluded else line
