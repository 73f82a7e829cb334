"""What one side of a two-way pair holds: entries read below its root, never through a symlink.

Reconcile sees each side as a map of relative path -> `Entry`. This module reads those maps: a
touched path and its subtree (a live batch), or the whole tree (the start). Directories are
opened one component at a time with O_NOFOLLOW (`transfer.directories`), as the writes are, so
a symlink that appears anywhere below a root is read as a symlink and never followed.

A directory's size and mtime are read as 0: reconcile compares directories by type and mode
only, and the applier's compare-and-swap must not see a directory as changed because an earlier
action of the same plan created a file in it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable

from pylsyncd.entries import Ancestor, Entry, Kind, Side
from pylsyncd.transfer.destination import DestinationTree
from pylsyncd.transfer.directories import DIR_FLAGS, GONE, lstat_at, split

# (path, is_dir) -> whether the path is left out of the sync (EXCLUDES).
Excluded = Callable[[str, bool], bool]
# This daemon's temporary files (`transfer.file_writer.temp_name`): never synchronised, and
# removed when a full read finds them (a kill -9 in the middle of a copy leaves one behind).
OWN_TEMPORARY = re.compile(r"\.pylsyncd\.[0-9a-f]{12}\.tmp\Z")
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_DIGEST_CHUNK = 1 << 20
# A same-size rewrite keeps its mtime only when it lands within one timestamp tick (a few ms on
# ext4) of the write before it, which the daemon then had just synced: only a file written this
# recently is worth reading whole to find one (and only one this small).
_TICK_SUSPECT_NS = 2_000_000_000
_DIGEST_AT_MOST = 16 << 20


def entry_of(status: os.stat_result, target: str = "") -> Entry | None:
    """The entry a stat describes; None for what is not synchronised (sockets, devices)."""
    mode = status.st_mode
    if stat.S_ISREG(mode):
        kind = Kind.FILE
    elif stat.S_ISDIR(mode):
        return Entry(Kind.DIR, 0, 0, stat.S_IMODE(mode), "", status.st_ino)
    elif stat.S_ISLNK(mode):
        kind = Kind.SYMLINK
    else:
        return None
    return Entry(
        kind, status.st_size, status.st_mtime_ns, stat.S_IMODE(mode), target, status.st_ino
    )


def matches(found: Entry | None, expected: Entry | None) -> bool:
    """The compare-and-swap's test: the same content under the same inode (or both absent)."""
    if found is None or expected is None:
        return found is expected
    return found.inode == expected.inode and found.same(expected)


def read_entry(tree: DestinationTree, path: str) -> Entry | None:
    """What `tree` holds at `path` now (None: nothing, or something not synchronised)."""
    parent, name = split(path)
    parent_fd = tree.open_dir(parent)
    if parent_fd is None:
        return None
    return entry_at(parent_fd, name)


def entry_at(parent_fd: int, name: str) -> Entry | None:
    """What the directory `parent_fd` holds at `name` now (as `read_entry`)."""
    status = lstat_at(parent_fd, name)
    if status is None:
        return None
    target = ""
    if stat.S_ISLNK(status.st_mode):
        try:
            target = os.readlink(name, dir_fd=parent_fd)
        except OSError as error:
            if error.errno in (*GONE, errno.EINVAL):  # gone or replaced since the lstat
                return None
            raise
    return entry_of(status, target)


def excluded_path(path: str, is_dir: bool, excluded: Excluded) -> bool:
    """Whether `path` or one of its directories is excluded."""
    parts = path.split("/")
    for depth in range(1, len(parts)):
        if excluded("/".join(parts[:depth]), True):
            return True
    return excluded(path, is_dir)


def read_subtree(
    tree: DestinationTree, path: str, excluded: Excluded, leftovers: list[str] | None = None
) -> dict[str, Entry]:
    """`path` (unless it is the root "") and every entry below it that is not excluded; this
    daemon's temporary files found on the way go to `leftovers` when it is given."""
    found: dict[str, Entry] = {}
    if path:
        entry = read_entry(tree, path)
        if entry is None or excluded_path(path, entry.kind is Kind.DIR, excluded):
            return found
        found[path] = entry
        if entry.kind is not Kind.DIR:
            return found
    parent_fd = tree.open_dir(split(path)[0]) if path else None
    if path and parent_fd is None:
        return found
    try:
        fd = (
            os.open(split(path)[1], DIR_FLAGS, dir_fd=parent_fd)
            if path
            else os.open(tree.root, DIR_FLAGS)
        )
    except OSError as error:
        if error.errno in (*GONE, errno.ELOOP):
            return found
        raise
    _walk(fd, path, excluded, found, leftovers)
    return found


