"""The remote agent: a program of ours that writes a remote destination's small changes.

An rsync through the master costs 40-60 ms on loopback before it copies a byte (two processes
started, a file list exchanged), which is the whole of a one-file batch. This module's text is
sent over the target's master connection when the pair starts and runs there under the remote's
own Python 3 (3.8 or later; nothing is installed on the host) for as long as the connection
lives; small files, symlinks, directories and deletions then cost one round trip. What it
cannot do safely it answers "use rsync", and the pair's rsync takes that path.

It is one self-contained file of standard-library code, the agent's whole program, and it also
holds the wire format, which the daemon's side (`agent`) imports from here:

- boot: the daemon writes the code's length and the code, then the destination root's length
  and the root; the agent answers HELLO (magic, version, its effective uid);
- then frames, each `!I` length + `!I` count + that many operations, each OP_HEADER (kind,
  mode, uid, gid, mtime_ns, name length, data length), the name (relative, bytes) and the data
  (a file's content, a symlink's target);
- each frame gets one reply, `!I` length + `!I` count of operations not done, each `!IBH`
  (index, RETRY_WITH_RSYNC or FAILED, message length) and the message.

Names are data, never part of a command; every directory below the root is opened with
O_NOFOLLOW from its parent, and entries are replaced by a rename, never written through, so a
symlink in the destination is never followed and nothing is written outside the root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
import time
from collections.abc import Callable
from typing import BinaryIO

VERSION = 1
HELLO = struct.Struct("!4sII")
MAGIC = b"PLSA"
LENGTH = struct.Struct("!I")
OP_HEADER = struct.Struct("!BIiiqIQ")
NOT_DONE = struct.Struct("!IBH")

ENSURE_DIR = ord("D")  # a directory there (replacing a non-directory), mode and owner set
# ENSURE_DIR for the top of a tree whose every entry follows: rsync's when a directory holding
# entries is there already (what the source lacks there must go, and excludes protect some).
NEW_TREE = ord("T")
# Whether a tree would be NEW_TREE's: answered RETRY_WITH_RSYNC when a directory holding
# entries is there (or a directory above is no directory), before its content is sent.
PROBE = ord("P")
DIR_TIMES = ord("M")  # a directory's final mode and mtime, sent after what was written in it
FILE = ord("F")  # a regular file with this content, replacing a non-directory atomically
SYMLINK = ord("L")  # a symlink to this target, replacing a non-directory atomically
REMOVE = ord("X")  # no entry there (a directory is rsync's to remove: excludes protect files)

RETRY_WITH_RSYNC = 1  # not a failure: a case rsync handles (a directory in the way, ...)
FAILED = 2  # an error of the destination's (full, read-only): rsync tries and reports it

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


def pack_op(kind: int, name: bytes, mode: int, owner: tuple[int, int], mtime_ns: int,
            data: bytes = b"") -> bytes:  # fmt: skip
    """One operation as it crosses the connection."""
    header = OP_HEADER.pack(kind, mode, owner[0], owner[1], mtime_ns, len(name), len(data))
    return header + name + data


class _UseRsync(Exception):
    """This operation is a case for rsync; the message says which."""


class _Frame:
    """The directories of one frame's operations, opened once each, closed with the frame."""

    def __init__(self, root: bytes, as_root: bool) -> None:
        self.as_root = as_root
        try:
            self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise _UseRsync(f"the destination root: {error.strerror}") from None
        self._dirs = {b"": self.root_fd}

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def directory(self, path: bytes) -> int:
        """The real directory at `path`; _UseRsync when it is missing or not one."""
        fd = self._dirs.get(path)
        if fd is not None:
            return fd
        parent, _, name = path.rpartition(b"/")
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=self.directory(parent))
        except OSError as error:
            if error.errno in _GONE:
                raise _UseRsync("a directory above it is not a directory here") from None
            raise
        self._dirs[path] = fd
        return fd

    def owner(self, fd: int, uid: int, gid: int) -> None:
        # Only root may give files away; a remote login as a user leaves them its own, as
        # rsync's receiver does.
        if self.as_root and (uid != -1 or gid != -1):
            os.fchown(fd, uid, gid)


def _lstat(parent_fd: int, name: bytes) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=parent_fd)
    except OSError as error:
        if error.errno in _GONE:
            return None
        raise


def _place(parent_fd: int, name: bytes, write: Callable[[bytes], None]) -> None:
    """Make `name` by writing a temporary entry (`write(temp_name)`) and renaming it over."""
    existing = _lstat(parent_fd, name)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise _UseRsync("a directory is in its place")
    temp = b".~pylsyncd." + os.urandom(6).hex().encode()
    try:
        write(temp)
        os.rename(temp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=parent_fd)
        raise


def _refuse_held_directory(frame: _Frame, path: bytes, existing: os.stat_result | None) -> None:
    """_UseRsync when `existing` is a directory holding entries."""
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        with os.scandir(frame.directory(path)) as entries:
            if any(True for _ in entries):
                raise _UseRsync("a directory with entries is there")


