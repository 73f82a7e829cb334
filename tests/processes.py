"""Looking at the processes a test started, through /proc: a daemon's rsync, a probe's sleep."""

from __future__ import annotations

import os


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (rsync runs in its own session, so not in the daemon's group)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as status:
                # The command may contain spaces and parentheses: the ppid follows the last ')'.
                ppid = int(status.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return ""
