"""Which files of a batch the rsync backend updates in place by rsync's delta, and how.

rsync copies a local file whole (`--whole-file` is its default between local paths): appending
4 KiB to a 64 MiB log rewrites 64 MiB. With `--no-whole-file --inplace`, rsync compares the two
copies block by block and writes only the blocks that differ, into the destination's file
itself. That costs CPU (both copies are read and checksummed: about 0.1 s for 64 MiB) and gives
up "appears only complete", so it is kept to files of at least IN_PLACE_SIZE that the
destination already holds, as the direct backend does where it cannot clone.
"""

from __future__ import annotations

import stat

from pylsyncd.coalesce import Batch, Change, ChangeKind
from pylsyncd.transfer.destination import DestinationView
from pylsyncd.transfer.source import SourceTree

# What rsync is told for the files `split_big_files` sets apart.
IN_PLACE_OPTIONS = ("--no-whole-file", "--inplace")


def split_big_files(
    batch: Batch, source_root: str, destination_root: str, in_place_size: int
) -> tuple[Batch, Batch]:
    """(the rest of the batch, the syncs of big regular files both sides hold)."""
    source, destination = SourceTree(source_root), DestinationView(destination_root)
    big: list[Change] = []
    rest: list[Change] = []
    try:
        for change in batch.changes:
            is_big = change.kind is ChangeKind.SYNC and _both_big(
                source, destination, change.path, in_place_size
            )
            (big if is_big else rest).append(change)
    finally:
        source.close()
        destination.close()
    return Batch((), tuple(rest)), Batch((), tuple(big))


def _both_big(
    source: SourceTree, destination: DestinationView, path: str, in_place_size: int
) -> bool:
    try:
        held = source.lstat(path)
        if held is None or not stat.S_ISREG(held.st_mode) or held.st_size < in_place_size:
            return False  # most files: the destination need not be looked at
        existing = destination.lstat(path)
    except OSError:
        return False  # the general run says what is wrong with it
    return existing is not None and stat.S_ISREG(existing.st_mode)
