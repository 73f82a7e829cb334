"""Live workloads for one daemon: edits, a storm, renaming and deleting the tree; and idle cost.

Every workload ends with a full comparison of source and replica (untimed): a figure from a
replica that was not complete is worthless, so `complete` is recorded beside each time.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass

from benchmarks import trees
from benchmarks.daemons import Daemon, DaemonFactory, Peer
from benchmarks.sizes import Sizes

_EDIT_TIMEOUT = 10.0  # one edit that takes longer is a lost edit, not a slow one
_READY_TIMEOUT = 300.0
_MIB = 1024 * 1024


@dataclass
class EditLatency:
    """From close() of the write to the replica holding the new content."""

    edits: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    complete: bool
    cpu_seconds: float


@dataclass
class TreeChange:
    """From the last source change (write, rename, rm returning) to a complete replica."""

    seconds: float | None  # None when the cap ran out first
    capped_at: float | None
    complete: bool
    cpu_seconds: float
    write_seconds: float | None = None  # how long writing the storm itself took
    peak_rss_mb: float = 0.0
    peak_children_rss_mb: float = 0.0


@dataclass
class IdleCost:
    """CPU and memory while watching many directories and nothing changes."""

    directories: int
    ready_seconds: float
    window_seconds: float
    cpu_seconds: float
    cpu_percent: float
    rss_mb: float
    complete: bool


@dataclass
class LiveResults:
    edit: EditLatency
    storm: TreeChange
    rename: TreeChange
    delete: TreeChange


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: with 200 values p99 is the 198th."""
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


class RssSampler:
    """Peak VmRSS of the daemon and of its children, sampled while a workload runs."""

    def __init__(self, daemon: Daemon, every: float = 0.1) -> None:
        self.daemon = daemon
        self.every = every
        self.next_at = 0.0
        self.peak = 0
        self.peak_children = 0

    def __call__(self) -> None:
        now = time.perf_counter()
        if now < self.next_at:
            return
        # Listing the children scans /proc: not every poll, or the sampler steals the CPU.
        self.next_at = now + self.every
        self.peak = max(self.peak, self.daemon.resident_bytes())
        self.peak_children = max(self.peak_children, self.daemon.children_resident_bytes())


