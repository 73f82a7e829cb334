"""A file or symlink written into one side as a compare-and-swap: to a temporary name, then put
in place only if the path still holds what the plan saw.

Where the plan saw nothing, the temporary file is hard-linked to its name (linkat fails when the
name was taken meanwhile, atomically: a file created by someone else while the copy was written
is never replaced) and its temporary name removed. Where the plan saw an entry, the path is
checked again right before the rename over it: what is left is the microseconds between that
check and the rename, the window every sync tool has without a kernel compare-and-swap.
Attributes alone (`set_attributes`) are set through a descriptor of the entry the plan saw.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable

from pylsyncd.entries import Entry, Kind
from pylsyncd.transfer import Ownership
from pylsyncd.transfer.file_content import copy_range
from pylsyncd.transfer.file_writer import open_temp, temp_name

_ENTRY_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class PathTaken(Exception):
    """The path no longer holds what the plan saw: the write was not put in place."""


def write_file(
    parent_fd: int,
    name: str,
    source_fd: int,
    source: os.stat_result,
    ownership: Ownership,
    unchanged: Callable[[], bool],
    replaces: bool,
) -> int:
    """Copy the open regular file `source_fd` (its fstat: `source`) to `name`; bytes written.

    `unchanged`: whether the path still holds what the plan saw; `replaces`: whether that is an
    entry (else nothing). Raises PathTaken when the path changed, or the source while it was read.
    """
    mode = stat.S_IMODE(source.st_mode)
    tmp, tmp_fd = open_temp(parent_fd, mode=mode & 0o777)
    try:
        try:
            written = copy_range(source_fd, tmp_fd, 0, source.st_size)
            owner = ownership.of(source)
            if owner is not None:
                os.fchown(tmp_fd, *owner)  # before the mode: a chown clears set-ID bits
            os.fchmod(tmp_fd, mode)
            os.utime(tmp_fd, ns=(source.st_atime_ns, source.st_mtime_ns))
            after = os.fstat(source_fd)
        finally:
            os.close(tmp_fd)
        if (after.st_size, after.st_mtime_ns) != (source.st_size, source.st_mtime_ns):
            raise PathTaken("the source changed while it was copied")
        _put_in_place(parent_fd, tmp, name, unchanged, replaces)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent_fd)
        raise
    return written


def write_symlink(
    parent_fd: int,
    name: str,
    target: str,
    source: os.stat_result,
    ownership: Ownership,
    unchanged: Callable[[], bool],
    replaces: bool,
) -> None:
    """Make `name` a symlink to `target` with the times (and owner) of `source`."""
    tmp = temp_name()
    os.symlink(target, tmp, dir_fd=parent_fd)
    try:
        owner = ownership.of(source)
        if owner is not None:
            os.chown(tmp, *owner, dir_fd=parent_fd, follow_symlinks=False)
        os.utime(tmp, ns=(source.st_atime_ns, source.st_mtime_ns), dir_fd=parent_fd,
                 follow_symlinks=False)  # fmt: skip
        _put_in_place(parent_fd, tmp, name, unchanged, replaces)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent_fd)
        raise


def _put_in_place(
    parent_fd: int, tmp: str, name: str, unchanged: Callable[[], bool], replaces: bool
) -> None:
    if not unchanged():
        raise PathTaken("changed while the copy was written")
    if replaces:
        os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        return
    try:
        # linkat without AT_SYMLINK_FOLLOW links a symlink itself, as rename would move it.
        os.link(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
    except FileExistsError:
        raise PathTaken("created by someone else while the copy was written") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # A filesystem without hard links (some FUSE ones): the check just made is all we have.
        os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        return
    os.unlink(tmp, dir_fd=parent_fd)


def set_attributes(parent_fd: int, name: str, found: Entry, entry: Entry) -> int:
    """The same content: the winner's mode (a symlink has none of its own) and times; the
    inode written. PathTaken when another entry stands there now."""
    if found.kind is Kind.SYMLINK:
        os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent_fd,
                 follow_symlinks=False)  # fmt: skip
        return found.inode
    # Through a descriptor of the entry itself: O_NOFOLLOW fails on a symlink put there since
    # the check, and the inode says it is still the entry the plan saw.
    try:
        fd = os.open(name, _ENTRY_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        status = os.fstat(fd)
        if status.st_ino != found.inode:
            raise PathTaken("replaced since it was checked")
        if found.mode != entry.mode:
            # chmod through /proc: fchmod refuses an O_PATH descriptor.
            os.chmod(f"/proc/self/fd/{fd}", entry.mode)
        if found.kind is Kind.FILE and found.mtime_ns != entry.mtime_ns:
            os.utime(f"/proc/self/fd/{fd}", ns=(status.st_atime_ns, entry.mtime_ns))
    finally:
        os.close(fd)
    return found.inode
