"""Trees to mirror, and the checks that tell when (and whether) a replica is complete."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ExpectedTree:
    """What a replica must hold below its root: directory -> {file name: size}."""

    files: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def file_count(self) -> int:
        return sum(len(names) for names in self.files.values())


def _write(path: str, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


def write_storm(root: str, directories: int, files_per_directory: int, size: int) -> ExpectedTree:
    """Write `root/d<n>/f<m>` as fast as Python can: one mkdir, then open, write, close each."""
    payload = b"x" * size
    expected = ExpectedTree()
    os.mkdir(root)
    for d in range(directories):
        directory = f"d{d}"
        os.mkdir(f"{root}/{directory}")
        names = {}
        for f in range(files_per_directory):
            _write(f"{root}/{directory}/f{f}", payload)
            names[f"f{f}"] = size
        expected.files[directory] = names
    return expected


def write_tree(root: str, files: int, files_per_directory: int, size: int) -> ExpectedTree:
    """A tree for the initial sync; every file's content differs, so a mix-up shows."""
    expected = ExpectedTree()
    os.makedirs(root, exist_ok=True)
    for n in range(files):
        directory = f"g{n // files_per_directory // 100}/d{n // files_per_directory}"
        if directory not in expected.files:
            os.makedirs(f"{root}/{directory}")
            expected.files[directory] = {}
        header = f"{directory}/f{n}\n".encode()
        _write(f"{root}/{directory}/f{n}", header + b"y" * (size - len(header)))
        expected.files[directory][f"f{n}"] = size
    return expected


def make_directories(root: str, count: int) -> None:
    """`count` directories below `root`, in groups of up to 100 (a parent and its children)."""
    group = max(1, min(100, count))
    made = 0
    os.makedirs(root, exist_ok=True)
    while made < count:
        parent = f"{root}/p{made // group}"
        os.mkdir(parent)
        made += 1
        for child in range(min(group - 1, count - made)):
            os.mkdir(f"{parent}/c{child}")
            made += 1


class ReplicaProgress:
    """Tells cheaply, again and again, whether a replica holds every expected file.

    A directory found complete is not listed again, so a poll costs only the directories still
    missing something: polling does not steal much CPU from the daemon it waits for.
    """

    def __init__(self, root: str, expected: ExpectedTree) -> None:
        self.root = root
        self._pending = dict(expected.files)

    def complete(self) -> bool:
        for directory, names in list(self._pending.items()):
            if not self._directory_complete(f"{self.root}/{directory}", names):
                return False
            del self._pending[directory]
        return True

    @staticmethod
    def _directory_complete(path: str, names: dict[str, int]) -> bool:
        try:
            entries = {entry.name: entry for entry in os.scandir(path)}
        except OSError:
            return False
        for name, size in names.items():
            entry = entries.get(name)
            if entry is None:
                return False
            try:
                if not entry.is_file(follow_symlinks=False) or entry.stat().st_size != size:
                    return False
            except OSError:
                return False
        return True


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    interval: float = 0.001,
    on_poll: Callable[[], None] | None = None,
    share: float = 1.0,
) -> float | None:
    """perf_counter() at the start of the first check that found `condition` true, or None
    after `timeout` seconds.

    The start, not the end: checking a 10,000-file replica takes tens of milliseconds, and a
    rename that lands at once would otherwise be charged for the check itself. `share`: of one
    core, at most what the checks take (after a check of `t` seconds the next waits at least
    `t * (1 / share - 1)`): on 2 cores a check that lists big directories every millisecond
    would take a whole core from a daemon that uses two.
    """
    deadline = time.perf_counter() + timeout
    while True:
        checked = time.perf_counter()
        if condition():
            return checked
        if on_poll is not None:
            on_poll()
        now = time.perf_counter()
        if now > deadline:
            return None
        time.sleep(max(interval, (now - checked) * (1 / share - 1)))


def _listing(root: str) -> dict[str, tuple[str, int]]:
    found: dict[str, tuple[str, int]] = {}
    for directory, subdirectories, files in os.walk(root):
        relative = os.path.relpath(directory, root)
        for name in subdirectories:
            found[os.path.join(relative, name)] = ("dir", 0)
        for name in files:
            path = os.path.join(directory, name)
            try:
                stat = os.lstat(path)
            except FileNotFoundError:
                continue  # a daemon's temporary file, renamed into place meanwhile
            kind = "link" if os.path.islink(path) else "file"
            found[os.path.join(relative, name)] = (kind, stat.st_size)
    return found


def holds(path: str, data: bytes) -> bool:
    """Whether the file at `path` holds exactly `data` (False while it is missing)."""
    try:
        with open(path, "rb") as copy:
            return copy.read() == data
    except OSError:
        return False


def same_tree(source: str, replica: str) -> bool:
    """True when `replica` has exactly the source's entries, types, sizes and file contents."""
    listing = _listing(source)
    if _listing(replica) != listing:
        return False
    for path, (kind, _) in listing.items():
        if kind != "file":
            continue
        with (
            open(os.path.join(source, path), "rb") as original,
            open(os.path.join(replica, path), "rb") as copy,
        ):
            if original.read() != copy.read():
                return False
    return True


def settled(source: str, replica: str) -> bool:
    """`same_tree`, False while a file goes away beneath the look (a daemon still writing)."""
    try:
        return same_tree(source, replica)
    except OSError:
        return False
