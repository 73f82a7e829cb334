"""The "files" group (`--workloads files`): big files, editor saves, a real tree, many directories.

For each daemon: appends to a big file, in-place rewrites inside one, one big file written (beside
`cp` of it), 100 saves of each editor's pattern, and a system directory copied in with `cp -a`.
Then, once for all daemons, start -> ready on a tree of many directories beside `cp -a` of it.
Bytes written are the daemon's `wchar` (every write(2), copy_file_range(2) and sendfile(2) it and
its children made), read from /proc/PID/io: a reaped child's counters are in its parent's.
"""

from __future__ import annotations

import functools
import getpass
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import procfs, trees
from benchmarks.bindfs import make_leaf_tree
from benchmarks.daemons import Daemon, Peer
from benchmarks.initial_sync import progress
from benchmarks.sizes import FilesSizes

_READY_TIMEOUT = 900.0
_MIB = 1024 * 1024
_BLOCK = 4096  # one append, one rewritten page


def written_bytes(pid: int) -> int:
    """`wchar` of a process (children it reaped included) and of its descendants running now."""
    total = 0
    for process in (pid, *procfs.descendants_of(pid)):
        try:
            with open(f"/proc/{process}/io") as io:
                total += next(int(line.split()[1]) for line in io if line.startswith("wchar:"))
        except OSError:
            continue  # exited between the listing and the read: its parent has its counters
    return total


def children_cpu_seconds() -> float:
    """CPU seconds of the children this process has reaped (cp -a)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def write_file(path: str, size: int, seed: int) -> None:
    """`size` bytes in 1 MiB writes; every MiB differs (its number first), so a mix-up shows."""
    noise = random.Random(seed).randbytes(_MIB)
    with open(path, "wb") as written:
        for number in range(0, size, _MIB):
            written.write((number.to_bytes(8, "little") + noise[8:])[: size - number])


def same_content(first: str, second: str) -> bool:
    """Whether two files hold the same bytes (False while either is missing)."""
    try:
        with open(first, "rb") as one, open(second, "rb") as other:
            while True:
                block = one.read(_MIB)
                if block != other.read(_MIB):
                    return False
                if not block:
                    return True
    except OSError:
        return False


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def wait_equal(source: str, copy: str, cap: float) -> float | None:
    """perf_counter() at the start of the check that found `copy` equal to `source`, or None.

    The size is polled (a stat), the content compared only once the sizes agree.
    """
    size = os.stat(source).st_size

    def equal() -> bool:
        return _size(copy) == size and same_content(source, copy)

    return trees.wait_until(equal, cap, 0.0005)


def pace(start: float, every: float, number: int) -> None:
    """Sleep until the `number`th tick of a schedule: late ticks do not push the later ones."""
    delay = start + number * every - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


@dataclass
class Appends:
    """4 KiB appends to a mirrored file; written bytes during the window and until equal."""

    file_bytes: int
    appends: int
    appended_bytes: int
    window_seconds: float
    written_window_bytes: int
    written_bytes: int
    lag_seconds: float | None  # from the last append to the destination equal; None: capped
    cpu_seconds: float
    complete: bool


@dataclass
class Rewrites:
    """4 KiB pages rewritten in place at random offsets of a mirrored file."""

    file_bytes: int
    rewrites: int
    changed_bytes: int
    written_bytes: int
    lag_seconds: float | None
    cpu_seconds: float
    complete: bool


@dataclass
class BigWrite:
    """One file written in 1 MiB writes, and `cp` of the same file on the same filesystem."""

    file_bytes: int
    write_seconds: float
    seconds: float | None  # from the first write to the destination equal
    after_write_seconds: float | None
    cp_runs: list[float]
    written_bytes: int
    cpu_seconds: float
    complete: bool

    @property
    def cp_seconds(self) -> float:
        return statistics.median(self.cp_runs)


@dataclass
class TreeCopy:
    """`cp -a` of a real tree into the source: alone, then with the daemon mirroring it."""

    path: str
    entries: int
    copy_seconds: float  # no daemon
    copy_cpu_seconds: float
    daemon_copy_seconds: float  # the same copy, the daemon running
    daemon_copy_cpu_seconds: float
    after_copy_seconds: float | None  # from the copy's end to the destination complete
    daemon_cpu_seconds: float
    differing_directories: int  # at the end of the wait, directories not as in the source
    complete: bool


@dataclass
class ManyDirectories:
    """Start -> ready on a tree of directories of one file each, and RSS when ready."""

    directories: int
    ready_seconds: float | None
    rss_mb: float
    complete: bool


@dataclass
class FilesResults:
    """One daemon's figures of the group, but the directories' (measured for all at the end)."""

    appends: Appends
    rewrites: Rewrites
    big_write: BigWrite
    saves: dict[str, SaveRun]
    real_tree: TreeCopy


class Mirror:
    """`root/src` mirrored into `root/dst` by one daemon, started on what the source holds."""

    def __init__(self, peer: Peer, root: str) -> None:
        self.root = root
        self.source, self.replica = f"{root}/src", f"{root}/dst"
        os.makedirs(self.source)
        os.makedirs(self.replica)
        self.daemon = Daemon(peer, self.source, self.replica, root)

    def __enter__(self) -> Mirror:
        self.daemon.start()
        try:
            self.daemon.wait_ready(_READY_TIMEOUT)
        except BaseException:
            self.daemon.stop()
            raise
        return self

    def __exit__(self, *exception: object) -> None:
        self.daemon.stop()

    def counters(self) -> tuple[int, float]:
        """Bytes written and CPU seconds so far, the daemon's children included."""
        return written_bytes(self.daemon.pid), self.daemon.cpu_seconds()

    def remove(self) -> None:
        subprocess.run(["rm", "-rf", self.root], check=True)


