"""Run every benchmark and write the results: JSON, docs/benchmarks.md and the PNG chart.

./dev bench                      # full sizes, on a tmpfs mounted for the run; writes docs/
./dev bench --size quick         # smaller, for iterating; writes /tmp/pylsyncd-bench-results
./dev bench --peers pylsyncd-direct,lsyncd-direct --workloads live
./dev bench --workloads mount    # host mounts without inotify, through bindfs (several minutes)
./dev bench --workloads files    # big files, editor saves, a real tree, 100,000 directories
./dev bench --workloads gitignore    # the storm inside 50 nested .gitignore files, GITIGNORE on/off
./dev bench --workloads observe --out /tmp/observe   # metrics on vs off; an idle container
./dev bench --workloads remote --merge   # over ssh beside lsyncd's rsyncssh; fan-out (13 min)
./dev bench --workloads two-way --merge  # two-way beside unison (18 min)
.venv/bin/python -m benchmarks.run --render docs/benchmarks.json   # redo the page and chart
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from benchmarks import chart, procfs, report
from benchmarks.big_files import run_files
from benchmarks.daemons import PEERS, Peer
from benchmarks.gitignore_storm import measure_gitignore
from benchmarks.host_mount import LSYNCD, PYLSYNCD, MountBench
from benchmarks.initial_sync import measure_initial_sync, progress
from benchmarks.observe import run_observe
from benchmarks.remote import run_remote
from benchmarks.sizes import SIZES, Sizes
from benchmarks.two_way import run_two_way
from benchmarks.workloads import LiveRun, measure_idle

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TMPFS = "/tmp/pylsyncd-bench"
WORKLOADS = (
    "live", "initial", "idle", "mount", "files", "gitignore", "observe", "remote", "two-way",
)  # fmt: skip
# observe needs a Docker engine (started here as root when none answers), remote and two-way
# take minutes beside the default run's: asked for by name.
DEFAULT_WORKLOADS = ("live", "initial", "idle", "mount", "files", "gitignore")


@contextlib.contextmanager
def workspace(directory: str | None) -> Iterator[str]:
    """The directory to work in: the one given, or a tmpfs mounted for the run (as root)."""
    if directory is not None:
        root = os.path.join(directory, "pylsyncd-bench")
        os.makedirs(root)
        try:
            yield root
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    if os.geteuid() != 0:
        raise SystemExit("bench: mounting a tmpfs needs root; or give --dir DIR (e.g. /dev/shm)")
    os.makedirs(TMPFS, exist_ok=True)
    if os.path.ismount(TMPFS):
        raise SystemExit(f"bench: {TMPFS} is mounted already (another run?); unmount it first")
    # tmpfs: no disk in the figures, and the same for every contender. The size is a limit.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", TMPFS], check=True)
    try:
        yield TMPFS
    finally:
        subprocess.run(["umount", TMPFS], check=False)
        os.rmdir(TMPFS)


# Groups that run a program besides the daemons; a missing one stops the run before it starts.
_GROUP_TOOLS = (
    ("remote", "/usr/sbin/sshd", "openssh-server"),
    ("remote", "ssh", "openssh-client"),
    ("two-way", "unison", "unison"),
)


def _check_tools(workloads: list[str]) -> None:
    missing = [
        f"{tool} (apt-get install {package}) for --workloads {group}"
        for group, tool, package in _GROUP_TOOLS
        if group in workloads and shutil.which(tool) is None
    ]
    if missing:
        raise SystemExit(f"bench: {missing[0]}, or leave that group out")
    if "mount" in workloads and (shutil.which("bindfs") is None or not os.path.exists("/dev/fuse")):
        raise SystemExit(
            "bench: the mount workloads need bindfs and /dev/fuse (apt-get install bindfs),"
            " or leave them out (--workloads live,initial,idle)"
        )


def _peers(names: str) -> list[Peer]:
    by_key = {peer.key: peer for peer in PEERS}
    unknown = [name for name in names.split(",") if name not in by_key]
    if unknown:
        raise SystemExit(f"bench: unknown peer {unknown[0]!r}; choose from {', '.join(by_key)}")
    peers = [by_key[name] for name in names.split(",")]
    if any(peer.program == "lsyncd" for peer in peers) and shutil.which("lsyncd") is None:
        raise SystemExit("bench: lsyncd is not installed (apt-get install lsyncd), or leave it out")
    return peers


def run(
    sizes: Sizes, peers: list[Peer], workloads: list[str], root: str, mount_options: str = ""
) -> dict[str, Any]:
    """Every chosen workload for every chosen daemon; returns what goes into the JSON."""
    results: dict[str, Any] = {
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "sizes": asdict(sizes),
        "machine": procfs.machine_description()
        | {"filesystem": procfs.filesystem_of(root), "load_before": procfs.load_average()},
        "live": {},
        "initial_sync": {},
        "idle": {},
        "mount": {},
        "files": {},
        "gitignore": {},
    }
    began = time.perf_counter()
    if "live" in workloads:
        for peer in peers:
            progress(f"live workloads, {peer.key} ...")
            live = LiveRun(peer, f"{root}/live-{peer.key}", sizes).run()
            results["live"][peer.key] = asdict(live)
            progress(f"  {json.dumps(results['live'][peer.key])}")
            subprocess.run(["rm", "-rf", f"{root}/live-{peer.key}"], check=True)
    if "initial" in workloads:
        for name, entry in measure_initial_sync(peers, f"{root}/initial", sizes).items():
            results["initial_sync"][name] = asdict(entry) | {
                "seconds": entry.seconds,
                "cpu_seconds": entry.cpu_seconds,
            }
    if "idle" in workloads:
        for peer in peers:
            idle = measure_idle(peer, f"{root}/idle-{peer.key}", sizes)
            results["idle"][peer.key] = asdict(idle)
            progress(f"idle, {peer.key}: {json.dumps(results['idle'][peer.key])}")
    if "mount" in workloads:
        progress("host mount workloads (bindfs) ...")
        bench = MountBench(f"{root}/mount", sizes.mount, mount_options)
        results["mount"] = bench.run(PYLSYNCD in peers, LSYNCD in peers)
    if "files" in workloads:
        results["files"] = run_files(peers, f"{root}/files", sizes.files)
    if "gitignore" in workloads:
        results["gitignore"] = measure_gitignore(peers, f"{root}/gitignore", sizes)
    if "observe" in workloads:
        results["observe"] = run_observe(root, sizes)
    if "remote" in workloads:
        results["remote"] = run_remote(peers, f"{root}/remote", sizes)
    if "two-way" in workloads:
        results["two_way"] = run_two_way(f"{root}/two-way", sizes)
    results["duration_seconds"] = time.perf_counter() - began
    results["machine"]["load_after"] = procfs.load_average()
    return results


_KEYS = {"initial": "initial_sync", "two-way": "two_way"}  # group name -> its key in the JSON


def merged(path: str, results: dict[str, Any], workloads: list[str]) -> dict[str, Any]:
    """The JSON at `path` with the groups just run replaced, and this run's machine noted."""
    if not os.path.exists(path):
        return results  # nothing to merge into: this run is the whole page
    with open(path) as saved:
        earlier: dict[str, Any] = json.load(saved)
    for group in workloads:
        key = _KEYS.get(group, group)
        earlier[key] = results[key]
        earlier.setdefault("runs", {})[key] = {
            "started": results["started"],
            "machine": results["machine"],
            "sizes": results["sizes"]["name"],
        }
    return earlier


