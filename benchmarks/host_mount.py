"""The host-mount group (`--workloads mount`): pylsyncd with WATCH left at auto on a bindfs mount.

On the tree of `dirs` leaf directories: `find` through the mount, idle CPU after settling, host
edits in untouched ("cold") directories and then in the directory just touched ("hot"), a storm
written on the host side; then a second daemon whose edits are written through the mount (a
share that forwards events): edit latency and idle CPU. On the tree of `big_dirs`: idle CPU and
RSS. lsyncd, when it is among the peers, shows what it sees of a host-side edit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from benchmarks import trees
from benchmarks.bindfs import (
    BindMount,
    FindPass,
    attribute_cache_seconds,
    bindfs_version,
    find_pass,
    leaf_directory,
    make_leaf_tree,
    watch_line,
)
from benchmarks.daemons import Daemon, Peer
from benchmarks.initial_sync import progress
from benchmarks.sizes import MountSizes
from benchmarks.workloads import RssSampler, TreeChange

_READY_TIMEOUT = 900.0
_MIB = 1024 * 1024
PYLSYNCD = Peer("pylsyncd", "direct")
LSYNCD = Peer("lsyncd", "direct")
MUTAGEN_POLL_SECONDS = 10.0  # mutagen's published default poll period: a reference, not run
SLOW_PERIOD = 60.0  # POLL_PERIOD of the idle reference run


@dataclass
class IdleWindow:
    """CPU over a window that starts `settle` seconds after `ready:`; RSS then and at peak."""

    settle_seconds: float
    window_seconds: float
    cpu_seconds: float
    cpu_percent: float
    fuse_cpu_percent: float  # bindfs answering the daemon's scans, beside it
    rss_mb: float
    peak_rss_mb: float


@dataclass
class Changes:
    """Seconds from close() of each write to the destination holding it; None: not in `cap`."""

    kind: str
    cap: float
    seconds: list[float | None] = field(default_factory=list)


@dataclass
class MountTree:
    """The latency tree seen through the mount, with host-side changes."""

    directories: int
    entries: int
    find: FindPass
    ready_seconds: float
    watching: str
    idle: IdleWindow
    cold: Changes
    hot: Changes
    storm: TreeChange
    complete: bool
    # The trade POLL_PERIOD offers: idle CPU with a slower cold pass (a reference, no target).
    slow_period_seconds: float
    slow_period_idle: IdleWindow


@dataclass
class ForwardedRun:
    """A daemon whose changes are all written through the mount (inotify reports them)."""

    ready_seconds: float
    watching: str
    edit: Changes
    idle: IdleWindow


@dataclass
class BigTree:
    directories: int
    entries: int
    find: FindPass
    ready_seconds: float
    idle: IdleWindow


@dataclass
class LsyncdOnMount:
    """lsyncd's `default.direct` on the mount: a host-side edit, then one through the mount."""

    ready_seconds: float
    cap: float
    host_edit_seconds: float | None
    through_mount_seconds: float | None


def daemon_settings(settings: tuple[tuple[str, str], ...]) -> list[str]:
    """The flags of `settings` that this pylsyncd's `--help` lists, flattened."""
    command = [sys.executable, "-m", "pylsyncd", "--help"]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [part for flag, value in settings if flag in text for part in (flag, value)]