def _apply(frame: _Frame, kind: int, path: bytes, mode: int, uid: int, gid: int, mtime_ns: int,
           data: bytes) -> None:  # fmt: skip
    parent, _, name = path.rpartition(b"/")
    if kind == PROBE:
        _refuse_held_directory(frame, path, _lstat(frame.directory(parent), name))
        return
    if kind == DIR_TIMES:
        fd = frame.directory(path)
        os.fchmod(fd, mode)
        os.utime(fd, ns=(time.time_ns(), mtime_ns))
        return
    if kind in (ENSURE_DIR, NEW_TREE):
        if path:
            parent_fd = frame.directory(parent)
            existing = _lstat(parent_fd, name)
            if kind == NEW_TREE:
                _refuse_held_directory(frame, path, existing)
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                if existing is not None:
                    os.unlink(name, dir_fd=parent_fd)
                os.mkdir(name, 0o700, dir_fd=parent_fd)
        fd = frame.directory(path)
        frame.owner(fd, uid, gid)
        os.fchmod(fd, mode | stat.S_IRWXU)  # its final mode comes with DIR_TIMES
        return
    parent_fd = frame.directory(parent)
    if kind == REMOVE:
        existing = _lstat(parent_fd, name)
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise _UseRsync("a directory is there")
        if existing is not None:
            os.unlink(name, dir_fd=parent_fd)
        return

    def write_file(temp: bytes) -> None:
        fd = os.open(temp, _NEW_FILE, 0o600, dir_fd=parent_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            frame.owner(fd, uid, gid)  # before the mode: chown clears set-id bits
            os.fchmod(fd, mode)
            os.utime(fd, ns=(time.time_ns(), mtime_ns))
        finally:
            os.close(fd)

    def write_symlink(temp: bytes) -> None:
        os.symlink(data, temp, dir_fd=parent_fd)
        if frame.as_root and (uid != -1 or gid != -1):
            os.chown(temp, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
        os.utime(temp, ns=(time.time_ns(), mtime_ns), dir_fd=parent_fd, follow_symlinks=False)

    if kind == FILE:
        _place(parent_fd, name, write_file)
    elif kind == SYMLINK:
        _place(parent_fd, name, write_symlink)
    else:
        raise _UseRsync(f"unknown operation {kind}")


def apply_frame(root: bytes, payload: bytes, as_root: bool) -> bytes:
    """Apply one frame's operations in order; the reply listing those not done."""
    (count,) = LENGTH.unpack_from(payload, 0)
    offset = LENGTH.size
    not_done = []
    frame: _Frame | None = None
    reason = ""
    try:
        frame = _Frame(root, as_root)
    except _UseRsync as missing:
        reason = str(missing)
    for index in range(count):
        kind, mode, uid, gid, mtime_ns, name_length, data_length = OP_HEADER.unpack_from(
            payload, offset
        )
        offset += OP_HEADER.size
        path = payload[offset : offset + name_length]
        offset += name_length
        data = payload[offset : offset + data_length]
        offset += data_length
        status = RETRY_WITH_RSYNC
        try:
            if frame is None:
                raise _UseRsync(reason)
            _apply(frame, kind, path, mode, uid, gid, mtime_ns, data)
            continue
        except _UseRsync as case:
            message = str(case)
        except OSError as error:
            status, message = FAILED, f"{error.strerror or error}"
        encoded = message.encode(errors="replace")[:1000]
        not_done.append(NOT_DONE.pack(index, status, len(encoded)) + encoded)
    if frame is not None:
        frame.close()
    body = LENGTH.pack(len(not_done)) + b"".join(not_done)
    return LENGTH.pack(len(body)) + body


def _read_message(stream: BinaryIO) -> bytes | None:
    """One length-prefixed message; None when the connection ended before its end."""
    header = stream.read(LENGTH.size)
    if len(header) < LENGTH.size:
        return None
    size = LENGTH.unpack(header)[0]
    data = stream.read(size)
    return data if len(data) == size else None


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Read the root, say hello, then apply frames until the connection ends."""
    root = _read_message(stdin)
    if root is None:
        return
    as_root = os.geteuid() == 0
    stdout.write(HELLO.pack(MAGIC, VERSION, os.geteuid()))
    stdout.flush()
    while True:
        payload = _read_message(stdin)
        if payload is None:
            return
        stdout.write(apply_frame(root, payload, as_root))
        stdout.flush()


# Run on the remote as `python3 -c BOOT`: it reads this file's text from stdin and serves.
BOOT = (
    "import sys;i=sys.stdin.buffer;n=int(i.readline());g={'__name__':'pylsyncd_agent'};"
    "exec(compile(i.read(n),'pylsyncd-agent','exec'),g);g['serve'](i,sys.stdout.buffer)"
)