class LiveRun:
    """One daemon mirroring `root/src` into `root/dst`, driven through the live workloads."""

    def __init__(
        self, peer: Peer, root: str, sizes: Sizes, start_daemon: DaemonFactory = Daemon
    ) -> None:
        self.sizes = sizes
        self.source = f"{root}/src"
        self.replica = f"{root}/dst"
        os.makedirs(self.source)
        os.makedirs(self.replica)
        self.daemon = start_daemon(peer, self.source, self.replica, root)

    def run(self) -> LiveResults:
        self.daemon.start()
        try:
            self.daemon.wait_ready(_READY_TIMEOUT)
            edit = self.edits()
            storm, expected = self.storm()
            rename = self.rename(expected)
            delete = self.delete()
        finally:
            self.daemon.stop()
        return LiveResults(edit, storm, rename, delete)

    def _resync(self) -> None:
        """After a capped workload: restart on an equal replica, so the next one starts clean."""
        self.daemon.stop()
        subprocess.run(["rsync", "-a", "--delete", f"{self.source}/", self.replica], check=True)
        self.daemon.start()
        self.daemon.wait_ready(_READY_TIMEOUT)

    def edits(self) -> EditLatency:
        """Rewrite one file `edits` times; the sizes alternate, so rsync's quick check (size and
        mtime) cannot skip an edit that lands within the same mtime tick."""
        path, copy = f"{self.source}/edited.txt", f"{self.replica}/edited.txt"
        cpu_before = self.daemon.cpu_seconds()
        latencies: list[float] = []
        complete = True
        for i in range(self.sizes.edits + 1):  # the first one creates the file: not counted
            data = f"edit {i:06d}\n{'x' * (i % 2)}".encode()
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(descriptor, data)
            os.close(descriptor)
            closed = time.perf_counter()
            arrived = trees.wait_until(functools.partial(trees.holds, copy, data), _EDIT_TIMEOUT, 0)
            if arrived is None:
                complete = False
                break
            if i > 0:
                latencies.append(arrived - closed)
            time.sleep(0.01)  # edits a person makes are apart: each one starts from an idle daemon
        complete = complete and trees.same_tree(self.source, self.replica)
        cpu = self.daemon.cpu_seconds() - cpu_before
        if not complete:
            self._resync()
        latencies.sort()
        return EditLatency(
            edits=len(latencies),
            p50_ms=percentile(latencies, 0.5) * 1e3 if latencies else None,
            p99_ms=percentile(latencies, 0.99) * 1e3 if latencies else None,
            max_ms=latencies[-1] * 1e3 if latencies else None,
            complete=complete,
            cpu_seconds=cpu,
        )

    def _measure(
        self,
        change_done: float,
        finished: trees.ReplicaProgress,
        gone: str | None,
        cpu_before: float,
        sampler: RssSampler,
    ) -> TreeChange:
        """Wait for the replica to hold `finished` (and no longer `gone`), up to the cap."""

        def replica_done() -> bool:
            return (gone is None or not os.path.lexists(gone)) and finished.complete()

        done_at = trees.wait_until(replica_done, self.sizes.cap, 0.001, sampler)
        complete = done_at is not None and trees.same_tree(self.source, self.replica)
        cpu = self.daemon.cpu_seconds() - cpu_before
        if not complete:
            self._resync()
        return TreeChange(
            seconds=None if done_at is None else done_at - change_done,
            capped_at=self.sizes.cap if done_at is None else None,
            complete=complete,
            cpu_seconds=cpu,
            peak_rss_mb=sampler.peak / _MIB,
            peak_children_rss_mb=sampler.peak_children / _MIB,
        )

    def storm(self) -> tuple[TreeChange, trees.ExpectedTree]:
        """Many small files in new directories, written as fast as possible."""
        sizes = self.sizes
        sampler = RssSampler(self.daemon)
        cpu_before = self.daemon.cpu_seconds()
        started = time.perf_counter()
        expected = trees.write_storm(
            f"{self.source}/tree", sizes.storm_dirs, sizes.storm_files_per_dir, sizes.storm_bytes
        )
        last_write = time.perf_counter()
        progress = trees.ReplicaProgress(f"{self.replica}/tree", expected)
        result = self._measure(last_write, progress, None, cpu_before, sampler)
        result.write_seconds = last_write - started
        return result, expected

    def rename(self, expected: trees.ExpectedTree) -> TreeChange:
        """One rename of the whole storm tree."""
        sampler = RssSampler(self.daemon)
        cpu_before = self.daemon.cpu_seconds()
        # The clock is read before the rename: read after it, a preemption of this process in
        # between (a busy shared machine) could hide the daemon's whole reaction.
        renamed = time.perf_counter()
        os.rename(f"{self.source}/tree", f"{self.source}/renamed")
        progress = trees.ReplicaProgress(f"{self.replica}/renamed", expected)
        return self._measure(renamed, progress, f"{self.replica}/tree", cpu_before, sampler)

    def delete(self) -> TreeChange:
        """`rm -rf` of the renamed tree, timed from rm's return."""
        sampler = RssSampler(self.daemon)
        cpu_before = self.daemon.cpu_seconds()
        subprocess.run(["rm", "-rf", f"{self.source}/renamed"], check=True)
        removed = time.perf_counter()
        nothing = trees.ReplicaProgress(self.replica, trees.ExpectedTree())
        return self._measure(removed, nothing, f"{self.replica}/renamed", cpu_before, sampler)


def measure_idle(peer: Peer, root: str, sizes: Sizes) -> IdleCost:
    """Start on `idle_dirs` empty directories, let the daemon settle, then watch it do nothing."""
    source, replica = f"{root}/src", f"{root}/dst"
    trees.make_directories(source, sizes.idle_dirs)
    os.makedirs(replica)
    with Daemon(peer, source, replica, root) as daemon:
        ready = daemon.wait_ready(_READY_TIMEOUT)
        time.sleep(min(1.0, sizes.idle_window))  # the last batch and the log lines settle
        cpu_before = daemon.precise_cpu_seconds()
        time.sleep(sizes.idle_window)
        cpu = daemon.precise_cpu_seconds() - cpu_before
        rss = daemon.resident_bytes()
    complete = trees.same_tree(source, replica)
    shutil.rmtree(root)
    return IdleCost(
        directories=sizes.idle_dirs,
        ready_seconds=ready,
        window_seconds=sizes.idle_window,
        cpu_seconds=cpu,
        cpu_percent=100 * cpu / sizes.idle_window,
        rss_mb=rss / _MIB,
        complete=complete,
    )
