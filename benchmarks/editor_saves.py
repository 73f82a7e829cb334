"""Editor saves for the "files" group: each editor's sequence of system calls, and their timing.

Each `save_*` does what that editor does to save a file (the comment on each says what), so the
daemon sees the same events in the same order; `saves_of` times 100 of them.
"""

from __future__ import annotations

import functools
import getpass
import os
import re
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks import trees
from benchmarks.daemons import Daemon
from benchmarks.sizes import FilesSizes


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