def _write(path: str, data: bytes) -> float:
    """Write `data` to `path`; perf_counter() at close()."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(descriptor, data)
    os.close(descriptor)
    return time.perf_counter()


def _arrival(written: str, copy: str, data: bytes, cap: float, every: float) -> float | None:
    closed = _write(written, data)
    arrived = trees.wait_until(lambda: trees.holds(copy, data), cap, every)
    return None if arrived is None else arrived - closed


def _settle_and_measure(
    daemon: Daemon, mount: BindMount, settle: float, window: float
) -> IdleWindow:
    """Wait `settle` seconds (sampling RSS), then the daemon's and bindfs's CPU over `window`."""
    peak = 0
    settled = time.perf_counter() + settle
    while (left := settled - time.perf_counter()) > 0:
        peak = max(peak, daemon.resident_bytes())
        time.sleep(min(0.5, left))
    cpu, fuse = daemon.precise_cpu_seconds(), mount.cpu_seconds()
    ended = time.perf_counter() + window
    while (left := ended - time.perf_counter()) > 0:
        time.sleep(min(0.5, left))  # rare wake-ups: the bench must not steal the daemon's core
        peak = max(peak, daemon.resident_bytes())
    cpu, fuse = daemon.precise_cpu_seconds() - cpu, mount.cpu_seconds() - fuse
    rss = daemon.resident_bytes()
    return IdleWindow(
        settle_seconds=settle,
        window_seconds=window,
        cpu_seconds=cpu,
        cpu_percent=100 * cpu / window,
        fuse_cpu_percent=100 * fuse / window,
        rss_mb=rss / _MIB,
        peak_rss_mb=max(peak, rss) / _MIB,
    )


class MountBench:
    """Every workload of the group, in `root` (host side, mount, destinations, logs)."""

    def __init__(self, root: str, sizes: MountSizes, options: str = "") -> None:
        self.root = root
        self.sizes = sizes
        self.options = options
        self.settings = daemon_settings(sizes.settings)

    def run(self, with_pylsyncd: bool, with_lsyncd: bool) -> dict[str, object]:
        """What goes into the JSON under "mount"."""
        sizes = self.sizes
        results: dict[str, object] = {
            "bindfs": bindfs_version(),
            "bindfs_options": self.options,
            "daemon_settings": self.settings,
            "mutagen_poll_seconds": MUTAGEN_POLL_SECONDS,
        }
        began = time.perf_counter()
        host, mount_point = f"{self.root}/host", f"{self.root}/mount"
        entries = make_leaf_tree(host, sizes.dirs)
        progress(f"mount: tree of {entries} entries built")
        with BindMount(host, mount_point, self.options) as mount:
            results["attribute_cache_seconds"] = attribute_cache_seconds(host, mount_point)
            if with_pylsyncd:
                tree, forwarded = self._latency_tree(mount, entries)
                results["tree"], results["forwarded"] = asdict(tree), asdict(forwarded)
            if with_lsyncd:
                results["lsyncd"] = asdict(self._lsyncd(mount))
        subprocess.run(["rm", "-rf", host], check=True)
        if with_pylsyncd:
            results["big_tree"] = asdict(self._big_tree())
        results["duration_seconds"] = time.perf_counter() - began
        return results

    def _daemon(self, source: str, replica: str, name: str, *more: str) -> Daemon:
        workdir = f"{self.root}/{name}"
        os.makedirs(workdir, exist_ok=True)
        return Daemon(PYLSYNCD, source, replica, workdir, [*self.settings, *more])

    def _latency_tree(self, mount: BindMount, entries: int) -> tuple[MountTree, ForwardedRun]:
        sizes, replica = self.sizes, f"{self.root}/dst"
        find = find_pass(mount, sizes.find_repeats)
        progress(f"mount: find {find}")
        with self._daemon(mount.mount, replica, "host-side") as daemon:
            ready = daemon.wait_ready(_READY_TIMEOUT)
            idle = _settle_and_measure(daemon, mount, sizes.settle, sizes.window)
            progress(f"mount: ready after {ready:.1f} s, idle {idle}")
            cold = self._host_changes("cold", self._cold_directories())
            hot_directory = self._cold_directories()[-1]  # touched just now
            hot = self._host_changes("hot", [hot_directory] * sizes.hot_edits)
            progress(f"mount: {cold}, {hot}")
            storm = self._storm(daemon, hot_directory, replica)
            progress(f"mount: storm {storm}")
            watching = watch_line(daemon.log_path)
        complete = trees.same_tree(mount.mount, replica)
        # The replica is complete: a second initial sync through FUSE would only add minutes.
        with self._daemon(mount.mount, replica, "forwarded", "--no-init") as daemon:
            forwarded_ready = daemon.wait_ready(_READY_TIMEOUT)
            edit = self._forwarded_edits(mount.mount, replica)
            forwarded_idle = _settle_and_measure(daemon, mount, sizes.settle, sizes.window)
            forwarded = ForwardedRun(
                forwarded_ready, watch_line(daemon.log_path), edit, forwarded_idle
            )
        progress(f"mount: forwarded {forwarded}")
        slow = f"{SLOW_PERIOD:g}"
        with self._daemon(
            mount.mount, replica, "slow", "--no-init", "--poll-period", slow
        ) as daemon:
            daemon.wait_ready(_READY_TIMEOUT)
            slow_idle = _settle_and_measure(daemon, mount, sizes.settle, sizes.window)
        progress(f"mount: POLL_PERIOD={slow}: idle {slow_idle}")
        subprocess.run(["rm", "-rf", replica], check=True)
        tree = MountTree(
            sizes.dirs,
            entries,
            find,
            ready,
            watching,
            idle,
            cold,
            hot,
            storm,
            complete,
            SLOW_PERIOD,
            slow_idle,
        )
        return tree, forwarded

    def _cold_directories(self) -> list[str]:
        """Leaf directories spread over the tree, none touched since the start."""
        count, dirs = self.sizes.cold_edits, self.sizes.dirs
        return [leaf_directory((2 * i + 1) * dirs // (2 * count)) for i in range(count)]

    def _host_changes(self, kind: str, directories: list[str]) -> Changes:
        """One change per directory, written on the host side: a new file and a rewrite of the
        existing one in turn (a rewrite leaves the directory's mtime as it was)."""
        host, replica = f"{self.root}/host", f"{self.root}/dst"
        changes = Changes(kind, self.sizes.cap)
        for i, directory in enumerate(directories):
            name = f"{kind}-{i}" if i % 2 == 0 else "f"
            data = f"{kind} change {i}\n{'y' * (i % 3)}".encode()
            changes.seconds.append(
                _arrival(
                    f"{host}/{directory}/{name}",
                    f"{replica}/{directory}/{name}",
                    data,
                    self.sizes.cap,
                    0.001,
                )
            )
            time.sleep(0.1)  # a person's edits are apart
        return changes

    def _storm(self, daemon: Daemon, directory: str, replica: str) -> TreeChange:
        """`storm_files` files in new directories below a hot directory, on the host side."""
        sizes, host = self.sizes, f"{self.root}/host"
        sampler = RssSampler(daemon)
        cpu_before = daemon.cpu_seconds()
        started = time.perf_counter()
        expected = trees.write_storm(
            f"{host}/{directory}/storm", sizes.storm_dirs, sizes.storm_files_per_dir, 1024
        )
        last_write = time.perf_counter()
        landed = trees.ReplicaProgress(f"{replica}/{directory}/storm", expected)
        done_at = trees.wait_until(landed.complete, sizes.cap, 0.002, sampler)
        return TreeChange(
            seconds=None if done_at is None else done_at - last_write,
            capped_at=sizes.cap if done_at is None else None,
            complete=done_at is not None,
            cpu_seconds=daemon.cpu_seconds() - cpu_before,
            write_seconds=last_write - started,
            peak_rss_mb=sampler.peak / _MIB,
        )

    def _forwarded_edits(self, mount: str, replica: str) -> Changes:
        """One file rewritten through the mount `forwarded_edits` times (the first, a create,
        not counted); sizes alternate, as in the live edits. The edits are a person's, apart
        by more than the hot set's interval: what the daemon learns from is separate rescans
        that find only what inotify reported (three of them), as a person's edits give it."""
        directory = leaf_directory(self.sizes.dirs - 1)
        path, copy = f"{mount}/{directory}/edited", f"{replica}/{directory}/edited"
        changes = Changes("forwarded", self.sizes.cap)
        for i in range(self.sizes.forwarded_edits + 1):
            data = f"edit {i:06d}\n{'x' * (i % 2)}".encode()
            seconds = _arrival(path, copy, data, self.sizes.cap, 0)
            if i > 0:
                changes.seconds.append(seconds)
            time.sleep(0.3)
        return changes

    def _lsyncd(self, mount: BindMount) -> LsyncdOnMount:
        sizes, replica = self.sizes, f"{self.root}/dst-lsyncd"
        workdir = f"{self.root}/lsyncd"
        os.makedirs(workdir, exist_ok=True)
        directory = leaf_directory(0)
        with Daemon(LSYNCD, mount.mount, replica, workdir) as daemon:
            ready = daemon.wait_ready(_READY_TIMEOUT)
            host_side = _arrival(
                f"{self.root}/host/{directory}/lsyncd-host",
                f"{replica}/{directory}/lsyncd-host",
                b"written on the host",
                sizes.lsyncd_cap,
                0.005,
            )
            # The control: lsyncd is alive and reports what inotify reports.
            through = _arrival(
                f"{mount.mount}/{directory}/lsyncd-mount",
                f"{replica}/{directory}/lsyncd-mount",
                b"written through the mount",
                sizes.cap,
                0.001,
            )
        subprocess.run(["rm", "-rf", replica], check=True)
        result = LsyncdOnMount(ready, sizes.lsyncd_cap, host_side, through)
        progress(f"mount: lsyncd {result}")
        return result

    def _big_tree(self) -> BigTree:
        sizes = self.sizes
        host, mount_point, replica = (
            f"{self.root}/{n}" for n in ("big-host", "big-mount", "big-dst")
        )
        entries = make_leaf_tree(host, sizes.big_dirs)
        progress(f"mount: big tree of {entries} entries built")
        with BindMount(host, mount_point, self.options) as mount:
            find = find_pass(mount, sizes.find_repeats)
            with self._daemon(mount_point, replica, "big") as daemon:
                ready = daemon.wait_ready(_READY_TIMEOUT)
                idle = _settle_and_measure(daemon, mount, sizes.settle, sizes.window)
        subprocess.run(["rm", "-rf", host, replica], check=True)
        result = BigTree(sizes.big_dirs, entries, find, ready, idle)
        progress(f"mount: big tree {result}")
        return result