def write_outputs(results: dict[str, Any], out: str) -> None:
    """benchmarks.json, benchmarks.md and benchmarks.png in `out`."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "benchmarks.json"), "w") as written:
        json.dump(results, written, indent=2)
        written.write("\n")
    report.write_markdown(results, os.path.join(out, "benchmarks.md"))
    chart.write_chart(results, os.path.join(out, "benchmarks.png"))
    progress(f"wrote {out}/benchmarks.json, benchmarks.md, benchmarks.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument("--quick", action="store_const", const="quick", dest="size")
    parser.add_argument(
        "--peers",
        default=",".join(peer.key for peer in PEERS),
        help="comma-separated daemons to run (default: all four)",
    )
    parser.add_argument(
        "--workloads",
        default=",".join(DEFAULT_WORKLOADS),
        help="comma-separated: " + ",".join(WORKLOADS) + " (default: all but observe)",
    )
    parser.add_argument(
        "--mount-options",
        default="",
        help="bindfs -o options for the mount workloads (default: none, bindfs's own)",
    )
    parser.add_argument("--dir", help="work here instead of on a tmpfs mounted for the run")
    parser.add_argument(
        "--out", help="where results go (default: docs/ for full sizes, else /tmp/...)"
    )
    parser.add_argument("--render", metavar="JSON", help="only redo the page and chart from JSON")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other groups' figures of the JSON in --out; replace only those run",
    )
    args = parser.parse_args(argv)
    # TERM (a timeout, a CI stop) unwinds like Ctrl-C: daemons are stopped, the tmpfs unmounted.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.render:
        with open(args.render) as saved:
            results = json.load(saved)
        write_outputs(results, args.out or os.path.dirname(os.path.abspath(args.render)))
        return 0
    workloads = args.workloads.split(",")
    if not set(workloads) <= set(WORKLOADS):
        parser.error(f"--workloads: choose from {', '.join(WORKLOADS)}")
    _check_tools(workloads)
    sizes = SIZES[args.size]
    out = args.out or (
        os.path.join(REPOSITORY, "docs") if sizes.name == "full" else "/tmp/pylsyncd-bench-results"
    )
    with workspace(args.dir) as root:
        results = run(sizes, _peers(args.peers), workloads, root, args.mount_options)
    if args.merge:
        results = merged(os.path.join(out, "benchmarks.json"), results, workloads)
    write_outputs(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
