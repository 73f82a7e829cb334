"""CPU time of one whole pass of the polling watcher over an unchanged tree (what its cold pass
spends per POLL_PERIOD), beside `find` on the same tree.

    .venv/bin/python benchmarks/rescan.py [--entries 100000] [--dir /tmp/pylsyncd-rescan]
    .venv/bin/python benchmarks/rescan.py --bindfs [--entries 100500] [--dir /dev/shm/...]

`find SRC -printf '%s %T@ %i\\n' >/dev/null` stats every entry too; the target is a rescan within
2x its CPU time. Both run warm (the tree is scanned once before timing), best of five. The tree
is fresh, so its directories' mtimes are too recent to spare a listing: every directory is
listed and every entry statted, as `find` does.

With --bindfs, the bench's host-mount tree (leaf directories of one file) is seen through bindfs
with its directories' mtimes settled, as the cold pass meets an unchanged tree, and each pass
starts after the mount's attribute cache (1 s) expired, as each entry's does between two visits
of the cold pass: the pass's CPU and bindfs's beside `find`'s, and what the cold pass then costs
at several POLL_PERIODs.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import time

from benchmarks.bindfs import BindMount, bindfs_version, find_pass, make_leaf_tree
from pylsyncd.watch.poll import PollWatcher


def make_tree(root: str, entries: int) -> None:
    per_dir = 100
    for d in range(entries // (per_dir + 1)):
        directory = os.path.join(root, f"d{d // 30}", f"e{d}")
        os.makedirs(directory, exist_ok=True)
        for f in range(per_dir):
            with open(os.path.join(directory, f"f{f}"), "wb") as new:
                new.write(b"x")


def cpu_of_find(root: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["find", root, "-printf", r"%s %T@ %i\n"], stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_of_pass(watcher: PollWatcher) -> float:
    started = time.process_time()
    # A period shorter than the interval: each tick a whole pass. It waits out the rest that
    # follows a long tick (not CPU), then ticks.
    assert watcher.read(None) == []
    return time.process_time() - started


def through_bindfs(root: str, entries: int) -> None:
    host, mount_point = f"{root}/host", f"{root}/mount"
    made = make_leaf_tree(host, round(entries / 2.01))  # 100 leaves a group: 2.01 entries each
    settled = time.time_ns() - 60 * 10**9  # a minute old: no rescan doubts these names
    for top, directories, _ in os.walk(host):
        for name in directories:
            os.utime(os.path.join(top, name), ns=(settled, settled))
    with BindMount(host, mount_point) as mount:
        watcher = PollWatcher(mount_point, interval=0.001, period=0.0005)
        watcher.start()
        cpu_of_pass(watcher)  # the first pass after the load lists the root again
        passes = []
        for _ in range(3):
            time.sleep(1.5)  # past the attribute cache, as between two visits of the cold pass
            fuse = mount.cpu_seconds()
            passes.append((cpu_of_pass(watcher), mount.cpu_seconds() - fuse))
        watcher.close()
        ours, fuse = min(passes)
        time.sleep(1.5)
        find = find_pass(mount, 1)
    print(f"entries: {made} through bindfs ({bindfs_version()}), directories' mtimes settled")
    each = ours / made * 1e6
    print(
        f"one pass, CPU: {ours * 1e3:.0f} ms ({each:.1f} us an entry), bindfs {fuse * 1e3:.0f} ms"
    )
    print(
        f"find, CPU: {find.cpu_seconds * 1e3:.0f} ms, bindfs {find.fuse_cpu_seconds * 1e3:.0f} ms"
    )
    for period in (10, 60, 600):
        print(f"cold pass at POLL_PERIOD={period}: {100 * ours / period:.2f} % of a core")
    shutil.rmtree(host, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dir", default="/tmp/pylsyncd-rescan")
    parser.add_argument("--bindfs", action="store_true", help="through a bindfs mount")
    args = parser.parse_args()
    if args.bindfs:
        shutil.rmtree(args.dir, ignore_errors=True)
        through_bindfs(args.dir, args.entries)
        return
    shutil.rmtree(args.dir, ignore_errors=True)
    make_tree(args.dir, args.entries)
    watcher = PollWatcher(args.dir, interval=0.001, period=0.0005)
    watcher.start()
    entries = len(watcher.scan()) - 1
    cpu_of_find(args.dir)  # warm the caches for both
    cpu_of_pass(watcher)
    rescan = min(cpu_of_pass(watcher) for _ in range(5))
    watcher.close()
    find = min(cpu_of_find(args.dir) for _ in range(5))
    print(f"entries: {entries}")
    print(f"one pass, CPU:      {rescan * 1000:.0f} ms")
    print(f"find -printf, CPU:  {find * 1000:.0f} ms")
    print(f"ratio: {rescan / find:.2f}x (target <= 2x)")
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