def _walk(
    fd: int,
    path: str,
    excluded: Excluded,
    found: dict[str, Entry],
    leftovers: list[str] | None,
) -> None:
    """Read the directory open at `fd` (closed here) into `found`, depth first."""
    directories: list[str] = []
    try:
        with os.scandir(fd) as listing:
            names = [entry.name for entry in listing]
        for name in names:
            child = f"{path}/{name}" if path else name
            status = lstat_at(fd, name)
            if status is None:
                continue
            is_dir = stat.S_ISDIR(status.st_mode)
            if leftovers is not None and not is_dir and OWN_TEMPORARY.match(name):
                leftovers.append(child)
                continue
            if excluded(child, is_dir):
                continue
            target = ""
            if stat.S_ISLNK(status.st_mode):
                try:
                    target = os.readlink(name, dir_fd=fd)
                except OSError as error:
                    if error.errno in (*GONE, errno.EINVAL):
                        continue
                    raise
            entry = entry_of(status, target)
            if entry is None:
                continue
            found[child] = entry
            if is_dir:
                directories.append(name)
        # One descriptor open per level at a time: a deep or wide tree never runs out of them.
        for name in directories:
            try:
                child_fd = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError as error:
                if error.errno in (*GONE, errno.ELOOP):
                    found.pop(f"{path}/{name}" if path else name, None)
                    continue
                raise
            _walk(child_fd, f"{path}/{name}" if path else name, excluded, found, leftovers)
    finally:
        os.close(fd)


