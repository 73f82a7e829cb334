"""One regular file copied from the source, under the hot-file rule (`hot_files`).

What a copy cost is measured (thread CPU) and paid back before the next copy of that file,
unless it wrote only an appended tail; a grown file may be updated by its new tail alone, to be
compared whole later; the second event of one write finds the file as written and copies
nothing.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from pylsyncd.transfer import Ownership
from pylsyncd.transfer.file_writer import FileWrite, FileWriter
from pylsyncd.transfer.hot_files import HotFiles
from pylsyncd.transfer.source import SourceChangedError, SourceTree

# Copies of smaller files are not timed for the hot-file rule (two system calls each): they
# cost far less than the smallest cost it tracks.
TIMED_SIZE = 256 * 1024


def same_file(
    existing: os.stat_result | None, source: os.stat_result, ownership: Ownership
) -> bool:
    """rsync's quick check (size and mtime), plus the attributes we copy."""
    return (
        existing is not None
        and stat.S_ISREG(existing.st_mode)
        and existing.st_size == source.st_size
        and existing.st_mtime_ns == source.st_mtime_ns
        and existing.st_mode == source.st_mode
        and ownership.matches(existing, source)
    )


def copy_file(
    source_tree: SourceTree,
    files: FileWriter,
    hot: HotFiles,
    target: tuple[str, int, str],
    existing: os.stat_result | None,
    trust_appends: bool,
) -> tuple[FileWrite, float | None]:
    """Copy the regular file at `target`'s path (`target`: the path, the destination
    directory's descriptor, the name there; `existing`: what stands there, if known). Returns
    what was written, and when to compare the file whole if only its tail was written.

    SourceChangedError when the file went or became something else.
    """
    path, parent_fd, name = target
    src_fd = source_tree.open_file(path)
    try:
        source = os.fstat(src_fd)
        if not stat.S_ISREG(source.st_mode):  # a directory or a FIFO since it was listed
            raise SourceChangedError(errno.EISDIR, "no longer a regular file", path)
        trust_append = trust_appends and not hot.must_compare(path)
        as_written = same_file(existing, source, files.ownership)
        if trust_append and as_written and hot.unchanged_since_written(path, source):
            # Nothing new since its last write. A whole comparison held back for it is asked
            # for again (this change may have taken the place of the one that was to make it),
            # and none is added: that made two names of one big hard-linked file schedule each
            # other's, once a second, forever.
            return FileWrite(0, compared=False, directory_written=False), hot.comparison_due(path)
        if source.st_size < TIMED_SIZE:
            written = files.write(
                parent_fd, name, src_fd, source, existing, trust_append=trust_append
            )
            cost = 0.0
        else:
            started = time.thread_time()
            written = files.write(
                parent_fd, name, src_fd, source, existing, trust_append=trust_append
            )
            cost = time.thread_time() - started
    finally:
        os.close(src_fd)
    # A tail appended is copied once, whenever it goes: holding the next one back would save no
    # work, only delay it (a file written at full speed would arrive a copy's time late). What
    # is paid back is comparing or rewriting what the destination already held.
    charged = cost if written.compared else 0.0
    return written, hot.copied(path, charged, compared=written.compared, source=source)
