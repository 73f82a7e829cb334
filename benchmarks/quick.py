"""A quick look at live performance: one edit, a 10,000-file storm, renaming and deleting a tree.

    .venv/bin/python benchmarks/quick.py --backend direct --dir /dev/shm/pylsyncd-bench

Times are wall-clock on whatever machine runs it; it starts the real daemon with DELAY=0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out: the daemon did not converge")
        time.sleep(0.001)


def file_count(root: str) -> int:
    try:
        return sum(len(files) for _, _, files in os.walk(root))
    except OSError:
        return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="direct", choices=["direct", "rsync"])
    parser.add_argument("--dir", default="/dev/shm/pylsyncd-bench")
    parser.add_argument("--edits", type=int, default=200)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    src, dst = f"{args.dir}/src", f"{args.dir}/dst"
    os.makedirs(src)
    command = [
        sys.executable,
        "-m",
        "pylsyncd",
        src,
        dst,
        "--delay",
        "0",
        "--backend",
        args.backend,
    ]
    daemon = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert daemon.stderr is not None
    while "ready:" not in daemon.stderr.readline():
        pass
    try:
        report = run_workloads(src, dst, args.edits)
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(args.dir, ignore_errors=True)
    for name, value in report.items():
        print(f"{args.backend:6} {name:32} {value}")


def run_workloads(src: str, dst: str, edits: int) -> dict[str, str]:
    report = {}
    latencies = []
    for i in range(edits):
        data = f"edit {i:06d}\n".encode()
        with open(f"{src}/f", "wb") as edited:
            edited.write(data)
        closed = time.perf_counter()
        while True:
            try:
                with open(f"{dst}/f", "rb") as copy:
                    if copy.read() == data:
                        break
            except FileNotFoundError:
                pass
        latencies.append(time.perf_counter() - closed)
    latencies.sort()
    report["one edit p50 / p99"] = (
        f"{latencies[len(latencies) // 2] * 1e3:.2f} ms / "
        f"{latencies[int(len(latencies) * 0.99)] * 1e3:.2f} ms"
    )

    started = time.perf_counter()
    for d in range(200):
        os.mkdir(f"{src}/d{d}")
        for n in range(50):
            with open(f"{src}/d{d}/f{n}", "wb") as new:
                new.write(b"x" * 1024)
    last_write = time.perf_counter()
    wait_for(lambda: file_count(dst) == 10_001)
    report["10k-file storm: writing"] = f"{last_write - started:.2f} s"
    report["10k-file storm: after last write"] = f"{time.perf_counter() - last_write:.2f} s"

    os.mkdir(f"{src}/tree")
    for d in range(200):
        os.rename(f"{src}/d{d}", f"{src}/tree/d{d}")
    wait_for(lambda: file_count(f"{dst}/tree") == 10_000)
    renamed = time.perf_counter()
    os.rename(f"{src}/tree", f"{src}/renamed")
    wait_for(
        lambda: os.path.exists(f"{dst}/renamed/d199/f49") and not os.path.exists(f"{dst}/tree")
    )
    report["rename of that tree"] = f"{(time.perf_counter() - renamed) * 1e3:.1f} ms"

    subprocess.run(["rm", "-rf", f"{src}/renamed"], check=True)
    removed = time.perf_counter()
    wait_for(lambda: not os.path.exists(f"{dst}/renamed"))
    report["delete of that tree, after rm"] = f"{(time.perf_counter() - removed) * 1e3:.0f} ms"
    return report


if __name__ == "__main__":
    main()
