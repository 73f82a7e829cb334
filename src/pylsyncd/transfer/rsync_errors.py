"""What rsync's exit status and stderr mean for a batch: a failure, or only the source's life.

Two kinds of sender errors are no failure. A source entry rsync may not read is skipped and
reported once: a retry cannot help until a chmod, which raises its own event. An entry that
went or changed type between two of rsync's steps is the source changing under it: its change
raised an event of its own, and the batch runs once more (rsync skips a run's deletions after
such errors).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# rsync's exit status when some files could not be transferred (see its stderr for which).
_PARTIAL = 23
# What rsync's sender says about a source entry it may not read: opendir, send_files, link_stat.
_DENIED = re.compile(r'^rsync: \[sender\] .*"(?P<path>.*)".*: Permission denied \(13\)$')
# What it says about a source entry that went or changed type between two of its steps: a file
# become a symlink (ELOOP) or a directory (EISDIR), a directory become a file (ENOTDIR), a symlink
# become something else (EINVAL from readlink), a file truncated while rsync read it ("read
# errors mapping": ENODATA, rsync's own word for a short read). rsync exits 23 for these, not 24
# as for a file that only vanished; the change raised its own event, which the next batch serves.
# The receiver's word for what such a short read sent: its checksum did not match ("failed
# verification": the update is discarded and tried again, or kept by an in-place run); rsync
# quotes the name in some versions and not in others.
_RACED = re.compile(
    r"^(rsync: \[sender\] .*: (No such file or directory \(2\)|Not a directory \(20\)"
    r"|Is a directory \(21\)|Invalid argument \(22\)|Too many levels of symbolic links \(40\)"
    r"|No data available \(61\))"
    r'|(file|directory) has vanished: ".*"'
    r"|(WARNING|ERROR): .* failed verification -- update (discarded|retained).*)$"
)
# Lines that only sum up the errors listed before them.
_SUMMARY = ("rsync error:", "rsync warning:", "IO error encountered -- skipping file deletion")


@dataclass(frozen=True)
class Verdict:
    """What one rsync run's errors amount to."""

    error: str | None  # the failure to retry, for the log; None when there is none
    unreadable: list[str] = field(default_factory=list)  # source paths rsync may not read
    raced: bool = False  # source entries changed under it: worth one more run


def judge(returncode: int, stderr: bytes) -> Verdict:
    """The verdict on a run that exited `returncode` (neither 0 nor 24) with `stderr`."""
    found = _source_only(stderr) if returncode == _PARTIAL else None
    if found is None:
        return Verdict(f"rsync exited {returncode}: " + _first_error(stderr))
    unreadable, raced = found
    return Verdict(None, unreadable, raced)


def report_unreadable(paths: list[str], reported: set[str]) -> None:
    """Source entries rsync may not read are skipped, not retried: a retry cannot help until
    a chmod, which raises its own event, and it would hold back every other change."""
    for path in paths:
        if path in reported:
            log.debug("still cannot read %s", path)
            continue
        reported.add(path)
        log.warning(
            "cannot read %s: permission denied; skipped (the destination keeps what it has "
            "there), everything else goes on",
            path,
        )


def _source_only(stderr: bytes) -> tuple[list[str], bool] | None:
    """When rsync's errors say only that source entries could not be read or changed under it
    (neither is a failure): the unreadable paths, and whether any changed. Otherwise None."""
    paths: list[str] = []
    raced = False
    for line in os.fsdecode(stderr).splitlines():
        denied = _DENIED.match(line)
        if denied is not None:
            paths.append(denied.group("path"))
        elif _RACED.match(line):
            log.debug("the source changed under rsync: %s", line)
            raced = True
        elif line.strip() and not line.startswith(_SUMMARY):
            return None
    return (paths, raced) if paths or raced else None  # 23 with no reason given: a failure


def _first_error(stderr: bytes) -> str:
    """The line that says what went wrong: not rsync's closing summary of it, nor a source
    entry that changed under it or could not be read, when another line is there."""
    lines = os.fsdecode(stderr).strip().splitlines() or [""]
    specific = [line for line in lines if not line.startswith(("rsync error:", "rsync warning:"))]
    unexplained = [line for line in specific if not (_RACED.match(line) or _DENIED.match(line))]
    return (unexplained or specific or lines)[0]
