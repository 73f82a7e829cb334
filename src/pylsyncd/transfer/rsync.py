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
import subprocess
from collections.abc import Callable, Iterator, Sequence
from typing import IO

from pylsyncd.coalesce import Batch, Change, ChangeKind
from pylsyncd.events import parent_of
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome, Ownership, Progress
from pylsyncd.transfer.children import stop_child
from pylsyncd.transfer.hardlinks import HardLinks
from pylsyncd.transfer.hot_files import HotFiles
from pylsyncd.transfer.rsync_big_files import BySize, run_by_size
from pylsyncd.transfer.rsync_errors import judge, report_unreadable
from pylsyncd.transfer.rsync_extras import extras, other_names
from pylsyncd.transfer.rsync_ignored import ignored_paths
from pylsyncd.transfer.rsync_many import MOST_RULES, ManyChanges, split_many
from pylsyncd.transfer.rsync_renames import RecentPaths, replay_renames, run_here
from pylsyncd.transfer.source import BatchLook
from pylsyncd.watch.first_walk import FirstWalk

log = logging.getLogger(__name__)

# How many times one batch runs rsync while the source keeps changing under it.
_LOOKS = 3
# 24: "some files vanished before they could be transferred": a later event covers them.
_OK_EXIT_CODES = (0, 24)
_WILDCARDS = re.compile(r"[*?\[]")
_ESCAPED = re.compile(r"([*?\[\\])")
_TO_CHECK = re.compile(rb"to-chk=(\d+)/(\d+)")
# How long rsync has to exit after TERM (and clean up after itself) before it gets KILL.
_TERM_GRACE = 2.0
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
    """Mirrors `source` into `destination` (a local path; see `remote` for `host:/path`)."""

    # Whether the destination can be read here: the extras of a directory, the destination's
    # hard links, big files and ignored entries are looked up in it only then.
    local = True

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
        in_place_size: int = 16 * 1024 * 1024,
    ):
        self.source = source
        self.destination = destination
        self.excludes = excludes
        self.delete = delete
        self.extra_args = tuple(extra_args)
        self.ownership = ownership or Ownership()
        self.rsync = rsync
        self._process: subprocess.Popen[bytes] | None = None
        # Directories of a failed run: a killed rsync leaves its temporary files (`.name.XXXXXX`)
        # there, which the retry removes as entries the source lacks.
        self._unsettled_dirs: set[str] = set()
        # Source entries rsync may not read, reported once each, not at every event.
        self.reported_unreadable: set[str] = set()
        self.hard_links = HardLinks(source, excludes)
        self.in_place_size = in_place_size  # big files go by rsync's delta (`rsync_big_files`)
        self.hot_files = HotFiles()  # appended files, each compared whole once quiet
        self._by_size = BySize(destination, in_place_size, self.hot_files)
        self.rename_root = destination  # the destination's path where renames run
        self._recent = RecentPaths()
        # The source as the batch being applied looks at it (each path's lstat made once).
        self.look = BatchLook(source)

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

    def apply(self, batch: Batch, *, final: bool = False) -> Outcome:
        self.look = BatchLook(self.source)
        try:
            return self._apply(batch, final=final)
        finally:
            self.look.close()

    def _apply(self, batch: Batch, *, final: bool) -> Outcome:
        events = batch.changes
        batch, compare_later = _follow_moves(batch, self.hard_links, self.hot_files)
        moved, batch = (  # with deletions off, a rename keeps its old name: no replay
            replay_renames(batch, self.rename_root, self.source, self._run_renames, self._recent)
            if self.delete
            else (0, batch.without_moves())
        )
        if not batch.changes:
            return Outcome(moved=moved)
        added = (
            extras(batch, self.look, self.destination, self.excludes, self._unsettled_dirs)
            if self.delete and self.local
            else ()
        )
        destination = self.destination if self.local else None
        added += other_names(batch, self.look, destination, self.hard_links)
        batch = Batch((), batch.changes + added)
        outcome = (
            run_by_size(batch, self.look, self._by_size, self._run_batch, final=final)
            if self.local
            else self._run_batch(batch)
        )
        for path, due in compare_later:
            outcome.defer(Change(path, ChangeKind.SYNC), due)
        outcome.deleted = sum(1 for c in batch.changes if c.kind is ChangeKind.DELETE)
        outcome.moved = moved
        # The trees rsync walked too, not only the events' paths: a tree copied after a rename
        # may have been renamed again in the source while rsync walked it (left half-emptied).
        walked = tuple(change for change in batch.changes if change.kind is ChangeKind.SYNC_TREE)
        self._recent.add(events + walked)
        if outcome.ok:
            self._unsettled_dirs.clear()
        else:
            outcome.failed = batch
            self._unsettled_dirs.update(parent_of(change.path) for change in batch.changes)
        return outcome

    def _run_renames(self, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        return run_here(stdin)  # a remote destination's runs there (`remote`)

    def _run_batch(self, batch: Batch, *options: str) -> Outcome:
        """rsync over exactly the batch's paths: one run, or two for a big batch."""
        # Each path (the root aside) has a rule of its own: more paths is big without making
        # the rules, which stats every path (a fifth of a second for 40,000 of them).
        big = len(batch.changes) > MOST_RULES + 1
        rules = [] if big else include_rules(batch, self.look.is_dir)
        if big or len(rules) > MOST_RULES:
            return self._run_many(split_many(batch, self.look, MOST_RULES), *options)
        command = self._command(
            # An event means the file changed, even when size and mtime say otherwise (a
            # same-size rewrite within one timestamp tick): skip rsync's quick check.
            "--ignore-times",
            *options,
            "--from0",
            "--include-from=-",
            "--exclude=*",
            delete=self.delete,
        )
        log.debug("include rules: %r", rules)
        stdin = self._ignored(batch) + b"".join(os.fsencode(rule) + b"\0" for rule in rules)
        return self._run(command + self._paths(), stdin)

    def _run_many(self, many: ManyChanges, *options: str) -> Outcome:
        """A big batch (see `rsync_many`): its listed paths, then the trees around the rest."""
        outcome = Outcome()
        if many.listed:
            command = self._command(
                "--ignore-times", *options, "--from0", "--files-from=-", delete=False
            )
            stdin = b"".join(os.fsencode(path) + b"\0" for path in many.listed)
            outcome = self._run(command + self._paths(), stdin)
        if many.trees.changes and outcome.ok:
            rules = include_rules(many.trees, self.look.is_dir)
            command = self._command(
                *options, "--from0", "--include-from=-", "--exclude=*", delete=self.delete
            )
            stdin = self._ignored(many.trees) + b"".join(os.fsencode(r) + b"\0" for r in rules)
            trees = self._run(command + self._paths(), stdin)
            outcome.copied += trees.copied
            outcome.bytes += trees.bytes
            outcome.error = trees.error
        return outcome

    def full_sync(
        self, *, delete: bool, progress: Progress | None = None, walk: FirstWalk | None = None
    ) -> Outcome:
        if walk is not None:
            walk.wait_whole()  # rsync reads the whole tree at once
        # progress2 reports "to-chk=LEFT/TOTAL"; without incremental recursion TOTAL is exact.
        options: tuple[str, ...] = ()
        if progress is not None:
            options = ("--info=progress2", "--no-inc-recursive")
        ignored = self._ignored(None)
        if ignored:
            options += ("--from0", "--exclude-from=-")
        return self._run(self._command(*options, delete=delete) + self._paths(), ignored, progress)

    def _ignored(self, batch: Batch | None) -> bytes:
        roots = (self.source, self.destination) if self.local else (self.source,)
        return ignored_rules(self.excludes, roots, batch)

    def cancel(self) -> None:
        """Stop a running rsync (TERM, then KILL, reaped): used when the shutdown grace runs out."""
        if (process := self._process) is not None:
            stop_child(process, grace=_TERM_GRACE)

    def _run(self, command: list[str], stdin: bytes, progress: Progress | None = None) -> Outcome:
        """Run rsync; again when the source changed under it (what it skipped then, a deletion
        held back by its I/O error rule included, is served as the source is now)."""
        for _ in range(_LOOKS - 1):
            outcome, raced = self._run_once(command, stdin, progress)
            if not raced:
                return outcome
            log.debug("the source changed under rsync; running it again")
        return self._run_once(command, stdin, progress)[0]

    def _run_once(
        self, command: list[str], stdin: bytes, progress: Progress | None
    ) -> tuple[Outcome, bool]:
        """The outcome, and whether rsync met source entries that changed under it."""
        outcome, returncode, stderr = _run_rsync(command, stdin, progress, self._started)
        if returncode in _OK_EXIT_CODES:
            return outcome, False
        verdict = judge(returncode, stderr)
        outcome.error = verdict.error
        report_unreadable(verdict.unreadable, self.reported_unreadable)
        return outcome, verdict.raced

    def _started(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process  # for `cancel`


def _run_rsync(
    command: list[str],
    stdin: bytes,
    progress: Progress | None,
    started: Callable[[subprocess.Popen[bytes]], None],
) -> tuple[Outcome, int, bytes]:
    """One rsync run: what its statistics say, its exit status and its stderr."""
    log.debug("running %s", command)
    # Files for stdin and stderr: no pipe can fill up and block rsync while we read stdout.
    with _scratch("rsync-rules") as rules, _scratch("rsync-errors") as errors:
        rules.write(stdin)
        rules.seek(0)
        process = subprocess.Popen(
            command,
            stdin=rules,
            stdout=subprocess.PIPE,
            stderr=errors,
            start_new_session=True,  # a Ctrl-C meant for us does not kill rsync mid-file
        )
        started(process)
        with process:
            assert process.stdout is not None
            outcome = Outcome()
            for line in _lines(process.stdout):
                _read_line(line, outcome, progress)
        errors.seek(0)
        return outcome, process.returncode, errors.read()


def ignored_rules(excludes: ExcludeRules, roots: tuple[str, ...], batch: Batch | None) -> bytes:
    """Anchored excludes of what git ignores where rsync walks, for its rules on stdin: they
    come before the batch's include rules, since rsync takes the first rule that matches."""
    return b"".join(
        os.fsencode(f"- /{escape_pattern(path)}{'/' if is_dir else ''}") + b"\0"
        for path, is_dir in ignored_paths(excludes, roots, batch)
    )


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
    if line.startswith(b"Total bytes sent: "):
        log.debug("rsync: %s", line.decode(errors="replace"))  # what crossed the wire
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


def _scratch(name: str) -> IO[bytes]:
    """An anonymous file in memory (memfd): rsync's stdin or stderr, never on a disk. Not
    `tempfile`, which imports shutil and its compression modules for the daemon's whole life."""
    return open(os.memfd_create(name, os.MFD_CLOEXEC), "w+b")


def _follow_moves(
    batch: Batch, hard_links: HardLinks, hot_files: HotFiles
) -> tuple[Batch, list[tuple[str, float]]]:
    """What the batch's renames carry along: hard-linked names written ahead where a rename now
    puts older copies, synced again in the batch (rsync copies every path of it, with
    --ignore-times); appended files renamed, to be compared whole at their new names, and when."""
    synced_ahead: list[str] = []
    compare_later: list[tuple[str, float]] = []
    for move in batch.moves:
        synced_ahead += hard_links.moved(move.source, move.target)
        compare_later += hot_files.moved(move.source, move.target)
    ahead = tuple(Change(path, ChangeKind.SYNC) for path in synced_ahead)
    return Batch(batch.moves, batch.changes + ahead, batch.full_resync), compare_later
