"""A file or symlink written into one side, or removed from it, as a compare-and-swap: put in
place (or removed) only if the path still holds what the plan saw.

Where the plan saw nothing, a file is written as an unnamed inode (O_TMPFILE) and linked to its
name: linkat fails when the name was taken meanwhile, atomically, so a file created by someone
else while the copy was written is never replaced; a crash leaves nothing behind, and the
directory is changed once, as `cp` changes it. Where the filesystem has no O_TMPFILE (FUSE,
NFS), a temporary file is hard-linked to its name the same way and its temporary name removed.

Where the plan saw an entry, the path is checked, then the new entry is exchanged with it
(renameat2 RENAME_EXCHANGE), and what the exchange displaced is checked again, by its own name
now: if someone wrote into it or put something else there between the check and the exchange
(found by the two-sided churn: a version written in those microseconds was replaced), it is
exchanged back and the path goes to reconcile again. A removal renames the entry away first
and checks what it moved the same way. Only a write through a descriptor opened before the
exchange and written after the second check still reaches a replaced file. Where the
filesystem cannot exchange (some FUSE ones), the check right before a plain rename is all
there is. Attributes alone (`set_attributes`) are set through a descriptor of the entry the
plan saw.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable

from pylsyncd.entries import Entry, Kind
from pylsyncd.transfer import Ownership
from pylsyncd.transfer.directories import lstat_at
from pylsyncd.transfer.file_content import copy_range
from pylsyncd.transfer.file_writer import NO_UNNAMED, UMASK, open_temp, temp_name
from pylsyncd.transfer.rename_flags import exchange, rename_noreplace

_ENTRY_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


# Whether the entry at (directory descriptor, name) is the one the plan saw there.
Holds = Callable[[int, str], bool]


class PathTaken(Exception):
    """The path no longer holds what the plan saw: the write was not put in place."""


def write_file(
    parent_fd: int,
    name: str,
    source_fd: int,
    source: os.stat_result,
    ownership: Ownership,
    unchanged: Holds,
    replaces: bool,
) -> tuple[int, int]:
    """Copy the open regular file `source_fd` (its fstat: `source`) to `name`; the bytes
    written and the inode left at `name`.

    `unchanged`: whether an entry is what the plan saw at the path; `replaces`: whether the plan
    saw an entry there (else nothing). Raises PathTaken when the path changed, or the source
    while it was read.
    """
    if not replaces:
        made = _write_unnamed(parent_fd, name, source_fd, source, ownership)
        if made is not None:
            return made
    tmp, tmp_fd = open_temp(parent_fd, mode=stat.S_IMODE(source.st_mode) & 0o777)
    try:
        try:
            written, inode = _copy_into(source_fd, tmp_fd, source, ownership)
        finally:
            os.close(tmp_fd)
        _put_in_place(parent_fd, tmp, name, unchanged, replaces)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent_fd)
        raise
    return written, inode


def _write_unnamed(
    parent_fd: int, name: str, source_fd: int, source: os.stat_result, ownership: Ownership
) -> tuple[int, int] | None:
    """A new file written as an unnamed inode, then linked to `name` unless taken; None where
    the filesystem cannot (then the caller writes a named temporary file)."""
    flags = os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC
    try:
        fd = os.open(".", flags, stat.S_IMODE(source.st_mode) & 0o777, dir_fd=parent_fd)
    except OSError as error:
        if error.errno in NO_UNNAMED:  # the named temporary file's way says what happened
            return None
        raise
    try:
        written, inode = _copy_into(source_fd, fd, source, ownership)
        try:
            # Through /proc with AT_SYMLINK_FOLLOW: AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH.
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=parent_fd)
        except FileExistsError:
            raise PathTaken("created by someone else while the copy was written") from None
        except FileNotFoundError:
            if os.path.isdir("/proc/self/fd"):
                raise
            return None  # no /proc: the named temporary file it is
    finally:
        os.close(fd)
    return written, inode


def _copy_into(
    source_fd: int, fd: int, source: os.stat_result, ownership: Ownership
) -> tuple[int, int]:
    """The source's bytes, owner, mode and times into the new file open at `fd`: the bytes
    written and its inode. PathTaken when the source changed while it was copied."""
    written = copy_range(source_fd, fd, 0, source.st_size)
    made = os.fstat(fd)
    owner = ownership.of(source)
    if owner is not None and not ownership.matches(made, source):
        os.fchown(fd, *owner)  # before the mode: a chown clears set-ID bits
    mode = stat.S_IMODE(source.st_mode)
    # Created with the permission bits less the umask: when that is the whole mode, the fchmod
    # is one system call per file of a storm for nothing.
    if UMASK is None or mode != mode & 0o777 & ~UMASK:
        os.fchmod(fd, mode)
    os.utime(fd, ns=(source.st_atime_ns, source.st_mtime_ns))
    after = os.fstat(source_fd)
    if (after.st_size, after.st_mtime_ns) != (source.st_size, source.st_mtime_ns):
        raise PathTaken("the source changed while it was copied")
    return written, made.st_ino


def write_symlink(
    parent_fd: int,
    name: str,
    target: str,
    source: os.stat_result,
    ownership: Ownership,
    unchanged: Holds,
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


def _put_in_place(parent_fd: int, tmp: str, name: str, unchanged: Holds, replaces: bool) -> None:
    if replaces:
        swap_in(parent_fd, tmp, parent_fd, name, unchanged)
        return
    try:  # the link is the check: it fails when the name was taken meanwhile
        # linkat without AT_SYMLINK_FOLLOW links a symlink itself, as rename would move it.
        os.link(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
    except FileExistsError:
        raise PathTaken("created by someone else while the copy was written") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # A filesystem without hard links (some FUSE ones): a check right before is all we have.
        if not unchanged(parent_fd, name):
            raise PathTaken("changed while the copy was written") from None
        os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        return
    os.unlink(tmp, dir_fd=parent_fd)


def swap_in(new_dir: int, new: str, dir_fd: int, name: str, unchanged: Holds) -> None:
    """Put the entry `new` (in `new_dir`) at `name` in place of the file or symlink the plan saw
    there. PathTaken, with `new` still at its name, when `name` holds something else."""
    if not unchanged(dir_fd, name):
        raise PathTaken("changed while the copy was written")
    if not exchange(new_dir, new, dir_fd, name):
        os.rename(new, name, src_dir_fd=new_dir, dst_dir_fd=dir_fd)
        return
    if unchanged(new_dir, new):  # what was displaced, checked under its new name
        os.unlink(new, dir_fd=new_dir)
        return
    exchange(new_dir, new, dir_fd, name)  # back: the version made meanwhile stays where it was
    raise PathTaken("changed as it was replaced")


def remove(parent_fd: int, name: str, unchanged: Holds, keep_as: Callable[[], str]) -> None:
    """Remove the file or symlink the plan saw at `name`; PathTaken, with what stands there
    left in place, when that is something else.

    The entry is renamed away first and what was moved checked: a version written between the
    plan's check and the removal goes back. If its name was taken again meanwhile, it is kept
    at `keep_as()` (a conflict copy's name)."""
    tmp = temp_name()
    os.rename(name, tmp, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    if unchanged(parent_fd, tmp):
        os.unlink(tmp, dir_fd=parent_fd)
        return
    _put_back(parent_fd, tmp, name, keep_as)
    raise PathTaken("changed as it was removed")


def _put_back(parent_fd: int, tmp: str, name: str, keep_as: Callable[[], str]) -> None:
    """Give `tmp` back its name `name`, or `keep_as()` if that was taken meanwhile."""
    try:
        if rename_noreplace(parent_fd, tmp, parent_fd, name):
            return
        if lstat_at(parent_fd, name) is not None:  # no RENAME_NOREPLACE here: a look right before
            raise FileExistsError(errno.EEXIST, "taken", name)
        os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    except FileExistsError:
        os.rename(tmp, keep_as(), src_dir_fd=parent_fd, dst_dir_fd=parent_fd)


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
