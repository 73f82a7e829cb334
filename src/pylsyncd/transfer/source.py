"""Reads below a source root, one component at a time, never through a symlink.

`os.lstat("src/a/f")` follows `a` when `a` is a symlink: a directory swapped for a link to `.` or
to `/etc` would have its target's files mirrored under the link's name. Here every directory is
opened with O_NOFOLLOW relative to its parent's descriptor, so a path below a symlink simply does
not exist, exactly as rsync sees it.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

from pylsyncd.transfer.directories import (
    DirectoryCache,
    lstat_at,
    open_followed_root,
    split,
)

_DENIED = (errno.EACCES, errno.EPERM)
# O_NONBLOCK: a regular file swapped for a FIFO between the listing and the open must not block
# the transfer (the type is checked with fstat right after); it changes nothing for files.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class SourceEntry(NamedTuple):
    """An entry of a source directory, typed from the listing itself (no stat call)."""

    name: str
    is_dir: bool
    is_file: bool  # a regular file when listed


class SourceChangedError(OSError):
    """The entry is gone, or is no longer what the step before found (a symlink that went between
    lstat and readlink, a file that became a directory before it was opened).

    Not a failure: a source tree lives while it is read, and every such change raises its own
    event. The transfer looks again and syncs the entry as it is now.
    """


# What a step on an entry an earlier step saw raises when it is gone or changed type: gone
# (ENOENT, ENOTDIR for a parent), now a symlink (ELOOP from O_NOFOLLOW), no longer a symlink
# (EINVAL from readlink).
_CHANGED = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EINVAL)


def _changed(error: OSError, path: str) -> OSError:
    if error.errno in _CHANGED:
        return SourceChangedError(error.errno, error.strerror, path)
    return _denied(error, path)


class UnreadableSourceError(PermissionError):
    """The daemon may not read this source entry: it is skipped and reported, not retried.

    Retrying cannot help (only a chmod can, and a chmod raises its own event), and a failure would
    hold back every other change behind the retry backoff.
    """


def _denied(error: OSError, path: str) -> OSError:
    if error.errno in _DENIED:
        return UnreadableSourceError(error.errno, error.strerror, path)
    return error


class SourceTree:
    """Directory descriptors below a source root, cached for the duration of one batch."""

    def __init__(self, root: str) -> None:
        self.root = root
        # A missing directory is remembered as such: this tree is only read.
        self._dirs = DirectoryCache(lambda: open_followed_root(root), remember_missing=True)

    def close(self) -> None:
        self._dirs.close()

    def trim(self, keep: str) -> None:
        """Close cached descriptors beyond MAX_CACHED_DIRS, but never those of `keep` and its
        ancestors: the caller may be holding them."""
        self._dirs.trim(keep)

    def open_dir(self, path: str) -> int | None:
        """Descriptor of the real directory at `path`, or None (missing, a symlink, a file)."""
        try:
            return self._dirs.open(path)
        except OSError as error:
            raise _denied(error, path) from None

    def lstat(self, path: str) -> os.stat_result | None:
        """The entry itself (a symlink is not followed), or None when the path does not exist."""
        if path == "":
            return os.stat(self.root)
        parent, name = split(path)
        parent_fd = self.open_dir(parent)
        if parent_fd is None:
            return None
        try:
            return lstat_at(parent_fd, name)
        except OSError as error:
            raise _denied(error, path) from None

    def open_file(self, path: str) -> int:
        """A read-only descriptor of the regular file at `path`, with its fstat.

        SourceChangedError when it is gone or no longer a regular file.
        """
        parent_fd = self._parent_of(path)
        try:
            return os.open(split(path)[1], _FILE_FLAGS, dir_fd=parent_fd)
        except OSError as error:
            raise _changed(error, path) from None

    def readlink(self, path: str) -> str:
        """The target of the symlink at `path`; SourceChangedError when it is gone or no longer
        a symlink."""
        parent_fd = self._parent_of(path)
        try:
            return os.readlink(split(path)[1], dir_fd=parent_fd)
        except OSError as error:
            raise _changed(error, path) from None

    def _parent_of(self, path: str) -> int:
        parent_fd = self.open_dir(split(path)[0])
        if parent_fd is None:
            raise SourceChangedError(errno.ENOENT, "its directory is gone", path)
        return parent_fd

    def children(self, path: str) -> list[SourceEntry]:
        """The entries of the directory at `path`; SourceChangedError when it is not a
        directory (any more)."""
        fd = self.open_dir(path)
        if fd is None:
            raise SourceChangedError(errno.ENOENT, "no longer a directory", path)
        with os.scandir(fd) as entries:
            return [
                SourceEntry(
                    name=e.name,
                    is_dir=e.is_dir(follow_symlinks=False),
                    is_file=e.is_file(follow_symlinks=False),
                )
                for e in entries
            ]


class BatchLook(SourceTree):
    """A source tree as one batch looks at it, whose every lstat is made once.

    The rsync backend decides several things per path of a batch before it runs rsync (the
    directories whose extras to find, hard links, big files, the paths to list): each looked
    at every path, three lstat calls a path, 0.4 s of a 57,000-path batch. Its directory
    descriptors are closed as it goes beyond MAX_CACHED_DIRS, so `open_dir`'s descriptor is for
    the next call only, never to keep."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self._stats: dict[str, os.stat_result | None] = {}

    def lstat(self, path: str) -> os.stat_result | None:
        if path in self._stats:
            return self._stats[path]
        self.trim(path)
        found = self._stats[path] = super().lstat(path)
        return found

    def is_dir(self, path: str) -> bool:
        """Whether the source has a directory at `path` (an unreadable one counts as none)."""
        try:
            found = self.lstat(path)
        except OSError:
            return False
        return found is not None and stat.S_ISDIR(found.st_mode)

    def children(self, path: str) -> list[SourceEntry]:
        self.trim(path)
        return super().children(path)

    def open_file(self, path: str) -> int:
        self.trim(path)
        return super().open_file(path)

    def readlink(self, path: str) -> str:
        self.trim(path)
        return super().readlink(path)
