"""CPU seconds and memory of a daemon and its children, read from /proc.

The daemons start short-lived children (rsync, cp, rm, mv): their CPU counts as the daemon's.
A child that was reaped is in the parent's cutime/cstime; one still running is read directly.
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import time
from dataclasses import dataclass

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_LIBC = ctypes.CDLL(None, use_errno=True)
_KIB = 1024  # /proc/PID/status gives VmRSS in kB


@dataclass(frozen=True)
class ProcessTimes:
    """One process's own CPU seconds and those of the children it has reaped."""

    own: float
    reaped_children: float

    @property
    def total(self) -> float:
        return self.own + self.reaped_children


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    # The command name sits in parentheses and may hold spaces; the fields follow the last ")".
    return text[text.rindex(")") + 2 :].split()


def process_times(pid: int) -> ProcessTimes:
    """utime+stime and cutime+cstime of one process (fields 14-17 of /proc/PID/stat)."""
    fields = _stat_fields(pid)
    # After the name: state(3) ppid(4) ... utime is field 14, so index 11 here.
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcessTimes(
        own=(utime + stime) / _TICKS_PER_SECOND,
        reaped_children=(cutime + cstime) / _TICKS_PER_SECOND,
    )


def precise_cpu_seconds(pid: int) -> float:
    """CPU seconds of all the threads of one process, to the nanosecond (its CPU-time clock).

    /proc/PID/stat counts in clock ticks (10 ms): an idle daemon that wakes up ten times a
    second would show 0 or 0.01 s at random. Children are not included.
    """
    clock = ctypes.c_int()
    error = _LIBC.clock_getcpuclockid(pid, ctypes.byref(clock))
    if error:
        raise OSError(error, os.strerror(error))
    return time.clock_gettime(clock.value)


def children_of(pid: int) -> list[int]:
    """Direct children; /proc/PID/task/*/children is not built into every kernel, so scan /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry))[1]) == pid:
                found.append(int(entry))
        except (OSError, ValueError):
            continue  # it exited while we looked
    return found


def descendants_of(pid: int) -> list[int]:
    """Children, grandchildren and so on, at the moment of the call."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = [child for parent in frontier for child in children_of(parent)]
        found.extend(children)
        frontier = children
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, the children it reaped, and the descendants still running."""
    total = process_times(pid).total
    for child in descendants_of(pid):
        try:
            # A child's own reaped children are in its cutime, not in ours.
            total += process_times(child).total
        except OSError:
            continue  # exited between the listing and the read: the parent reaped it or will
    return total


def resident_bytes(pid: int) -> int:
    """VmRSS of one process; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * _KIB
    except OSError:
        pass
    return 0


def children_resident_bytes(pid: int) -> int:
    """VmRSS summed over the descendants running now (rsync's sender, generator, receiver)."""
    return sum(resident_bytes(child) for child in descendants_of(pid))


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return (one, five, fifteen)


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def machine_description() -> dict[str, object]:
    """What the figures depend on: cores, kernel, Python, the peers' versions."""
    return {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rsync": _first_line(["rsync", "--version"]),
        "lsyncd": _first_line(["lsyncd", "-version"]),
        "cp": _first_line(["cp", "--version"]),
    }


def filesystem_of(path: str) -> str:
    """The type of the filesystem holding `path`, from the longest mount point above it."""
    best, fstype = "", "unknown"
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            mount_point = fields[4]
            kind = fields[fields.index("-") + 1]
            inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, fstype = mount_point, kind
    return fstype
