"""A batch as the remote agent's operations: what it can take, and what stays rsync's.

The agent takes small regular files (sent whole), symlinks, directories' own attributes and the
deletion of non-directories; rsync keeps the rest: trees, big files (its delta), special files,
the deletion of a directory (which entries EXCLUDES protect there is rsync's rule), and every
operation the agent answers "not mine" or fails. Like rsync with the batch's include rules,
each path's directories from the root down get the source's attributes too: they are made
first and their times are set last, once what was written inside them has changed them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from pylsyncd.coalesce import Change, ChangeKind
from pylsyncd.events import parent_of
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome, Ownership
from pylsyncd.transfer.agent_remote import (
    DIR_TIMES,
    ENSURE_DIR,
    FILE,
    NEW_TREE,
    PROBE,
    REMOVE,
    SYMLINK,
    pack_op,
)
from pylsyncd.transfer.source import SourceTree

# Files up to this size go whole through the agent; bigger ones by rsync's delta.
SMALL_FILE = 1024 * 1024
# The content one batch sends through the agent, at most (it is held in memory to be sent).
BATCH_BYTES = 16 * 1024 * 1024
# The entries of new trees one batch sends through the agent, at most: a bigger tree (a copy
# of a whole project) goes by rsync, whose pipeline is faster for it.
TREE_ENTRIES = 20_000
# Operations and bytes per frame: the agent replies once per frame.
_FRAME_OPERATIONS = 1000
_FRAME_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Served:
    """What one operation stands for: a change of the batch (None: a directory above the
    batch's paths, at `path`), its kind and the bytes of content it sends."""

    change: Change | None
    kind: int
    path: str
    size: int


@dataclass
class AgentPlan:
    """What each operation sent stands for, and the changes left to rsync; complete once its
    frames were all taken (`plan_for_agent`)."""

    made: list[bytes] = field(default_factory=list)  # frames made, not taken yet
    frames: int = 0  # frames made in all
    bytes: int = 0  # their bytes
    served: list[Served] = field(default_factory=list)  # per operation, in order
    rest: list[Change] = field(default_factory=list)


class _Builder:
    def __init__(
        self,
        source: SourceTree,
        excludes: ExcludeRules,
        ownership: Ownership,
        delete: bool,
        held: set[str],
    ) -> None:
        self.source = source
        self.held = held
        self.excludes = excludes
        self.ownership = ownership
        self.delete = delete
        self.plan = AgentPlan()
        self.content = 0
        self.tree_entries = 0
        self._frame: list[bytes] = []
        self._frame_bytes = 0
        self._dirs: dict[str, os.stat_result | None] = {}  # ensured (or refused: None)
        self._dir_order: list[str] = []

    def add(self, change: Change | None, kind: int, path: str, st: os.stat_result | None,
            data: bytes = b"") -> None:  # fmt: skip
        """One operation; `st` the source's attributes for it (None for a removal)."""
        name = os.fsencode(path)
        if st is None:
            op = pack_op(kind, name, 0, (-1, -1), 0)
        else:
            owner = self.ownership.of(st) or (-1, -1)
            op = pack_op(kind, name, stat.S_IMODE(st.st_mode), owner, st.st_mtime_ns, data)
        self._frame.append(op)
        self._frame_bytes += len(op)
        self.plan.served.append(Served(change, kind, path, len(data) if kind == FILE else 0))
        if len(self._frame) >= _FRAME_OPERATIONS or self._frame_bytes >= _FRAME_BYTES:
            self.end_frame()

    def end_frame(self) -> None:
        if self._frame:
            count = len(self._frame)
            frame = count.to_bytes(4, "big") + b"".join(self._frame)
            self.plan.made.append(frame)
            self.plan.frames += 1
            self.plan.bytes += len(frame)
            self._frame, self._frame_bytes = [], 0

    def directories_above(self, path: str) -> bool:
        """Ensure the directories from the root down to `path`'s parent (the root's own
        attributes are always set, as rsync does); False when one of them is not a directory in
        the source (any more)."""
        parent = parent_of(path) if path else None
        if parent is None:
            return True
        if parent not in self._dirs:
            if not self.directories_above(parent):
                self._dirs[parent] = None
                return False
            st = self.source.lstat(parent)
            if st is None or not stat.S_ISDIR(st.st_mode):
                self._dirs[parent] = None
                return False
            self._dirs[parent] = st
            self._dir_order.append(parent)
            self.add(None, ENSURE_DIR, parent, st)
        return self._dirs[parent] is not None

    def change(self, change: Change) -> bool:
        """Add the operations of `change`; False when it is rsync's."""
        path = change.path
        st = self.source.lstat(path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            if not self.directories_above(path):
                return False
            if change.kind is not ChangeKind.SYNC:
                return self.tree(change, st)
            if path not in self._dirs:
                self._dirs[path] = st
                self._dir_order.append(path)
                self.add(change, ENSURE_DIR, path, st)
            return True
        if not path or not self.directories_above(path):
            return False
        if st is None:
            if self.delete:
                self.add(change, REMOVE, path, None)
            return True
        if stat.S_ISLNK(st.st_mode):
            self.add(change, SYMLINK, path, st, os.fsencode(self.source.readlink(path)))
            return True
        if not stat.S_ISREG(st.st_mode) or st.st_size > SMALL_FILE:
            return False
        if self.content + st.st_size > BATCH_BYTES:
            return False
        read = _read_whole(self.source, path)
        if read is None:
            return False
        data, st = read
        self.content += len(data)
        self.add(change, FILE, path, st, data)
        return True

    def tree(self, change: Change, top: os.stat_result) -> bool:
        """Add the directory at `change.path` and everything below it; False (and nothing
        added) when it holds more than the budgets or an entry the agent does not take."""
        if not change.path or change.path in self.held:
            return False  # the whole tree (a full comparison), or one the remote holds
        ops: list[tuple[int, str, os.stat_result, bytes]] = []
        content, entries = self.content, self.tree_entries
        pending = [change.path]
        while pending:
            directory = pending.pop()
            for entry in self.source.children(directory):
                child = f"{directory}/{entry.name}"
                if self.excludes and self.excludes.excludes(child, entry.is_dir):
                    continue
                entries += 1
                if entries > TREE_ENTRIES:
                    return False
                if entry.is_file:
                    read = _read_whole(self.source, child)
                    if read is None or content + len(read[0]) > BATCH_BYTES:
                        return False
                    content += len(read[0])
                    ops.append((FILE, child, read[1], read[0]))
                    continue
                st = self.source.lstat(child)
                if st is not None and entry.is_dir and stat.S_ISDIR(st.st_mode):
                    ops.append((ENSURE_DIR, child, st, b""))
                    pending.append(child)  # its entries come after it: depth first
                elif st is not None and stat.S_ISLNK(st.st_mode):
                    ops.append((SYMLINK, child, st, os.fsencode(self.source.readlink(child))))
                else:
                    return False  # gone meanwhile, or a special file: rsync's
        self.content, self.tree_entries = content, entries
        self.add(change, NEW_TREE if self.delete else ENSURE_DIR, change.path, top)
        for path, st in [(change.path, top)] + [
            (op[1], op[2]) for op in ops if op[0] == ENSURE_DIR
        ]:
            self._dirs[path] = st
            self._dir_order.append(path)
        for kind, path, st, data in ops:
            self.add(change, kind, path, st, data)
        return True

    def take(self) -> list[bytes]:
        """The frames made since the last take."""
        made, self.plan.made = self.plan.made, []
        return made

    def finish(self) -> AgentPlan:
        # Deepest first is not needed (a directory's time is its own), but the root last reads
        # like rsync's own order.
        for path in reversed(self._dir_order):
            st = self._dirs[path]
            if st is not None:
                self.add(None, DIR_TIMES, path, st)
        self.end_frame()
        return self.plan


def _read_whole(source: SourceTree, path: str) -> tuple[bytes, os.stat_result] | None:
    """The file's content and its attributes after the read; None when it changed meanwhile
    or is no regular file any more (rsync takes it then: it copes with both)."""
    fd = source.open_file(path)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > SMALL_FILE:
            return None
        data = os.read(fd, st.st_size + 1)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if len(data) != after.st_size or after.st_mtime_ns != st.st_mtime_ns:
        return None
    return data, after


def plan_for_agent(
    changes: tuple[Change, ...],
    source: SourceTree,
    excludes: ExcludeRules,
    ownership: Ownership,
    *,
    delete: bool,
    held: set[str],
) -> tuple[AgentPlan, Iterator[bytes]]:
    """The agent's frames for what it can take of `changes`, made as they are taken (the
    source is read for one while the agent writes the one before), and the plan they fill in:
    what each operation serves and the changes left to rsync. `source` is the batch's look at
    the source tree (its descriptors trimmed as it goes); `held`: the trees the remote holds a
    non-empty directory for (`probe_frame`), rsync's."""
    builder = _Builder(source, excludes, ownership, delete, held)

    def frames() -> Iterator[bytes]:
        for change in changes:
            try:
                taken = builder.change(change)
            except OSError:  # gone, changed, unreadable: rsync says what it means
                taken = False
            if not taken:
                builder.plan.rest.append(change)
            yield from builder.take()
        builder.finish()
        yield from builder.take()

    return builder.plan, frames()


def trees_to_probe(changes: tuple[Change, ...], source: SourceTree) -> list[str]:
    """The directories the batch syncs as trees: whether the remote holds each is asked first."""
    found = []
    for change in changes:
        if change.kind is ChangeKind.SYNC_TREE and change.path:
            try:
                st = source.lstat(change.path)
            except OSError:
                continue
            if st is not None and stat.S_ISDIR(st.st_mode):
                found.append(change.path)
    return found


def probe_frame(paths: list[str]) -> bytes:
    """One frame asking, per path, whether the remote holds a directory with entries there."""
    ops = [pack_op(PROBE, os.fsencode(path), 0, (-1, -1), 0) for path in paths]
    return len(ops).to_bytes(4, "big") + b"".join(ops)


def outcome_of(plan: AgentPlan, not_done_indexes: set[int]) -> Outcome:
    """What the operations the agent did wrote (directories are not counted: made or only
    given their attributes, it does not say, as rsync's statistics do not)."""
    outcome = Outcome()
    for index, served in enumerate(plan.served):
        if served.change is None or index in not_done_indexes:
            continue
        if served.kind == FILE:
            outcome.copied += 1
            outcome.bytes += served.size
        elif served.kind == SYMLINK:
            outcome.links += 1
    return outcome
