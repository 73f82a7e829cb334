"""The "files" group (`--workloads files`): big files, editor saves, a real tree, many directories.

For each daemon: appends to a big file, in-place rewrites inside one, one big file written (beside
`cp` of it), 100 saves of each editor's pattern, and a system directory copied in with `cp -a`.
Then, once for all daemons, start -> ready on a tree of many directories beside `cp -a` of it.
Bytes written are the daemon's `wchar` (every write(2), copy_file_range(2) and sendfile(2) it and
its children made), read from /proc/PID/io: a reaped child's counters are in its parent's.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import trees
from benchmarks.daemons import Peer
from benchmarks.editor_saves import EDITORS, SaveRun, saves_of
from benchmarks.file_mirror import Mirror, written_bytes
from benchmarks.initial_sync import progress
from benchmarks.sizes import FilesSizes
from benchmarks.tree_copy import (
    TreeCopy,
    TreeListing,
    measure_many_directories,
    measure_tree_copy,
)

_READY_TIMEOUT = 900.0
_MIB = 1024 * 1024
_BLOCK = 4096  # one append, one rewritten page


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
    """One file written in 1 MiB writes, the same write with no daemon, and `cp` of the file on
    the same filesystem."""

    file_bytes: int
    write_seconds: float
    seconds: float | None  # from the first write to the destination equal
    after_write_seconds: float | None
    cp_runs: list[float]
    alone_runs: list[float]  # the same write into a directory no daemon watches
    written_bytes: int
    cpu_seconds: float
    complete: bool

    @property
    def cp_seconds(self) -> float:
        return statistics.median(self.cp_runs)

    @property
    def alone_seconds(self) -> float:
        return statistics.median(self.alone_runs)


@dataclass
class FilesResults:
    """One daemon's figures of the group, but the directories' (measured for all at the end)."""

    appends: Appends
    rewrites: Rewrites
    big_write: BigWrite
    saves: dict[str, SaveRun]
    real_tree: TreeCopy


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


def _touch_memory(root: str, size: int) -> None:
    """Write and remove `size` bytes under `root`: in a virtual machine the first touch of a
    page of memory costs several times a later one (a 256 MiB write: 0.45 s, then 0.15 s), and
    no run is to pay it for the others."""
    write_file(f"{root}/touched", size, seed=1)
    os.unlink(f"{root}/touched")


def _write_alone(root: str, size: int) -> float:
    """How long the same write takes into a directory no daemon watches."""
    began = time.perf_counter()
    write_file(f"{root}/alone", size, seed=14)
    seconds = time.perf_counter() - began
    os.unlink(f"{root}/alone")
    return seconds


def measure_big_write(peer: Peer, root: str, sizes: FilesSizes) -> BigWrite:
    """The same write three times into a directory no daemon watches, once into the source,
    then `cp` of the file outside the source, three times; memory touched before each."""
    os.makedirs(root)
    alone_runs = []
    for _ in range(3):
        _touch_memory(root, 3 * sizes.write_bytes)
        alone_runs.append(_write_alone(root, sizes.write_bytes))
    _touch_memory(root, 3 * sizes.write_bytes)
    with Mirror(peer, f"{root}/mirror") as mirror:
        source, copy = f"{mirror.source}/big", f"{mirror.replica}/big"
        written_before, cpu_before = mirror.counters()
        start = time.perf_counter()
        write_file(source, sizes.write_bytes, seed=14)
        end = time.perf_counter()
        equal_at = wait_equal(source, copy, sizes.cap)
        written_after, cpu_after = mirror.counters()
    cp_runs = []
    for _ in range(3):
        _touch_memory(root, sizes.write_bytes)
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
        alone_runs=alone_runs,
        written_bytes=written_after - written_before,
        cpu_seconds=cpu_after - cpu_before,
        complete=equal_at is not None,
    )
    mirror.remove()
    shutil.rmtree(root)
    return result


def measure_saves(peer: Peer, root: str, sizes: FilesSizes) -> dict[str, SaveRun]:
    """Every editor's save pattern, `saves` times each, on its own file."""
    with Mirror(peer, root) as mirror:
        runs = {
            editor: saves_of(editor, mirror.daemon, mirror.source, mirror.replica, sizes)
            for editor in EDITORS
        }
    mirror.remove()
    return runs


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
        files[peer.key] = asdict(entry) | {
            "big_write_cp_seconds": entry.big_write.cp_seconds,
            "big_write_alone_seconds": entry.big_write.alone_seconds,
        }
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
