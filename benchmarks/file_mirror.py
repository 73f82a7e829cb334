"""One daemon mirroring a directory for the "files" group, and what it has written and spent."""

from __future__ import annotations

import os
import resource
import subprocess

from benchmarks import procfs
from benchmarks.daemons import Daemon, DaemonFactory, Peer

# Start -> ready may take long on the trees of many directories (lsyncd walks them twice).
READY_TIMEOUT = 900.0


def written_bytes(pid: int) -> int:
    """`wchar` of a process (children it reaped included) and of its descendants running now."""
    total = 0
    for process in (pid, *procfs.descendants_of(pid)):
        try:
            with open(f"/proc/{process}/io") as io:
                total += next(int(line.split()[1]) for line in io if line.startswith("wchar:"))
        except OSError:
            continue  # exited between the listing and the read: its parent has its counters
    return total


class Mirror:
    """`root/src` mirrored into `root/dst` by one daemon, started on what the source holds."""

    def __init__(self, peer: Peer, root: str, start_daemon: DaemonFactory = Daemon) -> None:
        self.root = root
        self.source, self.replica = f"{root}/src", f"{root}/dst"
        os.makedirs(self.source)
        os.makedirs(self.replica)
        self.daemon = start_daemon(peer, self.source, self.replica, root)

    def __enter__(self) -> Mirror:
        self.daemon.start()
        try:
            self.daemon.wait_ready(READY_TIMEOUT)
        except BaseException:
            self.daemon.stop()
            raise
        return self

    def __exit__(self, *exception: object) -> None:
        self.daemon.stop()

    def counters(self) -> tuple[int, float]:
        """Bytes written and CPU seconds so far, the daemon's children included."""
        return written_bytes(self.daemon.pid), self.daemon.cpu_seconds()

    def remove(self) -> None:
        subprocess.run(["rm", "-rf", self.root], check=True)


def children_cpu_seconds() -> float:
    """CPU seconds of the children this process has reaped (cp -a)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