def _mirrored(peer: Peer, root: str, size: int, cap: float) -> tuple[Mirror, str, str]:
    """A mirror started on a source holding one file of `size` bytes, and that file equal in it."""
    mirror = Mirror(peer, root)
    source, copy = f"{mirror.source}/big", f"{mirror.replica}/big"
    write_file(source, size, seed=13)
    mirror.__enter__()
    if wait_equal(source, copy, cap + size / (20 * _MIB)) is None:
        mirror.__exit__()
        raise RuntimeError(f"{peer.key}: the first copy of {size} bytes never arrived")
    return mirror, source, copy


def measure_appends(peer: Peer, root: str, sizes: FilesSizes) -> Appends:
    """4 KiB appends, each one `open(O_APPEND)`, write, close as `>>` in a shell does."""
    mirror, source, copy = _mirrored(peer, root, sizes.append_file_bytes, sizes.cap)
    count = max(1, round(sizes.append_seconds / sizes.append_every))
    try:
        written_before, cpu_before = mirror.counters()
        start = time.perf_counter()
        for number in range(count):
            pace(start, sizes.append_every, number)
            descriptor = os.open(source, os.O_WRONLY | os.O_APPEND)
            os.write(descriptor, number.to_bytes(8, "little") * (_BLOCK // 8))
            os.close(descriptor)
        last = time.perf_counter()
        written_window = written_bytes(mirror.daemon.pid) - written_before
        equal_at = wait_equal(source, copy, sizes.cap)
        written_after, cpu_after = mirror.counters()
    finally:
        mirror.__exit__()
    result = Appends(
        file_bytes=sizes.append_file_bytes,
        appends=count,
        appended_bytes=count * _BLOCK,
        window_seconds=last - start,
        written_window_bytes=written_window,
        written_bytes=written_after - written_before,
        lag_seconds=None if equal_at is None else max(0.0, equal_at - last),
        cpu_seconds=cpu_after - cpu_before,
        complete=equal_at is not None and same_content(source, copy),
    )
    mirror.remove()
    return result


def measure_rewrites(peer: Peer, root: str, sizes: FilesSizes) -> Rewrites:
    """Pages rewritten as a database does: open r+b, seek, write 4 KiB, close; 50 ms apart."""
    mirror, source, copy = _mirrored(peer, root, sizes.rewrite_file_bytes, sizes.cap)
    chooser = random.Random(13)
    pages_in_file = sizes.rewrite_file_bytes // _BLOCK
    offsets = [chooser.randrange(pages_in_file) * _BLOCK for _ in range(sizes.rewrites)]
    pages = [chooser.randbytes(_BLOCK) for _ in offsets]
    try:
        written_before, cpu_before = mirror.counters()
        start = time.perf_counter()
        for number, (offset, page) in enumerate(zip(offsets, pages, strict=True)):
            pace(start, sizes.rewrite_every, number)
            with open(source, "r+b") as database:
                database.seek(offset)
                database.write(page)
        last = time.perf_counter()
        # Only the rewritten pages are read while waiting; the whole file is compared once.
        final = dict(zip(offsets, pages, strict=True))
        pages_at = trees.wait_until(lambda: _holds_pages(copy, final), sizes.cap, 0.0005)
        equal_at = None if pages_at is None else wait_equal(source, copy, sizes.cap)
        written_after, cpu_after = mirror.counters()
    finally:
        mirror.__exit__()
    result = Rewrites(
        file_bytes=sizes.rewrite_file_bytes,
        rewrites=len(offsets),
        changed_bytes=len(final) * _BLOCK,
        written_bytes=written_after - written_before,
        lag_seconds=None if equal_at is None or pages_at is None else max(0.0, pages_at - last),
        cpu_seconds=cpu_after - cpu_before,
        complete=equal_at is not None,
    )
    mirror.remove()
    return result


def _holds_pages(path: str, pages: dict[int, bytes]) -> bool:
    try:
        with open(path, "rb") as copy:
            for offset, page in pages.items():
                copy.seek(offset)
                if copy.read(len(page)) != page:
                    return False
    except OSError:
        return False
    return True


def measure_big_write(peer: Peer, root: str, sizes: FilesSizes) -> BigWrite:
    """One file written into the source, then `cp` of it outside the source, three times."""
    with Mirror(peer, root) as mirror:
        source, copy = f"{mirror.source}/big", f"{mirror.replica}/big"
        written_before, cpu_before = mirror.counters()
        start = time.perf_counter()
        write_file(source, sizes.write_bytes, seed=14)
        end = time.perf_counter()
        equal_at = wait_equal(source, copy, sizes.cap)
        written_after, cpu_after = mirror.counters()
    cp_runs = []
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run(["cp", source, f"{root}/cp-copy"], check=True)
        cp_runs.append(time.perf_counter() - began)
        os.unlink(f"{root}/cp-copy")
    result = BigWrite(
        file_bytes=sizes.write_bytes,
        write_seconds=end - start,
        seconds=None if equal_at is None else equal_at - start,
        after_write_seconds=None if equal_at is None else max(0.0, equal_at - end),
        cp_runs=cp_runs,
        written_bytes=written_after - written_before,
        cpu_seconds=cpu_after - cpu_before,
        complete=equal_at is not None,
    )
    mirror.remove()
    return result


def _create(path: str, data: bytes, flags: int = os.O_CREAT | os.O_EXCL) -> None:
    descriptor = os.open(path, os.O_WRONLY | flags, 0o644)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


def save_vim(path: str, data: bytes) -> None:
    """vim's defaults (writebackup, backupcopy=auto): it checks it may create a file in the
    directory (4913, created and removed), renames the file to its backup `file~`, writes a new
    file, fsyncs it, and removes the backup once the write succeeded."""
    probe = os.path.join(os.path.dirname(path), "4913")
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
    os.unlink(probe)
    os.rename(path, f"{path}~")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(descriptor, data)
    os.fsync(descriptor)
    os.close(descriptor)
    os.unlink(f"{path}~")


def save_vscode(path: str, data: bytes) -> None:
    """VS Code (files.saveAtomic off, its default): truncate the file and write it in place."""
    _create(path, data, os.O_TRUNC)


def save_jetbrains(path: str, data: bytes) -> None:
    """JetBrains "safe write": write `file___jb_tmp___`, rename the file to `file___jb_old___`,
    the temporary file to the file, and remove the old one."""
    _create(f"{path}___jb_tmp___", data)
    os.rename(path, f"{path}___jb_old___")
    os.rename(f"{path}___jb_tmp___", path)
    os.unlink(f"{path}___jb_old___")


def save_emacs(path: str, data: bytes) -> None:
    """Emacs with its lock: a dangling symlink `.#file` -> `user@host.pid:boot-time`, the file
    renamed to its backup `file~` (kept), a new file written, then the lock removed."""
    directory, name = os.path.split(path)
    lock = os.path.join(directory, f".#{name}")
    booted = int(time.time() - time.clock_gettime(time.CLOCK_BOOTTIME))
    os.symlink(f"{getpass.getuser()}@{socket.gethostname()}.{os.getpid()}:{booted}", lock)
    os.rename(path, f"{path}~")
    _create(path, data)
    os.unlink(lock)


def save_sed(path: str, data: bytes) -> None:
    """`sed -i`: a temporary `sedXXXXXX` in the same directory, its mode set, renamed over."""
    descriptor, temporary = tempfile.mkstemp(prefix="sed", dir=os.path.dirname(path))
    os.write(descriptor, data)
    os.fchmod(descriptor, 0o644)
    os.close(descriptor)
    os.rename(temporary, path)


EDITORS: dict[str, Callable[[str, bytes], None]] = {
    "vim": save_vim,
    "VS Code": save_vscode,
    "JetBrains": save_jetbrains,
    "emacs": save_emacs,
    "sed -i": save_sed,
}
# A level word where each daemon's log puts it: pylsyncd `date time LEVEL`, lsyncd `time Level:`.
_PROBLEM = re.compile(rb"^(?:\S+ ){1,2}(?:ERROR|WARNING|CRITICAL|Error:|Warn:).*", re.MULTILINE)
_LOST_SAVES = 3  # an editor whose saves stop arriving is not waited for 100 times


@dataclass
class SaveRun:
    """From the end of each save (its last system call) to the destination holding the content."""

    saves: int
    arrived: int
    p50_ms: float | None
    max_ms: float | None
    log_problems: int  # ERROR and WARNING lines in the daemon's log during the saves
    first_problem: str | None  # the first of them, to say what it was
    complete: bool


def _log_size(daemon: Daemon) -> int:
    return os.stat(daemon.log_path).st_size


def _problems_since(daemon: Daemon, offset: int) -> list[str]:
    with open(daemon.log_path, "rb") as log:
        log.seek(offset)
        return [line.decode(errors="replace") for line in _PROBLEM.findall(log.read())]


def saves_of(editor: str, daemon: Daemon, source: str, replica: str, sizes: FilesSizes) -> SaveRun:
    """`saves` saves of one small file in one editor's pattern, 10 ms apart."""
    name = editor.replace(" ", "").replace("-", "") + ".py"
    path, copy = f"{source}/{name}", f"{replica}/{name}"
    body = b"def main() -> None:\n    print('hello')\n" * 20
    _create(path, body)
    trees.wait_until(lambda: trees.holds(copy, body), sizes.cap, 0.0005)
    log_offset = _log_size(daemon)
    latencies: list[float] = []
    lost = 0
    for number in range(sizes.saves):
        if lost >= _LOST_SAVES:
            break
        data = body + f"# save {number}\n{'x' * (number % 2)}".encode()
        EDITORS[editor](path, data)
        saved = time.perf_counter()
        arrived = trees.wait_until(functools.partial(trees.holds, copy, data), sizes.cap / 5, 0)
        if arrived is None:
            lost += 1
        else:
            latencies.append(max(0.0, arrived - saved))
        time.sleep(0.01)
    complete = trees.wait_until(lambda: trees.same_tree(source, replica), sizes.cap, 0.01)
    latencies.sort()
    problems = _problems_since(daemon, log_offset)
    return SaveRun(
        saves=sizes.saves,
        arrived=len(latencies),
        p50_ms=statistics.median(latencies) * 1e3 if latencies else None,
        max_ms=latencies[-1] * 1e3 if latencies else None,
        log_problems=len(problems),
        first_problem=problems[0] if problems else None,
        complete=complete is not None,
    )


def measure_saves(peer: Peer, root: str, sizes: FilesSizes) -> dict[str, SaveRun]:
    """Every editor's save pattern, `saves` times each, on its own file."""
    with Mirror(peer, root) as mirror:
        runs = {
            editor: saves_of(editor, mirror.daemon, mirror.source, mirror.replica, sizes)
            for editor in EDITORS
        }
    mirror.remove()
    return runs


class TreeListing:
    """What a replica of a tree must hold, checked cheaply again and again: a directory found
    complete (names, types, sizes, symlinks by their length) is not listed again."""

    def __init__(self, root: str) -> None:
        self.directories: dict[str, dict[str, tuple[str, int]]] = {}
        for directory, subdirectories, files in os.walk(root):
            names = {name: ("dir", 0) for name in subdirectories}
            for name in [*files, *subdirectories]:
                stat = os.lstat(os.path.join(directory, name))
                if os.path.islink(os.path.join(directory, name)):
                    names[name] = ("link", stat.st_size)
                elif name in files:
                    names[name] = ("file", stat.st_size)
            self.directories[os.path.relpath(directory, root)] = names

    @property
    def entries(self) -> int:
        return sum(len(names) for names in self.directories.values())

    def progress(self, replica: str) -> TreeProgress:
        """A check of `replica` against this listing."""
        return TreeProgress(replica, dict(self.directories))


class TreeProgress:
    """Directories of a replica not yet found holding what the listing expects."""

    def __init__(self, replica: str, pending: dict[str, dict[str, tuple[str, int]]]) -> None:
        self.replica = replica
        self.pending = pending

    def complete(self) -> bool:
        for directory, names in list(self.pending.items()):
            if _listing_of(os.path.join(self.replica, directory)) != names:
                return False
            del self.pending[directory]
        return True

    def differing(self) -> int:
        """How many directories still differ (each one listed again)."""
        self.complete()
        return sum(
            _listing_of(os.path.join(self.replica, directory)) != names
            for directory, names in self.pending.items()
        )


def _listing_of(path: str) -> dict[str, tuple[str, int]] | None:
    try:
        found = {}
        for entry in os.scandir(path):
            stat = entry.stat(follow_symlinks=False)
            kind = "link" if entry.is_symlink() else "dir" if entry.is_dir() else "file"
            found[entry.name] = (kind, 0 if kind == "dir" else stat.st_size)
        return found
    except OSError:
        return None


def _timed_cp(source: str, destination: str) -> tuple[float, float]:
    """Seconds and CPU seconds of one `cp -a`."""
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    subprocess.run(["cp", "-a", source, destination], check=True)
    return time.perf_counter() - started, children_cpu_seconds() - cpu_before


def measure_tree_copy(
    peer: Peer, root: str, origin: str, listing: TreeListing, sizes: FilesSizes
) -> TreeCopy:
    """`cp -a` of `origin` (the real tree, copied into the workspace once) without, then with,
    the daemon; the daemon's CPU from just before the copy to the destination complete."""
    os.makedirs(root)
    alone_seconds, alone_cpu = _timed_cp(origin, f"{root}/alone")
    subprocess.run(["rm", "-rf", f"{root}/alone"], check=True)
    with Mirror(peer, f"{root}/mirror") as mirror:
        _, cpu_before = mirror.counters()
        seconds, cpu = _timed_cp(origin, f"{mirror.source}/tree")
        copied = time.perf_counter()
        done = listing.progress(f"{mirror.replica}/tree")
        complete_at = trees.wait_until(done.complete, sizes.tree_cap, 0.001)
        _, cpu_after = mirror.counters()
        differing = done.differing()
    complete = complete_at is not None and trees.same_tree(mirror.source, mirror.replica)
    subprocess.run(["rm", "-rf", root], check=True)
    return TreeCopy(
        path=sizes.real_tree,
        entries=listing.entries,
        copy_seconds=alone_seconds,
        copy_cpu_seconds=alone_cpu,
        daemon_copy_seconds=seconds,
        daemon_copy_cpu_seconds=cpu,
        after_copy_seconds=None if complete_at is None else max(0.0, complete_at - copied),
        daemon_cpu_seconds=cpu_after - cpu_before,
        differing_directories=differing,
        complete=complete,
    )


def measure_many_directories(
    peers: list[Peer], root: str, sizes: FilesSizes
) -> tuple[dict[str, float], dict[str, ManyDirectories]]:
    """The tree built once; `cp -a` of it, then every daemon from spawn to ready on it."""
    source = f"{root}/src"
    make_leaf_tree(source, sizes.dirs)
    os.makedirs(f"{root}/cp")
    seconds, cpu = _timed_cp(f"{source}/.", f"{root}/cp")
    subprocess.run(["rm", "-rf", f"{root}/cp"], check=True)
    results = {}
    for peer in peers:
        replica = f"{root}/dst"
        os.makedirs(replica)
        with Daemon(peer, source, replica, root) as daemon:
            try:
                ready: float | None = daemon.wait_ready(sizes.tree_cap)
            except RuntimeError:
                ready = None  # not ready within the cap
            rss = daemon.resident_bytes()
        complete = ready is not None and trees.same_tree(source, replica)
        results[peer.key] = ManyDirectories(sizes.dirs, ready, rss / _MIB, complete)
        progress(f"  {peer.key}: {sizes.dirs:,} directories, {asdict(results[peer.key])}")
        subprocess.run(["rm", "-rf", replica], check=True)
    subprocess.run(["rm", "-rf", root], check=True)
    return {"seconds": seconds, "cpu_seconds": cpu}, results


def run_files(peers: list[Peer], root: str, sizes: FilesSizes) -> dict[str, Any]:
    """Every workload of the group for every daemon; what goes into results["files"]."""
    began = time.perf_counter()
    os.makedirs(root)
    origin = f"{root}/origin"
    # Copied from the workspace, not from the disk: every cp -a then reads from the same place.
    subprocess.run(["cp", "-a", sizes.real_tree, origin], check=True)
    listing = TreeListing(origin)
    files: dict[str, Any] = {
        "real_tree": {"path": sizes.real_tree, "entries": listing.entries},
    }
    for peer in peers:
        progress(f"files workloads, {peer.key} ...")
        entry = FilesResults(
            appends=measure_appends(peer, f"{root}/appends", sizes),
            rewrites=measure_rewrites(peer, f"{root}/rewrites", sizes),
            big_write=measure_big_write(peer, f"{root}/write", sizes),
            saves=measure_saves(peer, f"{root}/saves", sizes),
            real_tree=measure_tree_copy(peer, f"{root}/tree", origin, listing, sizes),
        )
        files[peer.key] = asdict(entry) | {"big_write_cp_seconds": entry.big_write.cp_seconds}
        progress(f"  {files[peer.key]}")
    shutil.rmtree(origin)
    progress(f"files workloads, {sizes.dirs:,} directories ...")
    cp, many = measure_many_directories(peers, f"{root}/dirs", sizes)
    files["cp"] = {"dirs": cp}
    for key, result in many.items():
        files[key]["dirs"] = asdict(result)
    files["duration_seconds"] = time.perf_counter() - began
    shutil.rmtree(root, ignore_errors=True)
    return files
