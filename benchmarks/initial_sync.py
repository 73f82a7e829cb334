"""Initial sync of a large tree: the daemons (spawn to "live") beside `cp -a` and `rsync -a`.

The floors are what the machine can do: a daemon cannot copy faster than cp. Runs are
interleaved (every contender once, then again) so a burst of load elsewhere on this shared
machine hits all of them alike; the median of the repeats is reported.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from benchmarks import trees
from benchmarks.daemons import Daemon, Peer
from benchmarks.sizes import Sizes

FLOORS = {
    "cp -a": lambda source, replica: ["cp", "-a", f"{source}/.", replica],
    "rsync -a": lambda source, replica: ["rsync", "-a", f"{source}/", replica],
}
_READY_TIMEOUT = 600.0


@dataclass
class InitialSync:
    """Seconds and CPU seconds of each repeat; the medians are reported."""

    files: int
    runs: list[float] = field(default_factory=list)
    cpu_runs: list[float] = field(default_factory=list)
    complete: bool = True

    @property
    def seconds(self) -> float:
        return statistics.median(self.runs)

    @property
    def cpu_seconds(self) -> float:
        return statistics.median(self.cpu_runs)


def progress(message: str) -> None:
    """One line on stderr per measurement, so a long run shows where it is."""
    print(message, file=sys.stderr, flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_floor(name: str, source: str, replica: str) -> tuple[float, float]:
    cpu_before = _children_cpu()
    started = time.perf_counter()
    subprocess.run(FLOORS[name](source, replica), check=True)
    return time.perf_counter() - started, _children_cpu() - cpu_before


def _run_daemon(peer: Peer, source: str, replica: str, workdir: str) -> tuple[float, float]:
    with Daemon(peer, source, replica, workdir) as daemon:
        seconds = daemon.wait_ready(_READY_TIMEOUT)
        return seconds, daemon.cpu_seconds()


def measure_initial_sync(peers: list[Peer], root: str, sizes: Sizes) -> dict[str, InitialSync]:
    """Copy one tree of `initial_files` files with every floor and every daemon, `repeats` times."""
    source = f"{root}/src"
    trees.write_tree(source, sizes.initial_files, sizes.initial_files_per_dir, sizes.initial_bytes)
    contenders = [*FLOORS, *(peer.key for peer in peers)]
    results = {name: InitialSync(files=sizes.initial_files) for name in contenders}
    by_key = {peer.key: peer for peer in peers}
    for repeat in range(sizes.initial_repeats):
        for name in contenders:
            replica = f"{root}/dst"
            os.mkdir(replica)
            if name in FLOORS:
                seconds, cpu = _run_floor(name, source, replica)
            else:
                seconds, cpu = _run_daemon(by_key[name], source, replica, root)
            result = results[name]
            result.runs.append(seconds)
            result.cpu_runs.append(cpu)
            # Compared fully only once: reading 2 x 50,000 files each time adds minutes.
            if repeat == 0:
                result.complete = trees.same_tree(source, replica)
            subprocess.run(["rm", "-rf", replica], check=True)
            progress(f"initial sync, {name}: {seconds:.2f} s, CPU {cpu:.2f} s")
    subprocess.run(["rm", "-rf", source], check=True)
    return results