def root_is_empty(root: str, excluded: Excluded) -> bool:
    """Whether the root holds nothing that is synchronised (for the halt rule)."""
    with os.scandir(root) as listing:
        return not any(
            not excluded(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing
        )


def with_digests(
    a: dict[str, Entry], b: dict[str, Entry], trees: tuple[DestinationTree, DestinationTree]
) -> None:
    """Give same-size files that differ in times or mode a content digest on both sides.

    At a first start between trees copied without their times (cp without -a), every file
    would otherwise be a conflict with a copy; equal digests make it a change of times only.
    """
    for path, left in a.items():
        right = b.get(path)
        if (
            right is None
            or left.kind is not Kind.FILE
            or right.kind is not Kind.FILE
            or left.size != right.size
            or left.same(right)
        ):
            continue
        digests = [_digest(tree, path) for tree in trees]
        if digests[0] is not None and digests[1] is not None:
            a[path] = _with_digest(left, digests[0])
            b[path] = _with_digest(right, digests[1])


def _with_digest(entry: Entry, digest: bytes) -> Entry:
    return Entry(
        entry.kind, entry.size, entry.mtime_ns, entry.mode, entry.target, entry.inode, digest
    )


def _digest(tree: DestinationTree, path: str) -> bytes | None:
    """A BLAKE2b digest of the file at `path`; None when it cannot be read (then no digest)."""
    parent, name = split(path)
    parent_fd = tree.open_dir(parent)
    if parent_fd is None:
        return None
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent_fd)
    except OSError:
        return None
    import hashlib  # here: only a first start needs it, and it loads OpenSSL (see file_writer)

    digest = hashlib.blake2b(digest_size=16)
    try:
        while chunk := os.read(fd, _DIGEST_CHUNK):
            digest.update(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return digest.digest()


def unseen_rewrites(
    written: dict[Side, set[str]],
    sides: dict[Side, dict[str, Entry]],
    ancestor: dict[str, Ancestor],
    trees: dict[Side, DestinationTree],
    now_ns: int,
) -> None:
    """Find the files rewritten at the same size within one mtime tick, where size and mtime
    cannot tell two versions apart; only files a watcher reported written, or changed on both
    sides, are read.

    Written on one side only, while both sides and the ancestor look alike: when that side's
    content differs from the other's (which the ancestor holds), both sides get their digests,
    and the ancestor the unchanged side's, so reconcile sees a change of that side.

    Written on both sides, or both changed from the ancestor, and both look alike: when their
    contents differ, both sides get their digests, so reconcile sees two different versions. If
    the ancestor looks alike too, nothing says which side (if either) still holds it: it is left
    out, and the two versions are a conflict, which keeps both (a conflict copy at worst where
    one side only echoed a write of ours; never a version replaced unseen).
    """
    for side in (Side.A, Side.B):
        for path in written[side] - written[side.other]:
            mine, theirs = sides[side].get(path), sides[side.other].get(path)
            known = ancestor.get(path)
            if not _alike(mine, theirs, now_ns) or known is None or not known.entry.same(mine):
                continue
            digests = _digests(trees, side, path)
            if digests is None:
                continue
            assert mine is not None and theirs is not None
            sides[side][path] = _with_digest(mine, digests[0])
            sides[side.other][path] = _with_digest(theirs, digests[1])
            ancestor[path] = Ancestor(
                _with_digest(known.entry, digests[1]), known.inode_a, known.inode_b
            )
    _replaced_alike(sides, ancestor, trees)
    _both_changed_alike(written[Side.A] & written[Side.B], sides, ancestor, trees, now_ns)


def _both_changed_alike(
    both_written: set[str],
    sides: dict[Side, dict[str, Entry]],
    ancestor: dict[str, Ancestor],
    trees: dict[Side, DestinationTree],
    now_ns: int,
) -> None:
    """Find two different versions that look alike: written on both sides, or both changed
    from the ancestor (or both new) whatever the watchers reported in this batch (the events of
    a rewrite on each side in one mtime tick may come in two batches, and a path a raced copy
    handed back comes with none). Taken as the same change on both sides, the two would stay
    different for good; with their digests, reconcile sees a conflict, which keeps both."""
    for path, a in sides[Side.A].items():
        b = sides[Side.B].get(path)
        if not _alike(a, b, now_ns):
            continue
        known = ancestor.get(path)
        unchanged = known is not None and known.entry.same(a)
        if unchanged and path not in both_written:
            continue  # neither changed, as far as size, mtime and the reports above tell
        digests = _digests(trees, Side.A, path)
        if digests is None:
            continue
        assert b is not None
        sides[Side.A][path] = _with_digest(a, digests[0])
        sides[Side.B][path] = _with_digest(b, digests[1])
        if unchanged:
            del ancestor[path]  # nothing says which side still holds it: a conflict


def _replaced_alike(
    sides: dict[Side, dict[str, Entry]],
    ancestor: dict[str, Ancestor],
    trees: dict[Side, DestinationTree],
) -> None:
    """Find the files replaced on one side by another of the same size, mtime and mode (a file
    renamed over one that looked alike), however old: a new inode on that side while the other
    keeps the ancestor's. When the contents differ, that side's is a change, as above."""
    for side in (Side.A, Side.B):
        for path, mine in sides[side].items():
            known, theirs = ancestor.get(path), sides[side.other].get(path)
            if (
                known is None
                or theirs is None
                or mine.kind is not Kind.FILE
                or mine.digest is not None
                or mine.size > _DIGEST_AT_MOST
                or mine.inode == known.inode(side)
                or theirs.inode != known.inode(side.other)
                or not (mine.same(theirs) and known.entry.same(mine))
            ):
                continue
            digests = _digests(trees, side, path)
            if digests is None:
                continue
            sides[side][path] = _with_digest(mine, digests[0])
            sides[side.other][path] = _with_digest(theirs, digests[1])
            ancestor[path] = Ancestor(
                _with_digest(known.entry, digests[1]), known.inode_a, known.inode_b
            )


def _alike(mine: Entry | None, theirs: Entry | None, now_ns: int) -> bool:
    """Whether two files look the same by size and mtime while recent and small enough that a
    same-size rewrite within one timestamp tick is worth reading them whole to find."""
    return (
        mine is not None
        and theirs is not None
        and mine.kind is Kind.FILE
        and mine.same(theirs)
        and mine.digest is None
        and mine.size <= _DIGEST_AT_MOST
        and now_ns - mine.mtime_ns <= _TICK_SUSPECT_NS
    )


def _digests(
    trees: dict[Side, DestinationTree], side: Side, path: str
) -> tuple[bytes, bytes] | None:
    """`side`'s and the other side's digests of `path` when they differ (None: equal, or one
    could not be read)."""
    ours, other = _digest(trees[side], path), _digest(trees[side.other], path)
    if ours is None or other is None or ours == other:
        return None
    return ours, other
