"""The remote agent seen from the daemon: started over the master, sent frames, stopped.

The agent (`agent_remote`, which also holds the wire format) runs as `REMOTE_PYTHON -c BOOT`
on the remote, a client of the target's master like every rsync: no login of its own. It is
started after each login of the master, once: a host without that Python (or with one too old)
is said once per login at INFO and every batch goes through rsync, as it did before.
"""

from __future__ import annotations

import logging
import os
import select
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pylsyncd.transfer import agent_remote
from pylsyncd.transfer.agent_remote import HELLO, LENGTH, MAGIC, NOT_DONE, VERSION
from pylsyncd.transfer.children import stop_child
from pylsyncd.transfer.ssh_master import COMMAND_TIMEOUT, SshMaster

log = logging.getLogger(__name__)

_HELLO_TIMEOUT = 20.0  # the remote's Python starting and compiling the agent
_TERM_GRACE = 1.0
_CHUNK = 1 << 16
_CODE = Path(agent_remote.__file__).read_bytes()


class AgentGoneError(Exception):
    """The agent's connection ended or did not answer: its frames were not all applied."""


class NotDone:
    """An operation of a frame the agent did not do: rsync's (`retry`) or failed there."""

    __slots__ = ("index", "message", "retry")

    def __init__(self, index: int, retry: bool, message: str) -> None:
        self.index = index  # of the operation among all those of one `exchange`
        self.retry = retry
        self.message = message


def _not_done(replies: list[bytes], counts: list[int]) -> list[NotDone]:
    """The operations the replies list as not done, numbered across all the frames."""
    not_done: list[NotDone] = []
    first = 0
    for reply, count in zip(replies, counts, strict=True):
        (entries,) = LENGTH.unpack_from(reply, 0)
        offset = LENGTH.size
        for _ in range(entries):
            index, status, size = NOT_DONE.unpack_from(reply, offset)
            offset += NOT_DONE.size
            message = reply[offset : offset + size].decode(errors="replace")
            offset += size
            retry = status == agent_remote.RETRY_WITH_RSYNC
            not_done.append(NotDone(first + index, retry, message))
        first += count
    return not_done


class RemoteAgent:
    """The agent of one target: `ready` starts it (again), `exchange` sends it frames."""

    def __init__(self, master: SshMaster, python: str) -> None:
        self.master = master
        self.python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._failed_login = 0  # the master's login count when a start last failed
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def ready(self) -> bool:
        """Whether the agent runs, starting it unless a start already failed during this login of
        the master (a host without that Python is asked once per connection)."""
        process = self._process
        if process is not None and process.poll() is None:
            return True
        self._stop()
        if self._failed_login == self.master.logins or self._cancelled:
            return False
        error = self._start()
        if error is not None:
            self._failed_login = self.master.logins
            log.info(
                "%s: no remote agent (%s): every batch goes through rsync; "
                "REMOTE_PYTHON names the remote's Python 3.8 or later",
                self.master.remote.login,
                error,
            )
            self._stop()
            return False
        return True

    def _start(self) -> str | None:
        command = f"exec {shlex.quote(self.python)} -c {shlex.quote(agent_remote.BOOT)}"
        with open(os.memfd_create("agent-errors", os.MFD_CLOEXEC), "w+b") as errors:
            self._process = self.master.session(command, errors)
            root = os.fsencode(self.master.remote.path)
            boot = b"%d\n" % len(_CODE) + _CODE + LENGTH.pack(len(root)) + root
            try:
                hello = self._exchange_bytes(boot, HELLO.size, _HELLO_TIMEOUT)
            except AgentGoneError:
                self._stop()
                errors.seek(0)
                said = [s.strip() for s in errors.read().decode(errors="replace").splitlines()]
                said = [line for line in said if line]
                return said[-1] if said else "it did not start"
        magic, version, uid = HELLO.unpack(hello)
        if magic != MAGIC or version != VERSION:
            return f"it answered {hello!r}, not pylsyncd's agent version {VERSION}"
        # Its uid says whether it gives files their owners (only root may).
        log.debug("%s: the remote agent runs as uid %d", self.master.remote.login, uid)
        return None

    def exchange(self, frames: Iterable[bytes]) -> list[NotDone]:
        """Send the frames, each as soon as it is made (reading the source for the next one
        while the agent writes this one), and return the operations not done.

        AgentGoneError when the connection ended before every reply came."""
        counts: list[int] = []  # operations per frame sent

        def framed() -> Iterator[bytes]:
            for frame in frames:
                counts.append(int.from_bytes(frame[: LENGTH.size], "big"))
                yield LENGTH.pack(len(frame)) + frame

        replies: list[bytes] = []
        pending = bytearray()

        def all_replied(received: bytes, sent_all: bool) -> bool:
            pending.extend(received)
            while len(pending) >= LENGTH.size:
                (size,) = LENGTH.unpack_from(pending, 0)
                if len(pending) < LENGTH.size + size:
                    break
                replies.append(bytes(pending[LENGTH.size : LENGTH.size + size]))
                del pending[: LENGTH.size + size]
            return sent_all and len(replies) == len(counts)

        self._talk(framed(), all_replied, COMMAND_TIMEOUT)
        return _not_done(replies, counts)

    def _exchange_bytes(self, data: bytes, size: int, timeout: float) -> bytes:
        """Write `data`, then read exactly `size` bytes back."""
        got = bytearray()

        def enough(received: bytes, sent_all: bool) -> bool:
            got.extend(received)
            return len(got) >= size

        self._talk(iter([data]), enough, timeout)
        return bytes(got[:size])

    def _talk(
        self, chunks: Iterator[bytes], enough: Callable[[bytes, bool], bool], timeout: float
    ) -> None:
        """Write `chunks` to the agent while handing what it writes back to `enough`, until
        `enough(received, every chunk written)` says so; neither pipe can fill up and block the
        other side. AgentGoneError when the agent's end closes first or `timeout` passes."""
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise AgentGoneError("the remote agent is not running")
        out_fd, in_fd = process.stdin.fileno(), process.stdout.fileno()
        os.set_blocking(out_fd, False)
        deadline = time.monotonic() + timeout
        view, sent_all = memoryview(b""), False
        while True:
            if not view and not sent_all:
                chunk = next(chunks, None)
                sent_all = chunk is None
                view = memoryview(chunk or b"")
            if enough(b"", sent_all):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                self._stop()
                raise AgentGoneError(f"no answer from the remote agent in {timeout:g} s")
            readable, writable, _ = select.select([in_fd], [out_fd] if view else [], [], left)
            if writable:
                try:
                    view = view[os.write(out_fd, view[:_CHUNK]) :]
                except BrokenPipeError:
                    self._stop()
                    raise AgentGoneError("the remote agent's connection ended") from None
            if readable:
                received = os.read(in_fd, _CHUNK)
                if not received:
                    self._stop()
                    raise AgentGoneError("the remote agent's connection ended")
                if enough(received, sent_all):
                    return

    def cancel(self) -> None:
        """Stop the agent (the shutdown grace ran out); it is not started again. From another
        thread: the one exchanging frames sees the end and cleans up."""
        self._cancelled = True
        process = self._process
        if process is not None:
            stop_child(process, grace=_TERM_GRACE)

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_child(process, grace=_TERM_GRACE)
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
