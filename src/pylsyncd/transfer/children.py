"""Stopping the child processes of a transfer: rsync, and the direct backend's helper process.

Each child is started in its own session (`start_new_session=True`): a Ctrl-C in a terminal
reaches the whole foreground process group, and the daemon, not the terminal, decides when a
child stops. Stopping one is TERM, a short wait, then KILL, sent to its whole process group
(rsync forks a receiver and a generator of its own); the child is reaped either way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time

log = logging.getLogger(__name__)

# How long a child that got KILL is waited for. One in an uninterruptible read or write (a hung
# network mount) dies only when that returns: the shutdown must not hang with it.
_KILLED_WAIT = 5.0
# How often a group whose leader has exited is looked at.
_GROUP_POLL = 0.01


def stop_child(process: subprocess.Popen[bytes], *, grace: float) -> None:
    """TERM, up to `grace` seconds for the child to exit, then KILL; reaped either way.

    Safe from a thread other than the one using the child: it only signals and waits.
    """
    if process.poll() is not None:
        return  # exited, and now reaped: its process ID may be given to another process
    _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    # The leader may exit before the rest of its group (rsync's receiver removes its temporary
    # file once its sender is gone): stopped means the whole group is, or it gets KILL.
    if _wait_for_group(process, deadline):
        return
    _signal_group(process, signal.SIGKILL)
    if not _wait_for_group(process, time.monotonic() + _KILLED_WAIT):
        log.warning("process %d did not exit %.0f s after SIGKILL", process.pid, _KILLED_WAIT)


def _wait_for_group(process: subprocess.Popen[bytes], deadline: float) -> bool:
    """Whether the child and every process of its group ended before `deadline`."""
    try:
        process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    # The group's other members are not our children: looked at until none is left. While one
    # is, the group ID cannot be given to a new process.
    while _group_alive(process.pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_GROUP_POLL)
    return True


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member changed its user (it exists)
    return True


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    # The child leads its own session, so its process group ID is its process ID. The whole
    # group may have exited meanwhile.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
