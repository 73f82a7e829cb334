"""A real tree copied into the source, and start on a tree of many directories ("files" group).

`cp -a` of a system directory (timed alone, then with the daemon mirroring it): when the
destination is complete after the copy ends, and what the daemon spent beside the copy's own
CPU. Then start -> ready on many directories of one file each, beside `cp -a` of that tree.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict, dataclass

from benchmarks import trees
from benchmarks.bindfs import make_leaf_tree
from benchmarks.daemons import Daemon, DaemonFactory, Peer
from benchmarks.file_mirror import Mirror, children_cpu_seconds
from benchmarks.initial_sync import progress
from benchmarks.sizes import FilesSizes

_MIB = 1024 * 1024
# The completion check's share of one core: listing the replica's big directories every
# millisecond took a core of the two from the daemon; at a tenth, it finds the replica complete
# at most nine checks' time late (a check lists one directory: a few milliseconds at most).
_CHECK_SHARE = 0.1


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
    peer: Peer,
    root: str,
    origin: str,
    listing: TreeListing,
    sizes: FilesSizes,
    start_daemon: DaemonFactory = Daemon,
) -> TreeCopy:
    """`cp -a` of `origin` (the real tree, copied into the workspace once) without, then with,
    the daemon; the daemon's CPU from just before the copy to the destination complete."""
    os.makedirs(root)
    alone_seconds, alone_cpu = _timed_cp(origin, f"{root}/alone")
    subprocess.run(["rm", "-rf", f"{root}/alone"], check=True)
    with Mirror(peer, f"{root}/mirror", start_daemon) as mirror:
        _, cpu_before = mirror.counters()
        seconds, cpu = _timed_cp(origin, f"{mirror.source}/tree")
        copied = time.perf_counter()
        done = listing.progress(f"{mirror.replica}/tree")
        complete_at = trees.wait_until(done.complete, sizes.tree_cap, 0.001, share=_CHECK_SHARE)
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
