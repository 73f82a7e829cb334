"""The `rsync` backend: one rsync process per batch.

The batch becomes a NUL-separated list of anchored include rules read from stdin (so no file
name is ever parsed as an option or split on a newline), followed by `--exclude=*`: rsync walks
only the included paths, and `--delete` removes exactly the included paths the source lacks,
because rsync never deletes what a rule excludes. The destination is a plain rsync destination
argument, so the same code can later point at `host:/path` over ssh.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import IO

from pylsyncd.coalesce import Batch, ChangeKind
from pylsyncd.events import parent_of
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome, Ownership, Progress

log = logging.getLogger(__name__)

# 24: "some files vanished before they could be transferred": a later event covers them.
_OK_EXIT_CODES = (0, 24)
_WILDCARDS = re.compile(r"[*?\[]")
_ESCAPED = re.compile(r"([*?\[\\])")
_TO_CHECK = re.compile(rb"to-chk=(\d+)/(\d+)")
_STAT = re.compile(rb"^(Number of regular files transferred|Total transferred file size): ([\d,]+)")


def escape_pattern(path: str) -> str:
    """`path` as an rsync pattern matching only itself.

    rsync reads backslashes as escapes only in patterns that contain a wildcard, so a plain name
    is passed as it is and a name with a wildcard has every special character escaped.
    """
    return _ESCAPED.sub(r"\\\1", path) if _WILDCARDS.search(path) else path


def include_rules(batch: Batch, source_is_dir: Callable[[str], bool]) -> list[str]:
    """Anchored include rules that let rsync reach and transfer exactly the batch's paths."""
    rules: dict[str, None] = {}  # ordered set

    def include_parents(path: str) -> None:
        parent = parent_of(path)
        if parent:
            include_parents(parent)
            rules.setdefault(f"/{escape_pattern(parent)}/", None)

    for change in batch.changes:
        if change.path == "":
            # rsync always updates the root's own attributes; only a tree sync needs a rule.
            if change.kind is ChangeKind.SYNC_TREE:
                rules.setdefault("/***", None)
            continue
        include_parents(change.path)
        rules.setdefault(f"/{escape_pattern(change.path)}", None)
        if change.kind is not ChangeKind.SYNC or not source_is_dir(change.path):
            # The whole subtree: for a tree sync to copy it; for anything that is not a directory
            # in the source, so that nothing inside the destination's directory there is
            # protected by `--exclude=*` (rsync will not remove a directory holding excluded
            # files, neither to delete it nor to put a file in its place).
            rules.setdefault("/" + _ESCAPED.sub(r"\\\1", change.path) + "/***", None)
    return list(rules)


