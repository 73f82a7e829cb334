"""CPU time of one whole pass of the polling watcher over an unchanged tree (what its cold pass
spends per POLL_PERIOD), beside `find` on the same tree.

    .venv/bin/python benchmarks/rescan.py [--entries 100000] [--dir /tmp/pylsyncd-rescan]

`find SRC -printf '%s %T@ %i\\n' >/dev/null` stats every entry too; the target is a rescan within
2x its CPU time. Both run warm (the tree is scanned once before timing), best of five. The tree
is fresh, so its directories' mtimes are too recent to spare a listing: every directory is
listed and every entry statted, as `find` does.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import time

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
    assert watcher.read(1.0) == []  # a period shorter than the interval: each tick a whole pass
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dir", default="/tmp/pylsyncd-rescan")
    args = parser.parse_args()
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
