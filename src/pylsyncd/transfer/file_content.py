"""A file's content into the destination: copied whole in the kernel, or only what changed.

A new file, and one that changed too much to be worth comparing, is copied by the kernel
(copy_file_range, else sendfile): its bytes never pass through Python. A file the destination
already holds is brought up to date by what differs: an append by its new tail, once the
destination is seen to still be a prefix of the source; any other change by the blocks that
differ, found by reading both copies (reading is cheap next to writing a whole big file again,
and a slow host mount pays for every byte written).
"""

from __future__ import annotations

import errno
import os

# Both copies are read this much at a time: large enough that the system calls cost little,
# small enough to stay in the CPU's caches while compared.
_CHUNK = 1 << 20
# A chunk that differs is written by the pages that differ: the unit the page cache and most
# filesystems write anyway, so a 4 KiB change costs a 4 KiB write.
_PAGE = 4096
# An append is checked against the destination before only the tail is written: its first
# page and the one just before its old end must still be the source's (a file rewritten since,
# even to a longer one, differs there and is compared as a whole; what else changed is caught
# by the whole comparison held back for it, see `hot_files`). A page: at 100 appends a second,
# reading more would cost more than the rest of each batch.
_PREFIX_CHECK = 4096
# copy_file_range refuses these where the kernel or the filesystems cannot do it; sendfile can.
_NO_COPY_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


def copy_range(src_fd: int, dst_fd: int, start: int, end: int) -> int:
    """Copy the source's bytes [start, end) to the same offsets of the destination, in the
    kernel; returns how many were copied (fewer when the source got shorter meanwhile)."""
    offset = start
    use_copy_range = True
    while offset < end:
        count = min(end - offset, 1 << 30)
        if use_copy_range:
            try:
                copied = os.copy_file_range(src_fd, dst_fd, count, offset, offset)
            except OSError as error:
                if error.errno not in _NO_COPY_RANGE:
                    raise
                use_copy_range = False
                continue
        else:
            os.lseek(dst_fd, offset, os.SEEK_SET)  # sendfile writes where the descriptor is
            copied = os.sendfile(dst_fd, src_fd, offset, count)
        if copied == 0:
            break  # the source ends here now; its next event follows
        offset += copied
    return offset - start


def update(
    src_fd: int, dst_fd: int, old_size: int, new_size: int, trust_append: bool
) -> tuple[int, bool]:
    """Make the destination (`old_size` bytes, open for reading and writing) hold the source's
    content (`new_size` bytes), writing only what differs.

    Returns the bytes written, and whether every byte was compared. With `trust_append`, a file
    that grew and whose first and last old bytes are the same is taken for an append: only its
    new tail is written, and False says that a change made in between at the same time would be
    missed until the whole file is compared once more.
    """
    if trust_append and new_size > old_size and still_a_prefix(src_fd, dst_fd, old_size):
        return copy_range(src_fd, dst_fd, old_size, new_size), False
    written = _patch(src_fd, dst_fd, min(old_size, new_size))
    if new_size > old_size:
        written += copy_range(src_fd, dst_fd, old_size, new_size)
    elif new_size < old_size:
        os.ftruncate(dst_fd, new_size)
    return written, True


def still_a_prefix(src_fd: int, dst_fd: int, size: int) -> bool:
    """Whether the destination's `size` bytes look like the start of the source: its first
    bytes and those just before its end are the same."""
    head = min(size, _PREFIX_CHECK)
    tail = max(head, size - _PREFIX_CHECK)
    return all(
        os.pread(src_fd, end - start, start) == os.pread(dst_fd, end - start, start)
        for start, end in ((0, head), (tail, size))
        if end > start
    )


def _patch(src_fd: int, dst_fd: int, size: int) -> int:
    """Compare the first `size` bytes of both copies and write the pages that differ."""
    source, destination = bytearray(_CHUNK), bytearray(_CHUNK)
    written = 0
    for offset in range(0, size, _CHUNK):
        length = min(_CHUNK, size - offset)
        if length < _CHUNK:  # the last chunk: whole buffers compare without slicing copies
            source, destination = bytearray(length), bytearray(length)
        got = os.preadv(src_fd, [source], offset)
        os.preadv(dst_fd, [destination], offset)
        if got < length:  # the source got shorter while read: its next event follows
            del source[got:], destination[got:]
        if source != destination:
            written += _write_differing_pages(source, destination, dst_fd, offset)
        if got < length:
            break
    return written


def _write_differing_pages(
    source: bytearray, destination: bytearray, dst_fd: int, offset: int
) -> int:
    """Write the runs of pages of one chunk where the source differs; returns bytes written."""
    length = len(source)
    written = 0
    run_start: int | None = None
    with memoryview(source) as view:
        for page in range(0, length + _PAGE, _PAGE):
            end = min(page + _PAGE, length)
            differs = page < length and source[page:end] != destination[page:end]
            if differs and run_start is None:
                run_start = page
            elif not differs and run_start is not None:
                run_end = min(page, length)
                written += os.pwrite(dst_fd, view[run_start:run_end], offset + run_start)
                run_start = None
    return written