class RsyncTransfer:
    """Mirrors `source` into `destination` (a local path, later also `host:/path`) with rsync."""

    def __init__(
        self,
        source: str,
        destination: str,
        excludes: ExcludeRules,
        *,
        delete: bool,
        extra_args: Sequence[str] = (),
        ownership: Ownership | None = None,
        rsync: str = "rsync",
    ):
        self.source = source
        self.destination = destination
        self.excludes = excludes
        self.delete = delete
        self.extra_args = tuple(extra_args)
        self.ownership = ownership or Ownership()
        self.rsync = rsync
        self._process: subprocess.Popen[bytes] | None = None

    def _command(self, *rules: str, delete: bool) -> list[str]:
        # rsync compares whole seconds unless told otherwise: a change within the same second
        # would be skipped, and directory times would stay off by a fraction of a second.
        command = [self.rsync, "--archive", "--modify-window=-1", "--stats", *self.extra_args]
        uid, gid = self.ownership.uid, self.ownership.gid
        if uid is not None or gid is not None:
            # As root, --archive keeps the source's owner; --chown maps every one to PUID:PGID.
            command.append(f"--chown={'' if uid is None else uid}:{'' if gid is None else gid}")
        if delete:
            command.append("--delete")
        # The user's excludes come first: rsync takes the first rule that matches a name.
        command += [f"--filter=- {pattern}" for pattern in self.excludes.patterns]
        return command + list(rules)

    def _paths(self) -> list[str]:
        # `--` ends options: a source or destination starting with `-` is still a path.
        return ["--", self.source.rstrip("/") + "/", self.destination.rstrip("/") + "/"]

    def apply(self, batch: Batch) -> Outcome:
        batch = batch.without_moves()  # rsync cannot rename: both ends become tree syncs
        if not batch.changes:
            return Outcome()
        rules = include_rules(batch, self._source_is_dir)
        command = self._command(
            # An event means the file changed, even when size and mtime say otherwise (a
            # same-size rewrite within one timestamp tick): skip rsync's quick check.
            "--ignore-times",
            "--from0",
            "--include-from=-",
            "--exclude=*",
            delete=self.delete,
        )
        log.debug("include rules: %r", rules)
        stdin = b"".join(os.fsencode(rule) + b"\0" for rule in rules)
        outcome = self._run(command + self._paths(), stdin)
        outcome.deleted = sum(1 for c in batch.changes if c.kind is ChangeKind.DELETE)
        if not outcome.ok:
            outcome.failed = batch
        return outcome

    def full_sync(self, *, delete: bool, progress: Progress | None = None) -> Outcome:
        # progress2 reports "to-chk=LEFT/TOTAL"; without incremental recursion TOTAL is exact.
        options = ("--info=progress2", "--no-inc-recursive") if progress is not None else ()
        return self._run(self._command(*options, delete=delete) + self._paths(), b"", progress)

    def _source_is_dir(self, path: str) -> bool:
        try:
            return stat.S_ISDIR(os.lstat(os.path.join(self.source, path)).st_mode)
        except OSError:
            return False

    def cancel(self) -> None:
        """Stop a running rsync (TERM, then KILL): used when the shutdown grace runs out."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(2)
        except subprocess.TimeoutExpired:
            process.kill()

    def _run(self, command: list[str], stdin: bytes, progress: Progress | None = None) -> Outcome:
        log.debug("running %s", command)
        # Files for stdin and stderr: no pipe can fill up and block rsync while we read stdout.
        with tempfile.TemporaryFile() as rules, tempfile.TemporaryFile() as errors:
            rules.write(stdin)
            rules.seek(0)
            process = subprocess.Popen(
                command,
                stdin=rules,
                stdout=subprocess.PIPE,
                stderr=errors,
                start_new_session=True,  # a Ctrl-C meant for us does not kill rsync mid-file
            )
            self._process = process
            with process:
                assert process.stdout is not None
                outcome = Outcome()
                for line in _lines(process.stdout):
                    _read_line(line, outcome, progress)
            if process.returncode not in _OK_EXIT_CODES:
                errors.seek(0)
                outcome.error = f"rsync exited {process.returncode}: " + _first_error(errors.read())
        return outcome


def _first_error(stderr: bytes) -> str:
    """The line that says what went wrong, not rsync's closing summary of it."""
    lines = os.fsdecode(stderr).strip().splitlines() or [""]
    specific = [line for line in lines if not line.startswith(("rsync error:", "rsync warning:"))]
    return (specific or lines)[0]


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Lines of rsync's output; progress lines end in a carriage return, not a newline."""
    pending = b""
    while chunk := os.read(stream.fileno(), 65536):
        parts = re.split(rb"[\r\n]", pending + chunk)
        pending = parts.pop()
        yield from parts
    if pending:
        yield pending


def _read_line(line: bytes, outcome: Outcome, progress: Progress | None) -> None:
    stat_line = _STAT.match(line)
    if stat_line is not None:
        value = int(stat_line.group(2).replace(b",", b""))
        if stat_line.group(1).startswith(b"Number"):
            outcome.copied = value
        else:
            outcome.bytes = value
    elif progress is not None:
        checked = _TO_CHECK.search(line)
        if checked is not None:
            progress(int(checked.group(2)) - int(checked.group(1)))
