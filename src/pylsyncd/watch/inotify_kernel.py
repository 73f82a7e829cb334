"""The kernel side of inotify: constants from <sys/inotify.h>, the three syscalls, the limits,
and an inotify instance that another thread can wake."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import math
import os
import select
import struct
import threading

from pylsyncd.watch import WatchLimitError

# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

WATCH_MASK = (
    IN_CREATE
    | IN_DELETE
    | IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_ATTRIB
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    # IN_ONLYDIR + IN_DONT_FOLLOW: a directory swapped for a symlink after listing is refused
    # (ENOTDIR) instead of watching whatever the link points to, outside the tree.
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    # Files unlinked while still open (editors' temporaries) stop reporting under their old name.
    | IN_EXCL_UNLINK
)

RECORD = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of NUL-padded name

# The system-wide limit, and the one of our user namespace (a rootless or userns container),
# which can be the lower one: a watch has to fit under both.
WATCH_LIMITS = ("fs.inotify.max_user_watches", "user.max_inotify_watches")


_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = (ctypes.c_int,)
_libc.inotify_init1.restype = ctypes.c_int
_libc.inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
_libc.inotify_add_watch.restype = ctypes.c_int
_libc.inotify_rm_watch.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.inotify_rm_watch.restype = ctypes.c_int


def _checked(result: int, path: bytes | None = None) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return result


def inotify_init() -> int:
    """A new non-blocking, close-on-exec inotify descriptor."""
    return _checked(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))


def inotify_add_watch(fd: int, path: bytes, mask: int) -> int:
    """Watch `path` (the same wd again if its inode is already watched); OSError on failure."""
    wd: int = _libc.inotify_add_watch(fd, path, mask)
    return wd if wd >= 0 else _checked(wd, path)  # once per directory of a tree: no extra call


def inotify_rm_watch(fd: int, wd: int) -> None:
    """Stop a watch; the kernel then queues IN_IGNORED for it."""
    _checked(_libc.inotify_rm_watch(fd, wd))


def watch_limit_message(limit: int, missing: int, sysctl: str = WATCH_LIMITS[0]) -> str:
    """What to tell the operator when the kernel refuses a watch at `limit` with `missing` to go."""
    # A quarter of headroom for the tree's growth, then up to a power of two, which is how
    # this sysctl is usually set.
    needed = 1 << (math.ceil((limit + missing) * 1.25) - 1).bit_length()
    return (
        f"out of inotify watches at {limit} (about {missing} more directories to watch): "
        f"raise {sysctl} to at least {needed} (sysctl -w {sysctl}={needed})"
    )


def binding_watch_limit() -> tuple[int, str] | None:
    """The lowest watch limit that applies to us, and its sysctl (the system-wide one on a tie:
    outside user namespaces both name the same value)."""
    limits = []
    for sysctl in WATCH_LIMITS:
        try:
            with open("/proc/sys/" + sysctl.replace(".", "/"), encoding="ascii") as limit_file:
                limits.append((int(limit_file.read()), sysctl))
        except (OSError, ValueError):
            continue
    return min(limits, key=lambda limit: limit[0], default=None)


class InotifyInstance:
    """An inotify descriptor, polled beside an eventfd so that `wake` can end a wait."""

    def __init__(self) -> None:
        self.fd = -1  # the inotify descriptor; -1 until `open` and after `close`
        self._poll = select.poll()
        # An eventfd polled beside the inotify descriptor: `wake` from another thread ends a
        # read that waits without a timeout. The lock keeps `wake` off a descriptor `close`
        # released (its number may already be reused).
        self._wake_fd = -1
        self._wake_lock = threading.Lock()

    def open(self) -> None:
        """Create the descriptors; raises WatchLimitError when out of inotify instances."""
        try:
            self.fd = inotify_init()
        except OSError as error:
            if error.errno != errno.EMFILE:
                raise
            raise WatchLimitError(
                "out of inotify instances: raise fs.inotify.max_user_instances "
                "(sysctl -w fs.inotify.max_user_instances=...)"
            ) from None
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)
        self._poll.register(self._wake_fd, select.POLLIN)

    def ready(self, timeout: float | None) -> bool:
        """Whether inotify events wait to be read; False after `timeout` or a `wake`."""
        ready = self._poll.poll(-1 if timeout is None else max(0, math.ceil(timeout * 1000)))
        if any(fd == self._wake_fd for fd, _ in ready):
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._wake_fd)  # consumed: the next read waits again
        return any(fd == self.fd for fd, _ in ready)

    def wake(self) -> None:
        """End a `ready` waiting in another thread now (or the next one, if none waits)."""
        with self._wake_lock:
            if self._wake_fd >= 0:
                os.eventfd_write(self._wake_fd, 1)

    def remove_watch(self, wd: int) -> None:
        """Stop a watch, which the kernel may have dropped already."""
        try:
            inotify_rm_watch(self.fd, wd)
        except OSError as error:
            if error.errno != errno.EINVAL:  # EINVAL: the kernel dropped it already
                raise

    def close(self) -> None:
        """Release both descriptors (after `open`; not during a `ready`)."""
        with self._wake_lock:
            os.close(self._wake_fd)
            self._wake_fd = -1
        fd, self.fd = self.fd, -1
        os.close(fd)  # drops every watch at once
