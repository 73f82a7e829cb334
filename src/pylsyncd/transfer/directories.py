"""Directory descriptors below a root, opened one component at a time, never through a symlink.

Both trees a direct transfer works on (the source it reads, the destination it writes) reach a
path the same way: each directory is opened with O_NOFOLLOW relative to its parent's descriptor,
so a symlink that exists (or appears) anywhere below the root is never followed. The descriptors
stay open for the duration of one batch, within a bound.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from pylsyncd.events import is_within, parent_of

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Errors that mean "this path does not exist (any more)" rather than a failure.
GONE = (errno.ENOENT, errno.ENOTDIR)
# Directory descriptors a tree keeps open between uses. Caching all of them made a tree of 1,000
# directories exceed the usual limit of 1,024 open files: the initial sync failed with EMFILE,
# again at every retry. Two trees (source, destination) at this bound leave room for the rest.
MAX_CACHED_DIRS = 128

# Opens the root of a tree: its descriptor, or None when the tree says a missing root is no error.
OpenRoot = Callable[[], int | None]


def split(path: str) -> tuple[str, str]:
    """(parent, name) of a relative path."""
    return parent_of(path), path.rpartition("/")[2]


def lstat_at(parent_fd: int, name: str) -> os.stat_result | None:
    """The entry `name` in the directory `parent_fd` itself (a symlink is not followed), or None
    when there is none (any more); other errors are raised."""
    try:
        return os.lstat(name, dir_fd=parent_fd)
    except OSError as error:
        if error.errno in GONE:
            return None
        raise


def open_followed_root(root: str) -> int | None:
    """Open a root that may itself be a symlink (as the user gave it, like rsync's `dir/`);
    None when it is missing."""
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        if error.errno in (*GONE, errno.ELOOP):
            return None
        raise


class DirectoryCache:
    """Descriptors of the real directories below a root, keyed by relative path.

    `remember_missing`: a path found missing (or a symlink, or a file) is cached as None, so it
    is not looked up again; right for a tree only read, wrong for one this daemon creates
    directories in.
    """

    def __init__(self, open_root: OpenRoot, *, remember_missing: bool) -> None:
        self._open_root = open_root
        self._remember_missing = remember_missing
        self._fds: dict[str, int | None] = {}

    def open(self, path: str) -> int | None:
        """Descriptor of the real directory at `path`, or None (missing, a symlink, a file).

        Other errors are raised as they come, for the tree to say what they mean.
        """
        if path in self._fds:
            return self._fds[path]
        fd = self._open(path)
        if fd is not None or self._remember_missing:
            self._fds[path] = fd
        return fd

    def _open(self, path: str) -> int | None:
        if path == "":
            return self._open_root()
        parent, name = split(path)
        parent_fd = self.open(parent)
        if parent_fd is None:
            return None
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        except OSError as error:
            if error.errno in (*GONE, errno.ELOOP):  # ELOOP: a symlink stands there
                return None
            raise

    def add(self, path: str, fd: int) -> None:
        """Keep `fd`, a directory the tree opened itself (it just created it), as `path`'s."""
        self._fds[path] = fd

    def trim(self, keep: str) -> None:
        """Close cached descriptors beyond MAX_CACHED_DIRS, but never those of `keep` and its
        ancestors: the caller may be holding them."""
        if len(self._fds) <= MAX_CACHED_DIRS:
            return
        for path in [path for path in self._fds if not is_within(keep, path)]:
            self._close(path)

    def forget(self, path: str) -> None:
        """Drop cached descriptors at or below `path` (it was renamed or removed)."""
        for key in [key for key in self._fds if is_within(key, path)]:
            self._close(key)

    def close(self) -> None:
        for fd in self._fds.values():
            if fd is not None:
                os.close(fd)
        self._fds.clear()

    def _close(self, path: str) -> None:
        fd = self._fds.pop(path)
        if fd is not None:
            os.close(fd)
