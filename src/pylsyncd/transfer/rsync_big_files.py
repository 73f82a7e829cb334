"""Which files of a batch the rsync backend updates in place, and how: by their new tail, or by
rsync's delta.

rsync copies a local file whole (`--whole-file` is its default between local paths): appending
4 KiB to a 64 MiB log rewrites 64 MiB. With `--no-whole-file --inplace`, rsync compares the two
copies block by block and writes only the blocks that differ, into the destination's file
itself. That still costs both copies read and checksummed (about 0.1 s for 64 MiB) and about
100 KB of block checksums through rsync's pipes on every run: at one run per batch, a log
appended to every 10 ms costs more than the appends. So a file that grew, and whose destination
copy is still a prefix of it (checked here as the direct backend checks it: its first page and
the one before its old end), goes with `--append`, which sends its new tail alone; it is compared
whole once it has been quiet for a second (`hot_files`), as the direct backend's appends are.

Both give up "appears only complete", so they are kept to files of at least IN_PLACE_SIZE that
the destination already holds, as the direct backend does where it cannot clone.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from pylsyncd.coalesce import Batch, Change, ChangeKind
from pylsyncd.transfer import Outcome
from pylsyncd.transfer.destination import DestinationView
from pylsyncd.transfer.file_content import still_a_prefix
from pylsyncd.transfer.hot_files import HotFiles
from pylsyncd.transfer.source import SourceTree

# What rsync is told for the files compared block by block, and for those appended to.
IN_PLACE_OPTIONS = ("--no-whole-file", "--inplace")
APPEND_OPTIONS = ("--append",)


@dataclass
class BySize:
    """What sorting a batch by size needs besides the source: the destination, the size from
    which files are updated in place, and the appended files' comparisons held back."""

    destination: str
    in_place_size: int
    hot: HotFiles


def run_by_size(
    batch: Batch, source: SourceTree, by_size: BySize, run: Callable[..., Outcome], *, final: bool
) -> Outcome:
    """A local batch in up to three rsync runs (`run(batch, *options)`): whole files, big files
    compared block by block, big files appended to. `final`: no later comparison will come."""
    groups = split_big_files(
        batch, source, by_size.destination, by_size.in_place_size, by_size.hot,
        trust_appends=not final,
    )  # fmt: skip
    outcome = run(groups.rest) if groups.rest.changes else Outcome()
    for group, options in ((groups.in_place, IN_PLACE_OPTIONS), (groups.appended, APPEND_OPTIONS)):
        if not group.changes or not outcome.ok:
            continue
        done = run(group, *options)
        outcome.copied += done.copied
        outcome.bytes += done.bytes
        outcome.error = done.error
        if not done.ok:
            break
        for change in group.changes:
            compared = options is IN_PLACE_OPTIONS
            due = by_size.hot.copied(change.path, 0.0, compared=compared)
            if due is not None:
                outcome.defer(change, due)
    return outcome


@dataclass(frozen=True)
class BigFiles:
    """A batch's syncs, by how rsync is to run them."""

    rest: Batch  # whole files, as rsync copies them by default
    in_place: Batch  # big files both sides hold, compared block by block
    appended: Batch  # big files grown from what the destination holds: their tail alone


def split_big_files(
    batch: Batch,
    source: SourceTree,
    destination_root: str,
    in_place_size: int,
    hot: HotFiles,
    *,
    trust_appends: bool,
) -> BigFiles:
    """Sort the batch's changes; `trust_appends` is False when no later comparison will come
    (the last batch before the daemon exits)."""
    destination = DestinationView(destination_root)
    groups: dict[str, list[Change]] = {"rest": [], "in_place": [], "appended": []}
    try:
        for change in batch.changes:
            how = "rest"
            if change.kind is ChangeKind.SYNC:
                how = _how(source, destination, change.path, in_place_size)
                if how == "appended" and (not trust_appends or hot.compare_now(change.path)):
                    how = "in_place"
            groups[how].append(change)
    finally:
        destination.close()
    return BigFiles(*(Batch((), tuple(changes)) for changes in groups.values()))


def _how(source: SourceTree, destination: DestinationView, path: str, in_place_size: int) -> str:
    try:
        held = source.lstat(path)
        if held is None or not stat.S_ISREG(held.st_mode) or held.st_size < in_place_size:
            return "rest"  # most files: the destination need not be looked at
        existing = destination.lstat(path)
        if existing is None or not stat.S_ISREG(existing.st_mode):
            return "rest"
        if held.st_size <= existing.st_size or not _prefix(source, destination, path, existing):
            return "in_place"
    except OSError:
        return "rest"  # the general run says what is wrong with it
    return "appended"


def _prefix(
    source: SourceTree, destination: DestinationView, path: str, existing: os.stat_result
) -> bool:
    """Whether the destination's copy still looks like the start of the source's file."""
    dst_fd = destination.open_file(path)
    if dst_fd is None:
        return False
    try:
        src_fd = source.open_file(path)
        try:
            return still_a_prefix(src_fd, dst_fd, existing.st_size)
        finally:
            os.close(src_fd)
    finally:
        os.close(dst_fd)
