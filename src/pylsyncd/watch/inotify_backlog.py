"""Records read from the kernel's inotify queue, kept until they are turned into events.

The kernel's queue is emptied into the backlog between every two buffers the watcher turns
into events: reading costs little, turning records into events does not, and the kernel's
queue (fs.inotify.max_queued_events, 16,384 by default: a fifth of a second of `cp -a`) would
overflow while the reading thread waits its turn beside a transfer, which costs a comparison of
the whole tree. Past `_BACKLOG_LIMIT` bytes (two million short records), the backlog counts as
an overflow.
"""

from __future__ import annotations

import logging
import os
from collections import deque

from pylsyncd.watch.inotify_kernel import IN_Q_OVERFLOW, RECORD, InotifyInstance

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024  # room for ~2,000 short records per read(2), turned into events at once
_MAX_RECORD = RECORD.size + 256  # a 255-byte name, its NUL and padding to 16 bytes
_BACKLOG_LIMIT = 64 * 1024 * 1024
_OVERFLOW_RECORD = RECORD.pack(-1, IN_Q_OVERFLOW, 0, 0)


class RecordBacklog:
    """Buffers of records read from `inotify`, oldest first."""

    def __init__(self, inotify: InotifyInstance) -> None:
        self._inotify = inotify
        self._buffers: deque[bytes] = deque()
        self._bytes = 0

    def __bool__(self) -> bool:
        return bool(self._buffers)

    def take(self) -> bytes:
        """The oldest buffer (the backlog must not be empty)."""
        data = self._buffers.popleft()
        self._bytes -= len(data)
        return data

    def clear(self) -> None:
        self._buffers.clear()
        self._bytes = 0

    def read_kernel_queue(self) -> None:
        """Move the records the kernel holds into the backlog; past its bound, the backlog
        becomes one overflow record."""
        while self._inotify.fd >= 0:
            try:
                data = os.read(self._inotify.fd, _READ_SIZE)
            except BlockingIOError:
                return
            if self._bytes + len(data) > _BACKLOG_LIMIT:
                log.debug("%d bytes of inotify records unread: an overflow", self._bytes)
                self._buffers.clear()
                data = _OVERFLOW_RECORD
                self._bytes = 0
            self._buffers.append(data)
            self._bytes += len(data)
            if len(data) < _READ_SIZE - _MAX_RECORD:
                return  # the queue was empty: spare the read(2) that would say so
