"""Safe writes below a destination root: every path is resolved one component at a time.

Each directory is opened with O_NOFOLLOW relative to its parent's descriptor, and every operation
takes a directory descriptor plus a single name. A symlink that exists (or appears) anywhere in
the destination is therefore never followed, so nothing is ever written outside the root.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import shutil
import stat
from collections.abc import Callable
from typing import NamedTuple

from pylsyncd.transfer import Ownership
from pylsyncd.transfer.directories import (
    DIR_FLAGS,
    DirectoryCache,
    lstat_at,
    open_followed_root,
    split,
)
from pylsyncd.transfer.file_content import copy_range
from pylsyncd.transfer.file_content import update as update_content
from pylsyncd.transfer.source import SourceChangedError

# Source-side attributes of a directory, looked up when one has to be created on the way.
DirStat = Callable[[str], os.stat_result | None]


# Temporary names: a random part per process and a counter, not random bytes per file (a
# getrandom call each). O_EXCL turns the unlikely clash with a crashed daemon's leftover into a
# failure that is retried under the next number. os.urandom, not `secrets`: importing that loads
# hashlib and OpenSSL's libcrypto, about 4 MiB of resident memory for the daemon's whole life.
_TEMP_PREFIX = os.urandom(3).hex()
_temp_numbers = itertools.count()


# FICLONE from linux/fs.h: the destination's file shares the other's blocks until written.
_FICLONE = 0x40049409
# What FICLONE answers where the filesystem cannot clone (ext4, tmpfs: EOPNOTSUPP; another
# filesystem: EXDEV; some FUSE and network ones: ENOTTY, EINVAL).
_NO_CLONE = (errno.EOPNOTSUPP, errno.EXDEV, errno.ENOTTY, errno.EINVAL, errno.ENOSYS)
# Devices whose filesystem was found unable to clone: not asked again for the process's life.
_CANNOT_CLONE: set[int] = set()
# Below this size, finding what changed in a file costs more than writing it whole.
_DELTA_MIN = 1 << 20


class FileWrite(NamedTuple):
    """What writing one file did."""

    written: int  # bytes written into the destination
    # False when only an append's new tail was written after a check of the old end: the rest
    # of the file is compared once it stops changing (`Replay`).
    compared: bool


def _worth_comparing(existing: os.stat_result | None, source: os.stat_result) -> bool:
    """Whether the destination's file is worth updating by what changed instead of copying
    the source whole: a regular file of this daemon's (one link: patching it must not change
    another name), and both big enough."""
    return (
        existing is not None
        and stat.S_ISREG(existing.st_mode)
        and existing.st_nlink == 1
        and min(existing.st_size, source.st_size) >= _DELTA_MIN
    )


def temp_name() -> str:
    # Fixed length (NAME_MAX is 255) and a prefix that says whose it is if a crash leaves one.
    return f".pylsyncd.{_TEMP_PREFIX}{next(_temp_numbers) & 0xFFFFFF:06x}.tmp"


class DestinationTree:
    """Directory descriptors below a destination root, cached for the duration of one batch."""

    def __init__(
        self, root: str, source_dir_stat: DirStat, ownership: Ownership, in_place_size: int
    ) -> None:
        self.root = root
        self.in_place_size = in_place_size  # files at least this big are patched in place
        self._source_dir_stat = source_dir_stat
        self.ownership = ownership
        # A missing directory is never remembered: this tree creates the ones it needs.
        self._dirs = DirectoryCache(lambda: os.open(root, DIR_FLAGS), remember_missing=False)
        # Directories whose entries this tree changed on its own (creating a missing parent):
        # their mtimes must be copied again, like those of the directories a batch touched.
        self.changed_dirs: set[str] = set()

    def close(self) -> None:
        self._dirs.close()

    def trim(self, keep: str) -> None:
        """Close cached descriptors beyond MAX_CACHED_DIRS, but never those of `keep` and its
        ancestors: the caller may be holding them."""
        self._dirs.trim(keep)

    def forget(self, path: str) -> None:
        """Drop cached descriptors at or below `path` (it was renamed or removed)."""
        self._dirs.forget(path)

    def open_dir(self, path: str) -> int | None:
        """Descriptor of an existing real directory at `path`, or None when there is none."""
        return self._dirs.open(path)

    def ensure_dir(self, path: str) -> int:
        """Descriptor of the directory at `path`, creating missing ones like the source's."""
        fd = self.open_dir(path)
        if fd is not None:
            return fd
        source = self._source_dir_stat(path)
        if source is None:  # the entry being synced was seen in it a moment ago
            raise SourceChangedError(errno.ENOENT, "its source directory is gone", path)
        parent, name = split(path)
        parent_fd = self.ensure_dir(parent)
        self.remove(parent_fd, name, path)  # a file or symlink in the way
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        self.changed_dirs.update((parent, path))
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        self._dirs.add(path, fd)
        self.set_dir_attributes(fd, source)
        return fd

    def lstat(self, parent_fd: int, name: str) -> os.stat_result | None:
        return lstat_at(parent_fd, name)

    def remove(
        self, parent_fd: int, name: str, path: str, keep: Callable[[str, bool], bool] | None = None
    ) -> bool:
        """Remove whatever is at `path` (a tree too); entries for which `keep` is true survive.

        Returns True when something was removed.
        """
        current = self.lstat(parent_fd, name)
        if current is None:
            return False
        if not stat.S_ISDIR(current.st_mode):
            os.unlink(name, dir_fd=parent_fd)
            return True
        self.forget(path)
        if keep is None:
            shutil.rmtree(name, dir_fd=parent_fd)  # fd-based: safe against symlink races
        else:
            self._remove_tree_keeping(parent_fd, name, path, keep)
        return True

    def _remove_tree_keeping(
        self, parent_fd: int, name: str, path: str, keep: Callable[[str, bool], bool]
    ) -> bool:
        """Like rsync --delete without --delete-excluded: excluded entries stay, and so do the
        directories that hold them. Returns True when the directory itself could go."""
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        empty = True
        try:
            with os.scandir(fd) as entries:
                children = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
            for child, is_dir in children:
                child_path = f"{path}/{child}"
                if keep(child_path, is_dir):
                    empty = False
                elif is_dir:
                    empty &= self._remove_tree_keeping(fd, child, child_path, keep)
                else:
                    os.unlink(child, dir_fd=fd)
        finally:
            os.close(fd)
        if empty:
            os.rmdir(name, dir_fd=parent_fd)
        return empty

    def set_dir_attributes(self, fd: int, source: os.stat_result) -> None:
        os.fchmod(fd, stat.S_IMODE(source.st_mode))
        owner = self.ownership.of(source)
        if owner is not None:
            os.fchown(fd, *owner)

    def set_dir_times(self, path: str, source: os.stat_result) -> None:
        fd = self.open_dir(path)
        if fd is not None:
            os.utime(fd, ns=(source.st_atime_ns, source.st_mtime_ns))

    def write_file(
        self,
        parent_fd: int,
        name: str,
        src_fd: int,
        source: os.stat_result,
        existing: os.stat_result | None,
        *,
        trust_append: bool,
    ) -> FileWrite:
        """Bring `name` to the content and attributes of an open regular file (`source`: its
        fstat; `existing`: what the destination holds there, if known).

        A file the destination holds is updated by what changed: in a clone of it renamed into
        place where the filesystem can clone (FICLONE), in place when it is at least
        `in_place_size` bytes; anything else is copied whole to a temporary file renamed into
        place. Except in place, no reader ever sees a half-written file, and a symlink at
        `name` is replaced, never written through. `trust_append`: a grown file may be updated
        by its tail alone (see `file_content.update`).
        """
        if _worth_comparing(existing, source):
            assert existing is not None
            if existing.st_dev not in _CANNOT_CLONE:
                cloned = self._write_through_clone(
                    parent_fd, name, src_fd, source, existing, trust_append
                )
                if cloned is not None:
                    return cloned
            if source.st_size >= self.in_place_size:
                patched = self._write_in_place(
                    parent_fd, name, src_fd, source, existing, trust_append
                )
                if patched is not None:
                    return patched
        return self._write_whole(parent_fd, name, src_fd, source)

    def _write_whole(
        self, parent_fd: int, name: str, src_fd: int, source: os.stat_result
    ) -> FileWrite:
        tmp, tmp_fd = self._open_temp(parent_fd)
        try:
            written = copy_range(src_fd, tmp_fd, 0, source.st_size)
            self._set_file_attributes(tmp_fd, source)
        except BaseException:
            os.close(tmp_fd)
            os.unlink(tmp, dir_fd=parent_fd)
            raise
        os.close(tmp_fd)
        self._rename_into_place(parent_fd, tmp, name)
        return FileWrite(written, compared=True)

    def _write_through_clone(
        self,
        parent_fd: int,
        name: str,
        src_fd: int,
        source: os.stat_result,
        existing: os.stat_result,
        trust_append: bool,
    ) -> FileWrite | None:
        """Clone the destination's file, patch the clone, rename it into place; None when this
        filesystem cannot clone (remembered) or the file changed under us."""
        tmp, tmp_fd = self._open_temp(parent_fd, os.O_RDWR)
        try:
            old_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            try:
                fcntl.ioctl(tmp_fd, _FICLONE, old_fd)
            finally:
                os.close(old_fd)
            update = FileWrite(
                *update_content(src_fd, tmp_fd, existing.st_size, source.st_size, trust_append)
            )
            self._set_file_attributes(tmp_fd, source)
        except BaseException as error:
            os.close(tmp_fd)
            os.unlink(tmp, dir_fd=parent_fd)
            if isinstance(error, OSError) and error.errno in _NO_CLONE:
                _CANNOT_CLONE.add(existing.st_dev)
                return None
            raise
        os.close(tmp_fd)
        self._rename_into_place(parent_fd, tmp, name)
        return update

    def _write_in_place(
        self,
        parent_fd: int,
        name: str,
        src_fd: int,
        source: os.stat_result,
        existing: os.stat_result,
        trust_append: bool,
    ) -> FileWrite | None:
        """Patch the destination's file where it is, as `rsync --inplace` does; None when it
        cannot be opened for writing (read-only to this user): then it is copied whole."""
        try:
            fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except PermissionError:
            return None
        try:
            if (os.fstat(fd).st_ino, os.fstat(fd).st_dev) != (existing.st_ino, existing.st_dev):
                return None  # another file stands there since it was looked at
            update = FileWrite(
                *update_content(src_fd, fd, existing.st_size, source.st_size, trust_append)
            )
            self._set_file_attributes(fd, source)
        finally:
            os.close(fd)
        return update

    def _open_temp(self, parent_fd: int, access: int = os.O_WRONLY) -> tuple[str, int]:
        tmp = temp_name()
        flags = access | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return tmp, os.open(tmp, flags, 0o600, dir_fd=parent_fd)

    def _set_file_attributes(self, fd: int, source: os.stat_result) -> None:
        os.fchmod(fd, stat.S_IMODE(source.st_mode))
        owner = self.ownership.of(source)
        if owner is not None:
            os.fchown(fd, *owner)
        os.utime(fd, ns=(source.st_atime_ns, source.st_mtime_ns))

    def write_symlink(self, parent_fd: int, name: str, target: str, source: os.stat_result) -> None:
        tmp = temp_name()
        os.symlink(target, tmp, dir_fd=parent_fd)
        try:
            owner = self.ownership.of(source)
            if owner is not None:
                os.chown(tmp, *owner, dir_fd=parent_fd, follow_symlinks=False)
            os.utime(
                tmp,
                ns=(source.st_atime_ns, source.st_mtime_ns),
                dir_fd=parent_fd,
                follow_symlinks=False,
            )
        except BaseException:
            os.unlink(tmp, dir_fd=parent_fd)
            raise
        self._rename_into_place(parent_fd, tmp, name)

    def _rename_into_place(self, parent_fd: int, tmp: str, name: str) -> None:
        try:
            os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        except BaseException:
            os.unlink(tmp, dir_fd=parent_fd)
            raise


class DestinationView:
    """Read-only lookups below a destination root that another program writes (rsync): the
    same component-by-component resolution as `DestinationTree`, never through a symlink."""

    def __init__(self, root: str) -> None:
        # The root is followed, as rsync follows `destination/`; nothing below it is.
        self._dirs = DirectoryCache(lambda: open_followed_root(root), remember_missing=False)

    def close(self) -> None:
        self._dirs.close()

    def lstat(self, path: str) -> os.stat_result | None:
        """The entry at `path` itself (a symlink is not followed), or None when there is none."""
        parent, name = split(path)
        parent_fd = self._dirs.open(parent)
        return None if parent_fd is None else lstat_at(parent_fd, name)

    def children(self, path: str) -> dict[str, bool]:
        """The names in the directory at `path`, each with whether it is a directory; none when
        there is no directory there."""
        fd = self._dirs.open(path)
        if fd is None:
            return {}
        with os.scandir(fd) as entries:
            return {entry.name: entry.is_dir(follow_symlinks=False) for entry in entries}
