"""The "remote" group (`--workloads remote`): mirroring over ssh, beside lsyncd's rsyncssh.

pylsyncd with an `ssh://` destination and lsyncd 2.2.3 with `default.rsyncssh`, both into Debian's
sshd on 127.0.0.1 with DELAY=0:
- the live workloads (one edit, the storm, its rename and delete), as for local daemons;
- a real tree copied into the source, for pylsyncd's local rsync backend, over ssh, and lsyncd;
- fan-out: one source to three targets on three sshds, then one sshd killed: the live targets'
  one-edit latency beside a single target's, and how long the killed one takes to catch up once
  its sshd is back. One source in several pairs is how the configuration takes several
  destinations today (a watcher per pair); the figure is the one a shared watcher must beat.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import trees
from benchmarks.daemons import Daemon, DaemonFactory, Peer
from benchmarks.edit_rounds import EditRound, edit_round
from benchmarks.initial_sync import progress
from benchmarks.loopback_ssh import (
    LSYNCD_RSYNCSSH,
    PYLSYNCD_REMOTE,
    Sshd,
    SshDaemon,
    Target,
    over,
    start_server,
)
from benchmarks.sizes import RemoteSizes, Sizes
from benchmarks.tree_copy import TreeListing, measure_tree_copy
from benchmarks.workloads import LiveRun, percentile

PYLSYNCD_RSYNC = Peer("pylsyncd", "rsync")
_READY_TIMEOUT = 300.0
TARGETS = 3


@dataclass
class QuietRename:
    """A rename of the storm's tree long after it was written (the daemon started on it)."""

    files: int
    after: float  # seconds from ready to the rename
    seconds: float | None  # every file under the new name and the old name gone
    equal_seconds: float | None  # until the full comparison finds the replica equal


@dataclass
class Floor:
    """One file's rsync through an ssh master connection already open: what an edit costs."""

    runs: int
    p50_ms: float
    p99_ms: float


@dataclass
class FanOut:
    """One edit to one target, to three, and to the two left when the third's sshd is killed."""

    single: EditRound
    three: EditRound  # until all three hold the edit
    live: EditRound  # one sshd killed: until both live ones hold it
    ratio: float | None  # live p50 / single p50
    catch_up_seconds: float | None  # the killed one, from its sshd's restart to equal
    complete: bool  # the live replicas equal to the source after the edits


def peers_of(peers: list[Peer]) -> list[Peer]:
    """The group's contenders: pylsyncd over ssh, and lsyncd's rsyncssh when lsyncd is run."""
    lsyncd = any(peer.program == "lsyncd" for peer in peers)
    return [PYLSYNCD_REMOTE, *([LSYNCD_RSYNCSSH] if lsyncd else [])]


def run_remote(peers: list[Peer], root: str, sizes: Sizes) -> dict[str, Any]:
    """Every workload of the group; what goes into results["remote"]."""
    began = time.perf_counter()
    os.makedirs(root)
    servers = [start_server(f"{root}/sshd{n}") for n in range(TARGETS)]
    contenders = peers_of(peers)
    group: dict[str, Any] = {"live": {}, "real_tree": {}, "fan_out": {}}
    try:
        for peer in contenders:
            progress(f"remote live workloads, {peer.key} ...")
            logins = servers[0].logins()
            run = LiveRun(peer, f"{root}/live-{peer.key}", sizes, over(servers[0]))
            group["live"][peer.key] = asdict(run.run())
            group["live"][peer.key]["logins"] = servers[0].logins() - logins
            progress(f"  {group['live'][peer.key]}")
            subprocess.run(["rm", "-rf", f"{root}/live-{peer.key}"], check=True)
        group["floor"] = asdict(measure_floor(f"{root}/floor", servers[0], sizes.edits))
        group["quiet_rename"] = {}
        renames = [(peer, over(servers[0])) for peer in contenders]
        if PYLSYNCD_RSYNC in peers:
            renames.insert(0, (PYLSYNCD_RSYNC, Daemon))
        for peer, start_daemon in renames:
            rename = measure_quiet_rename(peer, f"{root}/rename", sizes, start_daemon)
            group["quiet_rename"][peer.key] = asdict(rename)
            progress(f"remote quiet rename, {peer.key}: {group['quiet_rename'][peer.key]}")
        group["real_tree"] = _real_tree(peers, contenders, root, sizes, servers[0])
        for peer in contenders:
            progress(f"remote fan-out, {peer.key} ...")
            fan_out = measure_fan_out(peer, f"{root}/fan-out-{peer.key}", servers, sizes.remote)
            group["fan_out"][peer.key] = asdict(fan_out)
            progress(f"  {group['fan_out'][peer.key]}")
    finally:
        for server in servers:
            server.stop()
    group["duration_seconds"] = time.perf_counter() - began
    shutil.rmtree(root, ignore_errors=True)
    return group


def _real_tree(
    peers: list[Peer], contenders: list[Peer], root: str, sizes: Sizes, server: Sshd
) -> dict[str, Any]:
    """The real tree copied in: pylsyncd's local rsync backend (when run), then over ssh."""
    files = dataclasses.replace(
        sizes.files, real_tree=sizes.remote.real_tree, tree_cap=sizes.remote.tree_cap
    )
    origin = f"{root}/origin"
    subprocess.run(["cp", "-a", files.real_tree, origin], check=True)
    listing = TreeListing(origin)
    runs: list[tuple[Peer, DaemonFactory]] = [(peer, over(server)) for peer in contenders]
    if PYLSYNCD_RSYNC in peers:
        runs.insert(0, (PYLSYNCD_RSYNC, Daemon))
    result: dict[str, Any] = {"path": files.real_tree, "entries": listing.entries}
    for peer, start_daemon in runs:
        progress(f"remote real tree, {peer.key} ...")
        copy = measure_tree_copy(peer, f"{root}/tree", origin, listing, files, start_daemon)
        result[peer.key] = asdict(copy)
        progress(f"  {result[peer.key]}")
    shutil.rmtree(origin)
    return result


