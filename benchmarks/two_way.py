"""The "two-way" group (`--workloads two-way`): pylsyncd `--mode two-way` beside unison 2.52.

For each peer, on two fresh sides A and B: one edit A->B and B->A, a storm on either side, the
echo count after edits on alternating sides, and the two-sided churn's lost versions (several
seeds). Then, once for both, the union merge at first start (the files split over both sides)
beside `cp -a` of the union.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import trees
from benchmarks.daemons import Peer
from benchmarks.edit_rounds import EDIT_TIMEOUT, EditRound, edit_round
from benchmarks.initial_sync import progress
from benchmarks.sizes import Sizes
from benchmarks.two_way_churn import run_churn
from benchmarks.unison import PYLSYNCD_TWO_WAY, UNISON, TwoWayDaemon

PEERS = (PYLSYNCD_TWO_WAY, UNISON)
_READY_TIMEOUT = 600.0
_LOG_QUIET = 0.2  # seconds without a log line before the echo count starts


@dataclass
class SideStorm:
    """A storm written on one side, from its last write until the other side holds it all."""

    seconds: float | None  # None: not complete within the cap
    write_seconds: float
    cpu_seconds: float
    complete: bool  # both sides equal afterwards


@dataclass
class Echo:
    """Edits on alternating sides, each waited for; then what else the peer transferred."""

    edits: int
    arrived: int
    batches: int  # pylsyncd: non-empty batches; unison: syncs that transferred something
    items: int
    echo_batches: int  # batches beyond one per edit


@dataclass
class TwoWayLive:
    a_to_b: EditRound
    b_to_a: EditRound
    storm_a: SideStorm  # written on A, arriving on B
    storm_b: SideStorm
    echo: Echo


@dataclass
class UnionRun:
    """First start with no state, each side holding part of the files: spawn to ready."""

    seconds: float | None
    cpu_seconds: float
    ratio: float | None  # to cp -a of the union
    complete: bool  # both sides hold the union


def run_two_way(root: str, sizes: Sizes) -> dict[str, Any]:
    """Every workload of the group for both peers; what goes into results["two_way"]."""
    began = time.perf_counter()
    os.makedirs(root)
    group: dict[str, Any] = {}
    for peer in PEERS:
        progress(f"two-way live workloads, {peer.key} ...")
        live = measure_live(peer, f"{root}/live-{peer.key}", sizes)
        group[peer.key] = {"live": asdict(live)}
        progress(f"  {group[peer.key]['live']}")
        progress(f"two-way churn, {peer.key} ...")
        group[peer.key]["churn"] = run_churn(peer, f"{root}/churn-{peer.key}", sizes.two_way)
        progress(f"  lost versions: {group[peer.key]['churn']['lost']}")
    group["union"] = measure_union(f"{root}/union", sizes)
    group["duration_seconds"] = time.perf_counter() - began
    subprocess.run(["rm", "-rf", root], check=True)
    return group


def measure_live(peer: Peer, root: str, sizes: Sizes) -> TwoWayLive:
    """The edits, the storms and the echo count, on one daemon started on two empty sides."""
    a, b = f"{root}/a", f"{root}/b"
    os.makedirs(a)
    os.makedirs(b)
    edits = sizes.edits if peer.program == "pylsyncd" else sizes.two_way.unison_edits
    echo_edits = sizes.two_way.echo_edits if peer.program == "pylsyncd" else edits
    with TwoWayDaemon(peer, a, b, root) as daemon:
        daemon.wait_ready(_READY_TIMEOUT)
        a_to_b = edit_round(f"{a}/from-a.txt", [f"{b}/from-a.txt"], edits, tag="a")
        b_to_a = edit_round(f"{b}/from-b.txt", [f"{a}/from-b.txt"], edits, tag="b")
        storm_a = _storm(daemon, a, b, "tree-a", sizes)
        storm_b = _storm(daemon, b, a, "tree-b", sizes)
        echo = _echo(daemon, a, b, echo_edits, sizes.two_way.quiet)
    subprocess.run(["rm", "-rf", root], check=True)
    return TwoWayLive(a_to_b, b_to_a, storm_a, storm_b, echo)


def _storm(daemon: TwoWayDaemon, side: str, other: str, name: str, sizes: Sizes) -> SideStorm:
    cpu_before = daemon.cpu_seconds()
    started = time.perf_counter()
    expected = trees.write_storm(
        f"{side}/{name}", sizes.storm_dirs, sizes.storm_files_per_dir, sizes.storm_bytes
    )
    last_write = time.perf_counter()
    progress_ = trees.ReplicaProgress(f"{other}/{name}", expected)
    done = trees.wait_until(progress_.complete, sizes.two_way.cap, 0.001)
    cpu = daemon.cpu_seconds() - cpu_before
    equal = trees.wait_until(lambda: trees.settled(side, other), EDIT_TIMEOUT, 0.05)
    return SideStorm(
        seconds=None if done is None else done - last_write,
        write_seconds=last_write - started,
        cpu_seconds=cpu,
        complete=done is not None and equal is not None,
    )


def _echo(daemon: TwoWayDaemon, a: str, b: str, edits: int, quiet: float) -> Echo:
    """`edits` saves of one file, on A and B in turn, each waited for on the other side.

    Each save is one rename onto the file of a copy written beside the sides (one event, as an
    editor's atomic save), so an edit is one batch and any further batch is an echo. A truncate
    and a write with DELAY=0 would be two batches of two versions, not an echo.
    """
    offset = daemon.quiet_log_offset(_LOG_QUIET, EDIT_TIMEOUT)  # the storms' last batch logged
    arrived = 0
    incoming = f"{os.path.dirname(a)}/incoming"
    for n in range(edits):
        side, other = (a, b) if n % 2 == 0 else (b, a)
        data = f"echo {n:06d}\n{'x' * (n % 3)}".encode()
        with open(incoming, "wb") as written:
            written.write(data)
        os.rename(incoming, f"{side}/echo.txt")
        holds = functools.partial(trees.holds, f"{other}/echo.txt", data)
        if trees.wait_until(holds, EDIT_TIMEOUT, 0.001) is None:
            break
        arrived += 1
        time.sleep(0.01)
    time.sleep(quiet)  # what comes now, with nothing written, is an echo
    batches, items = daemon.transfers_since(offset)
    return Echo(edits, arrived, batches, items, max(0, batches - arrived))


def measure_union(root: str, sizes: Sizes) -> dict[str, Any]:
    """The union written once; `cp -a` of it, then each peer's first start on it split in two."""
    two_way = sizes.two_way
    union = f"{root}/union"
    expected = trees.write_tree(union, two_way.union_files, two_way.union_files_per_dir, 4096)
    cp_runs = []
    for _ in range(sizes.initial_repeats):
        os.makedirs(f"{root}/cp")
        started = time.perf_counter()
        subprocess.run(["cp", "-a", f"{union}/.", f"{root}/cp"], check=True)
        cp_runs.append(time.perf_counter() - started)
        subprocess.run(["rm", "-rf", f"{root}/cp"], check=True)
    cp_seconds = statistics.median(cp_runs)
    result: dict[str, Any] = {"files": two_way.union_files, "cp_runs": cp_runs}
    result["cp_seconds"] = cp_seconds
    for peer in PEERS:
        workdir = f"{root}/{peer.key}"
        a, b = f"{workdir}/a", f"{workdir}/b"
        os.makedirs(workdir)
        subprocess.run(["cp", "-a", union, a], check=True)
        # Every other leaf directory moves to B: both sides hold every top directory, each
        # with half of the files below it.
        for number, directory in enumerate(sorted(expected.files)):
            if number % 2:
                os.makedirs(os.path.dirname(f"{b}/{directory}"), exist_ok=True)
                os.rename(f"{a}/{directory}", f"{b}/{directory}")
        with TwoWayDaemon(peer, a, b, workdir) as daemon:
            try:
                seconds: float | None = daemon.wait_ready(_READY_TIMEOUT)
            except RuntimeError:
                seconds = None
            cpu = daemon.cpu_seconds()
        complete = seconds is not None and trees.settled(union, a) and trees.settled(union, b)
        ratio = None if seconds is None else seconds / cp_seconds
        result[peer.key] = asdict(UnionRun(seconds, cpu, ratio, complete))
        progress(f"two-way union merge, {peer.key}: {result[peer.key]}")
        subprocess.run(["rm", "-rf", workdir], check=True)
    subprocess.run(["rm", "-rf", root], check=True)
    return result
