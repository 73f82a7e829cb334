"""A stat that asks the file server, not the kernel's attribute cache: for the hot set.

FUSE, virtiofs and NFS mounts keep a file's attributes in the kernel for a while (bindfs and
Docker Desktop's shares: 1 s), so a plain stat right after a change made on the host shows the
old size and mtime, and an edit where the user works would wait that long on top of the hot
set's rescan interval. statx(2) with AT_STATX_FORCE_SYNC fetches them again (one round trip, as
a stat of an expired entry costs anyway). Python 3.11's os module has no statx, so it is called
through ctypes; where the C library or the kernel lacks it, the plain stat is what there is.
"""

from __future__ import annotations

import ctypes
import errno
import os

Stats = tuple[int, int, int, int]  # (mode, size, mtime_ns, inode), as a record keeps them

_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_STATX_FORCE_SYNC = 0x2000
_WANTED = 0x1 | 0x2 | 0x40 | 0x100 | 0x200  # STATX_TYPE, _MODE, _MTIME, _INO, _SIZE


class _Timestamp(ctypes.Structure):
    _fields_ = (("sec", ctypes.c_int64), ("nsec", ctypes.c_uint32), ("reserved", ctypes.c_int32))


class _Statx(ctypes.Structure):
    """struct statx of <linux/stat.h> (256 bytes)."""

    _fields_ = (
        ("mask", ctypes.c_uint32),
        ("blksize", ctypes.c_uint32),
        ("attributes", ctypes.c_uint64),
        ("nlink", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("mode", ctypes.c_uint16),
        ("spare0", ctypes.c_uint16),
        ("ino", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
        ("blocks", ctypes.c_uint64),
        ("attributes_mask", ctypes.c_uint64),
        ("atime", _Timestamp),
        ("btime", _Timestamp),
        ("ctime", _Timestamp),
        ("mtime", _Timestamp),
        ("rdev_major", ctypes.c_uint32),
        ("rdev_minor", ctypes.c_uint32),
        ("dev_major", ctypes.c_uint32),
        ("dev_minor", ctypes.c_uint32),
        ("spare", ctypes.c_uint64 * 14),
    )


def _load_statx() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        function = ctypes.CDLL(None, use_errno=True).statx
    except (OSError, AttributeError):
        return None
    function.argtypes = (
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_Statx),
    )
    function.restype = ctypes.c_int
    return function


_statx = _load_statx()


class FreshStat:
    """Fresh (mode, size, mtime_ns, inode) of entries; one buffer, so one thread per instance."""

    def __init__(self) -> None:
        self._buffer = _Statx()
        self._pointer = ctypes.byref(self._buffer)

    def lstat(self, path: str) -> Stats:
        """The entry at `path`, a symlink not followed."""
        found = self._forced(_AT_FDCWD, path, _AT_SYMLINK_NOFOLLOW)
        return found if found is not None else stats_of(os.lstat(path))

    def stat(self, path: str) -> Stats:
        """The entry at `path`, a symlink followed (a root that is one)."""
        found = self._forced(_AT_FDCWD, path, 0)
        return found if found is not None else stats_of(os.stat(path))

    def stat_at(self, directory_fd: int, name: str) -> Stats:
        """The entry `name` in the open directory, a symlink not followed."""
        found = self._forced(directory_fd, name, _AT_SYMLINK_NOFOLLOW)
        if found is not None:
            return found
        return stats_of(os.stat(name, dir_fd=directory_fd, follow_symlinks=False))

    def fstat(self, fd: int) -> Stats:
        found = self._forced(fd, "", _AT_EMPTY_PATH)
        return found if found is not None else stats_of(os.fstat(fd))

    def _forced(self, fd: int, name: str, flags: int) -> Stats | None:
        """statx with AT_STATX_FORCE_SYNC; None where there is no statx."""
        global _statx
        if _statx is None:
            return None
        if _statx(fd, os.fsencode(name), flags | _AT_STATX_FORCE_SYNC, _WANTED, self._pointer):
            code = ctypes.get_errno()
            if code == errno.ENOSYS:  # a kernel older than 4.11: the plain stat from now on
                _statx = None
                return None
            raise OSError(code, os.strerror(code), name)
        found = self._buffer
        return found.mode, found.size, found.mtime.sec * 10**9 + found.mtime.nsec, found.ino


def stats_of(st: os.stat_result) -> Stats:
    """(mode, size, mtime_ns, inode) of a plain stat."""
    return st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino
