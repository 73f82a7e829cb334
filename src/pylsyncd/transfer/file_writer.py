"""A regular file's content and attributes into the destination, under one name of it.

A file the destination holds is updated by what changed (`file_content`): in a clone of it
renamed into place where the filesystem can clone (FICLONE), in place when it is at least
`in_place_size` bytes; anything else is copied whole to a temporary file renamed into place.
Every call takes the directory's descriptor and one name (see `destination`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import stat
from typing import NamedTuple

from pylsyncd.transfer import Ownership
from pylsyncd.transfer.file_content import copy_range
from pylsyncd.transfer.file_content import update as update_content

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
_UNNAMED_FLAGS = os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC
# What open(O_TMPFILE) answers where the filesystem or the kernel cannot make an unnamed file,
# or (EPERM) where the directory was removed since it was opened.
NO_UNNAMED = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS, errno.EPERM)
# Below this size, finding what changed in a file costs more than writing it whole.
DELTA_MIN = 1 << 20


def _read_umask() -> int | None:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


# A new file gets the source's permission bits as it is created, less the umask; when that is
# all of its mode, the fchmod after is skipped (one system call per file of a storm).
_UMASK = _read_umask()
UMASK = _UMASK  # for the other writers of new files (two-way's `side_writes`)


class _Change(NamedTuple):
    """A file the destination holds, to update from the source's open file."""

    parent_fd: int  # the destination's directory
    name: str
    src_fd: int
    source: os.stat_result  # the source's fstat
    existing: os.stat_result  # the destination's lstat
    trust_append: bool


class FileWrite(NamedTuple):
    """What writing one file did."""

    written: int  # bytes written into the destination
    # False when only an append's new tail was written after a check of the old end: the rest
    # of the file is compared once it stops changing (`Replay`).
    compared: bool
    # False when the file was patched where it stands and nothing else came or went in its
    # directory: the directory's times need no copying again.
    directory_written: bool = True


def _worth_comparing(existing: os.stat_result | None, source: os.stat_result) -> bool:
    """Whether the destination's file is worth updating by what changed instead of copying
    the source whole: a regular file of this daemon's (one link: patching it must not change
    another name), and both big enough."""
    return (
        existing is not None
        and stat.S_ISREG(existing.st_mode)
        and existing.st_nlink == 1
        and min(existing.st_size, source.st_size) >= DELTA_MIN
    )


def temp_name() -> str:
    # Fixed length (NAME_MAX is 255) and a prefix that says whose it is if a crash leaves one.
    return f".pylsyncd.{_TEMP_PREFIX}{next(_temp_numbers) & 0xFFFFFF:06x}.tmp"


def open_temp(parent_fd: int, access: int = os.O_WRONLY, mode: int = 0o600) -> tuple[str, int]:
    """A new temporary file in the directory `parent_fd`: its name and a descriptor.

    `mode`: its permission bits (less the umask); never more than the file it becomes has, so a
    half-written copy is readable by no one who could not read the source."""
    tmp = temp_name()
    flags = access | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return tmp, os.open(tmp, flags, mode, dir_fd=parent_fd)


def rename_into_place(parent_fd: int, tmp: str, name: str) -> None:
    """Rename the temporary file `tmp` over `name`; it is removed if that fails."""
    try:
        os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    except BaseException:
        os.unlink(tmp, dir_fd=parent_fd)
        raise


def link_into_place(parent_fd: int, tmp: str, name: str) -> None:
    """Give the temporary entry `tmp` the name `name` unless that is taken (FileExistsError
    then: what stands there is never replaced); `tmp` is removed either way.

    The link is the check, atomically. On a filesystem without hard links (some FUSE ones) a
    look right before the rename is all there is."""
    try:
        try:
            # Without AT_SYMLINK_FOLLOW linkat links a symlink itself, as rename would move it.
            os.link(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            try:
                os.lstat(name, dir_fd=parent_fd)
            except FileNotFoundError:
                os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
                return
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), name) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent_fd)


class FileWriter:
    """Writes files below one destination, owned as `ownership` says."""

    def __init__(self, ownership: Ownership, in_place_size: int, *, create_only: bool = False):
        self.ownership = ownership
        self.in_place_size = in_place_size  # files at least this big are patched in place
        # Only new names are written: a name taken meanwhile is left as it is (FileExistsError).
        self.create_only = create_only
        # Unnamed files (O_TMPFILE) are linked through /proc: tried until the filesystem refuses.
        self._unnamed = os.path.isdir("/proc/self/fd")

    def write(
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
            change = _Change(parent_fd, name, src_fd, source, existing, trust_append)
            tried_clone = existing.st_dev not in _CANNOT_CLONE
            if tried_clone:
                cloned = self._write_through_clone(change)
                if cloned is not None:
                    return cloned
            if source.st_size >= self.in_place_size:
                patched = self._write_in_place(change)
                if patched is not None:
                    # A clone that failed had its temporary file made and removed beside it.
                    return patched._replace(directory_written=tried_clone)
        return self._write_whole(parent_fd, name, src_fd, source)

    def _write_whole(
        self, parent_fd: int, name: str, src_fd: int, source: os.stat_result
    ) -> FileWrite:
        permissions = source.st_mode & 0o777
        if self.create_only and self._unnamed:
            unnamed = self._write_unnamed(parent_fd, name, src_fd, source)
            if unnamed is not None:
                return unnamed
        tmp, tmp_fd = open_temp(parent_fd, mode=permissions)
        created = None if _UMASK is None else permissions & ~_UMASK
        try:
            written = copy_range(src_fd, tmp_fd, 0, source.st_size)
            self._set_file_attributes(tmp_fd, source, created)
        except BaseException:
            os.close(tmp_fd)
            os.unlink(tmp, dir_fd=parent_fd)
            raise
        os.close(tmp_fd)
        if self.create_only:
            link_into_place(parent_fd, tmp, name)
        else:
            rename_into_place(parent_fd, tmp, name)
        return FileWrite(written, compared=True)

    def _write_unnamed(
        self, parent_fd: int, name: str, src_fd: int, source: os.stat_result
    ) -> FileWrite | None:
        """A new file written as an unnamed inode (O_TMPFILE) and linked to `name` unless that
        is taken (FileExistsError): one system call fewer than a named temporary file, and a
        crash leaves nothing. None where the filesystem cannot (FUSE, NFS): asked no more."""
        permissions = source.st_mode & 0o777
        try:
            fd = os.open(".", _UNNAMED_FLAGS, permissions, dir_fd=parent_fd)
        except OSError as error:
            if error.errno not in NO_UNNAMED:
                raise
            self._unnamed = False
            return None
        try:
            copied = copy_range(src_fd, fd, 0, source.st_size)
            self._set_file_attributes(fd, source, None if _UMASK is None else permissions & ~_UMASK)
            # Through /proc with AT_SYMLINK_FOLLOW: AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH.
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=parent_fd)
        finally:
            os.close(fd)
        return FileWrite(copied, compared=True)

    def _write_through_clone(self, change: _Change) -> FileWrite | None:
        """Clone the destination's file, patch the clone, rename it into place; None when this
        filesystem cannot clone (remembered)."""
        parent_fd = change.parent_fd
        tmp, tmp_fd = open_temp(parent_fd, os.O_RDWR)
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            old_fd = os.open(change.name, flags, dir_fd=parent_fd)
            try:
                fcntl.ioctl(tmp_fd, _FICLONE, old_fd)
            finally:
                os.close(old_fd)
            written = self._patch(change, tmp_fd)
        except BaseException as error:
            os.close(tmp_fd)
            os.unlink(tmp, dir_fd=parent_fd)
            if isinstance(error, OSError) and error.errno in _NO_CLONE:
                _CANNOT_CLONE.add(change.existing.st_dev)
                return None
            raise
        os.close(tmp_fd)
        rename_into_place(parent_fd, tmp, change.name)
        return written

    def _write_in_place(self, change: _Change) -> FileWrite | None:
        """Patch the destination's file where it is, as `rsync --inplace` does; None when it
        cannot be opened for writing (read-only to this user): then it is copied whole."""
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(change.name, flags, dir_fd=change.parent_fd)
        except PermissionError:
            return None
        try:
            found = os.fstat(fd)
            if (found.st_ino, found.st_dev) != (change.existing.st_ino, change.existing.st_dev):
                return None  # another file stands there since it was looked at
            return self._patch(change, fd, in_place=True)._replace(directory_written=False)
        finally:
            os.close(fd)

    def _patch(self, change: _Change, fd: int, *, in_place: bool = False) -> FileWrite:
        """Update the destination's copy open at `fd` (read and write) to the source's:
        `change.existing` itself when `in_place`, else a clone of it."""
        sizes = (change.existing.st_size, change.source.st_size)
        written = FileWrite(*update_content(change.src_fd, fd, *sizes, change.trust_append))
        existing = change.existing if in_place else None
        self._set_file_attributes(fd, change.source, existing=existing)
        return written

    def _set_file_attributes(
        self,
        fd: int,
        source: os.stat_result,
        created_mode: int | None = None,
        existing: os.stat_result | None = None,
    ) -> None:
        """Owner, then mode (a change of owner clears the set-user-ID and set-group-ID bits,
        root's too), then times. `created_mode`: the mode the file was created with, if known;
        `existing`: the file's lstat before it was patched where it stands, if it was (an owner
        and mode already right are not set again: a log appended to every few milliseconds)."""
        owner = self.ownership.of(source)
        if owner is not None and (existing is None or not self.ownership.matches(existing, source)):
            os.fchown(fd, *owner)
        mode = stat.S_IMODE(source.st_mode)
        # A write by a user without CAP_FSETID clears set-ID bits: those are always set again.
        kept = existing is not None and not mode & 0o6000 and stat.S_IMODE(existing.st_mode) == mode
        if mode != created_mode and not kept:
            os.fchmod(fd, mode)
        os.utime(fd, ns=(source.st_atime_ns, source.st_mtime_ns))