def measure_floor(root: str, server: Sshd, count: int) -> Floor:
    """`rsync -a` of one small file, `count` times, through a master connection of our own."""
    os.makedirs(f"{root}/src")
    # A socket's path has at most 107 bytes, and ssh adds 17 while it binds: not below `root`.
    sockets = tempfile.mkdtemp(prefix="pylsyncd-floor-")
    socket = f"{sockets}/master"
    ssh = ["ssh", *server.ssh_args.split(), "-p", str(server.port)]
    master = subprocess.Popen(
        [*ssh, "-M", "-N", "-S", socket, "-o", "ControlPersist=no", "root@127.0.0.1"],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ready = trees.wait_until(
            lambda: os.path.exists(socket) or master.poll() is not None, 30, 0.01
        )
        assert ready is not None and master.poll() is None, (
            "the floor's ssh master did not connect in 30 s (its own error is above)"
        )
        runs = []
        for n in range(count):
            with open(f"{root}/src/edited.txt", "w") as edited:
                edited.write(f"edit {n}\n{'x' * (n % 2)}")
            started = time.perf_counter()
            subprocess.run(
                ["rsync", "-a", "-e", shlex.join([*ssh, "-S", socket]), f"{root}/src/",
                 f"root@127.0.0.1:{root}/dst/"],
                check=True,
            )  # fmt: skip
            runs.append(time.perf_counter() - started)
    finally:
        master.terminate()
        master.wait(10)
        shutil.rmtree(sockets, ignore_errors=True)
    runs.sort()
    shutil.rmtree(root)
    return Floor(len(runs), percentile(runs, 0.5) * 1e3, percentile(runs, 0.99) * 1e3)


def measure_quiet_rename(
    peer: Peer, root: str, sizes: Sizes, start_daemon: DaemonFactory
) -> QuietRename:
    """The storm's tree, synced at start and left alone past the 5 s in which pylsyncd copies a
    renamed tree again (rsync may have missed a file the rename carried), then renamed."""
    source, replica = f"{root}/src", f"{root}/dst"
    os.makedirs(source)
    os.makedirs(replica)
    expected = trees.write_storm(
        f"{source}/tree", sizes.storm_dirs, sizes.storm_files_per_dir, sizes.storm_bytes
    )
    with start_daemon(peer, source, replica, root) as daemon:
        daemon.wait_ready(_READY_TIMEOUT)
        time.sleep(sizes.remote.rename_after)
        renamed = time.perf_counter()
        os.rename(f"{source}/tree", f"{source}/renamed")
        landed = trees.ReplicaProgress(f"{replica}/renamed", expected)
        done = trees.wait_until(
            lambda: not os.path.lexists(f"{replica}/tree") and landed.complete(), sizes.cap, 0.001
        )
        equal = trees.wait_until(lambda: trees.settled(source, replica), sizes.cap, 0.01)
    shutil.rmtree(root)
    return QuietRename(
        files=expected.file_count,
        after=sizes.remote.rename_after,
        seconds=None if done is None else done - renamed,
        equal_seconds=None if equal is None else equal - renamed,
    )


def measure_fan_out(peer: Peer, root: str, servers: list[Sshd], sizes: RemoteSizes) -> FanOut:
    """One target first, then three from one daemon; the third's sshd killed, then restarted."""
    source = f"{root}/src"
    replicas = [f"{root}/dst{n}" for n in range(len(servers))]
    for directory in (source, *replicas):
        os.makedirs(directory)
    edited = f"{source}/edited.txt"
    copies = [f"{replica}/edited.txt" for replica in replicas]
    with SshDaemon(peer, source, [Target(servers[0], replicas[0])], root, "single") as daemon:
        daemon.wait_ready(_READY_TIMEOUT)
        single = edit_round(edited, copies[:1], sizes.fan_out_edits, tag="single")
    targets = [Target(server, replica) for server, replica in zip(servers, replicas, strict=True)]
    with SshDaemon(peer, source, targets, root, "three") as daemon:
        daemon.wait_ready(_READY_TIMEOUT)
        three = edit_round(edited, copies, sizes.fan_out_edits, tag="three")
        servers[-1].stop()
        try:
            live = edit_round(edited, copies[:-1], sizes.fan_out_edits, tag="live")
            complete = all(trees.settled(source, replica) for replica in replicas[:-1])
        finally:
            servers[-1].start()
        back = time.perf_counter()
        converged = trees.wait_until(
            lambda: trees.settled(source, replicas[-1]), sizes.converge_cap, 0.05
        )
    shutil.rmtree(root, ignore_errors=True)
    ratio = None
    if live.p50_ms is not None and single.p50_ms:
        ratio = live.p50_ms / single.p50_ms
    return FanOut(
        single=single,
        three=three,
        live=live,
        ratio=ratio,
        catch_up_seconds=None if converged is None else converged - back,
        complete=complete and live.complete,
    )
